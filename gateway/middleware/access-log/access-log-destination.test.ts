import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bufferedDestination, EPISODE_QUIET_MS, PIPE_BUF, pieceEnd, type Output } from './access-log-destination.ts';

/** An output that records each batch and completes it only when the test says so. */
function heldOutput() {
  const batches: string[] = [];
  const pending: Array<(error?: Error | null) => void> = [];
  const output: Output = (batch, done) => {
    // A copy: the destination may write the next lines into the same memory once `done` is called.
    batches.push(batch.toString('utf8'));
    pending.push(done);
  };
  return { batches, output, complete: (error?: Error) => pending.shift()!(error) };
}

/** A destination of two lines' room (4 bytes) writing each line at once, over a held output, and what it told of drops (`drop: reason`, `flow: count`). */
function episodeDestination() {
  const { output, complete } = heldOutput();
  const told: string[] = [];
  const destination = bufferedDestination(output, {
    maxBufferBytes: 4,
    flushDelayMs: 0,
    onDropped: () => undefined,
    onFirstDrop: (reason) => told.push(`drop: ${reason}`),
    onFlowAgain: (dropped) => told.push(`flow: ${dropped}`),
  });
  return { destination, told, complete };
}

describe('bufferedDestination', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('writes a full batch at once and holds smaller ones for the delay', () => {
    const { batches, output } = heldOutput();
    const destination = bufferedDestination(output, { flushBytes: 10, flushDelayMs: 50 });
    destination.write('a\n');
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(49);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual(['a\n']);
  });

  it('with no delay writes each line at once, batches what arrives during a write, and counts drops where told', () => {
    const { batches, output, complete } = heldOutput();
    const dropped: number[] = [];
    const destination = bufferedDestination(output, { maxBufferBytes: 8, flushDelayMs: 0, onDropped: (lines) => dropped.push(lines) });
    destination.write('a\n');
    expect(batches).toEqual(['a\n']);
    destination.write('b\n');
    destination.write('c\n');
    complete();
    expect(batches).toEqual(['a\n', 'b\nc\n']);
    complete(new Error('EPIPE'));
    expect(dropped).toEqual([2]);
    expect(destination.dropped).toBe(2);
  });

  it('writes the lines that arrived during a write as soon as it completes, in one batch', () => {
    const { batches, output, complete } = heldOutput();
    const destination = bufferedDestination(output, { flushBytes: 10, flushDelayMs: 50 });
    destination.write('full-line\n');
    expect(batches).toEqual(['full-line\n']);
    destination.write('b\n');
    destination.write('c\n');
    // Not on a timer of their own while a write is out.
    vi.advanceTimersByTime(100);
    expect(batches).toHaveLength(1);
    complete();
    expect(batches).toEqual(['full-line\n', 'b\nc\n']);
    complete();
    destination.write('d\n');
    expect(batches).toHaveLength(2);
    vi.advanceTimersByTime(50);
    expect(batches).toEqual(['full-line\n', 'b\nc\n', 'd\n']);
  });

  it('writes the rest at once when closed during a write, then resolves', async () => {
    const { batches, output, complete } = heldOutput();
    const destination = bufferedDestination(output, { flushBytes: 10, flushDelayMs: 50 });
    destination.write('full-line\n');
    destination.write('b\n');
    let closed = false;
    void destination.close().then(() => (closed = true));
    complete();
    expect(batches).toEqual(['full-line\n', 'b\n']);
    complete();
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(true);
  });

  it('counts the lines of a batch that failed as dropped', () => {
    const { output, complete } = heldOutput();
    const onFirstDrop = vi.fn();
    const destination = bufferedDestination(output, { flushBytes: 4, onFirstDrop });
    destination.write('a\nb\n');
    complete(new Error('EPIPE'));
    expect(destination.dropped).toBe(2);
    expect(onFirstDrop).toHaveBeenCalledWith('the access log cannot be written: EPIPE');
  });

  it('tells of drops once an episode: at its first drop, and as a batch taken after the last drop is written, with the episode\'s count; a later drop starts another', () => {
    const { destination, told, complete } = episodeDestination();
    // The reader stalls: the first batch is out, the other buffer fills, and two lines are dropped.
    destination.write('a\n');
    destination.write('b\n');
    destination.write('c\n');
    destination.write('d\n');
    destination.write('e\n');
    expect(told).toEqual(['drop: the access log reader is not keeping up']);
    // The stalled batch goes, but lines were dropped while it was out: they do not flow yet.
    complete();
    expect(told).toHaveLength(1);
    // The batch taken after the last drop is written, EPISODE_QUIET_MS after it: the episode ends with its two lines.
    vi.advanceTimersByTime(EPISODE_QUIET_MS);
    complete();
    expect(told).toEqual(['drop: the access log reader is not keeping up', 'flow: 2']);
    // Hours later, a second episode (the reader went away) is told again, and its end with its own count.
    vi.advanceTimersByTime(3_600_000);
    destination.write('f\n');
    complete(new Error('EPIPE'));
    vi.advanceTimersByTime(EPISODE_QUIET_MS);
    destination.write('g\n');
    complete();
    expect(told.slice(2)).toEqual(['drop: the access log cannot be written: EPIPE', 'flow: 1']);
    expect(destination.dropped).toBe(3);
  });

  it('holds a reader that stalls again and again within EPISODE_QUIET_MS as one episode: one warning, and one info line once no line was dropped for that long', () => {
    const { destination, told, complete } = episodeDestination();
    // A log shipper that pauses its input every second: each stall drops a line, each batch after it goes.
    for (let stall = 0; stall < 5; stall += 1) {
      destination.write('a\n');
      destination.write('b\n');
      destination.write('c\n');
      destination.write('d\n');
      complete();
      complete();
      vi.advanceTimersByTime(1_000);
    }
    expect(told).toEqual(['drop: the access log reader is not keeping up']);
    // Lines go on flowing: the batch written EPISODE_QUIET_MS after the last drop ends the episode, with its five lines.
    vi.advanceTimersByTime(EPISODE_QUIET_MS - 1_000 - 1);
    destination.write('e\n');
    complete();
    expect(told).toHaveLength(1);
    vi.advanceTimersByTime(1);
    destination.write('f\n');
    complete();
    expect(told).toEqual(['drop: the access log reader is not keeping up', 'flow: 5']);
  });

  it('encodes lines as UTF-8 and drops a line that does not fit, keeping the lines before it', () => {
    const { batches, output, complete } = heldOutput();
    const destination = bufferedDestination(output, { maxBufferBytes: 12, flushDelayMs: 50 });
    destination.write('héllo\n');
    destination.write('wörld\n');
    expect(destination.dropped).toBe(1);
    vi.advanceTimersByTime(50);
    expect(batches).toEqual(['héllo\n']);
    // While that batch is out, the other buffer takes the next lines, up to the same size.
    destination.write('wörld\n');
    complete();
    expect(batches).toEqual(['héllo\n', 'wörld\n']);
    expect(destination.dropped).toBe(1);
  });
});

describe('pieceEnd: the writes of a destination shared with other processes', () => {
  const line = (length: number) => `${'x'.repeat(length - 1)}\n`;

  it('cuts a batch after the last whole line within PIPE_BUF bytes, so no write splits a line', () => {
    const batch = Buffer.from(line(1_000).repeat(10));
    const ends: number[] = [];
    for (let offset = 0; offset < batch.length; offset = pieceEnd(batch, offset)) ends.push(pieceEnd(batch, offset));
    expect(ends).toEqual([4_000, 8_000, 10_000]);
  });

  it('takes a line of exactly PIPE_BUF bytes whole, and the rest of a short batch at once', () => {
    const batch = Buffer.from(line(PIPE_BUF) + line(10));
    expect(pieceEnd(batch, 0)).toBe(PIPE_BUF);
    expect(pieceEnd(batch, PIPE_BUF)).toBe(PIPE_BUF + 10);
  });

  it('writes a line longer than PIPE_BUF alone, whole, since it cannot be kept whole anyway', () => {
    const batch = Buffer.from(line(10) + line(PIPE_BUF + 500) + line(10));
    expect(pieceEnd(batch, 0)).toBe(10);
    expect(pieceEnd(batch, 10)).toBe(10 + PIPE_BUF + 500);
    expect(pieceEnd(batch, 10 + PIPE_BUF + 500)).toBe(batch.length);
  });
});
