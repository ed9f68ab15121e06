// Where access lines go: a bounded in-memory buffer flushed in batches, never blocking the event
// loop. pino's async destination (SonicBoom) writes through fs.write on the libuv thread pool: on a
// pipe nobody reads, that write never returns, its buffer grows to the limit, and process.exit then
// waits for the stuck thread forever. Here a pipe or socket is written through a non-blocking
// net.Socket, so a stuck reader only fills the buffer, after which lines are dropped and counted.
import { fstatSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import type { LineSink } from '../../../src/log-pretty.ts';
import { accessLogDroppedTotal } from '../../telemetry/gateway-metrics.ts';

/** A destination of access lines; `write` is called on the data path and must stay cheap. */
export interface AccessLogDestination {
  /** Queues one line (with its newline); dropped and counted when the buffer is full. */
  write(line: string): void;
  /** Starts writing what is buffered; never blocks on a slow reader. */
  flush(): void;
  /** Writes what is buffered and waits for it, at most `deadlineMs`; what is still pending then is dropped. */
  close(deadlineMs?: number): Promise<void>;
  /** Lines dropped so far because the reader did not keep up (or went away). */
  readonly dropped: number;
}

/** Limits of the buffer. */
export interface DestinationOptions {
  /** Bytes held before lines are dropped (besides one batch being written); 1 MiB by default. */
  readonly maxBufferBytes?: number;
  /** A batch this large is written at once; smaller ones wait up to `flushDelayMs`. 32 KiB by default. */
  readonly flushBytes?: number;
  /** Longest a line waits in the buffer; 25 ms by default. 0 writes each line at once (when no batch is in flight). */
  readonly flushDelayMs?: number;
  /** Rewrites each line as it is queued (`--pretty`: `formatLogLines`), so the bound and the non-blocking writes hold for it too. */
  readonly format?: (line: string) => string;
  /** Told at the first line dropped of an episode of drops: the first ever, or the first since lines flowed again. */
  readonly onFirstDrop?: (reason: string) => void;
  /**
   * Told when lines flow again after drops: a batch was written whole, no line was dropped since it
   * was taken, and none for `EPISODE_QUIET_MS`. `dropped` is the episode's count; the next drop
   * starts a new episode.
   */
  readonly onFlowAgain?: (dropped: number) => void;
  /** Counts dropped lines; in `switchboard_access_log_dropped_total` by default. */
  readonly onDropped?: (lines: number) => void;
  /**
   * Other processes write to the same pipe or socket (the workers of one gateway share its stdout):
   * batches go out in writes of whole lines of at most `PIPE_BUF` bytes, one at a time, which the
   * kernel never interleaves with another process's. (A larger write to a pipe that is nearly full
   * is taken in part, and another writer's bytes land in the middle of a line.)
   */
  readonly sharedWithOtherProcesses?: boolean;
}

/**
 * How long no line may have been dropped before a written batch ends an episode of drops. A reader
 * that stalls again and again (a log shipper pausing its input at its memory limit every second or
 * so) then makes one long episode, not a warning and an info line at every stall, said into the
 * very log pipeline that is behind.
 */
export const EPISODE_QUIET_MS = 10_000;

/** The largest write to a pipe that Linux (and POSIX, for at least 512) keeps whole against other writers. */
export const PIPE_BUF = 4_096;

/** How a batch leaves: `done` is called once it is with the kernel (or failed); `batch` is not touched before. */
export type Output = (batch: Buffer, done: (error?: Error | null) => void) => void;

/**
 * An access-log destination on file descriptor `fd` (stdout by default) or on a line sink (the
 * `--pretty` formatter). A pipe or socket is written without blocking; a regular file or a terminal
 * with a synchronous write per batch (neither waits on a reader).
 */
export function accessLogDestination(target: number | LineSink = 1, options: DestinationOptions = {}): AccessLogDestination {
  return bufferedDestination(outputFor(target, options.sharedWithOtherProcesses === true), options);
}

/** The buffer alone, in front of any output (tests drive the output's completions). */
export function bufferedDestination(output: Output, options: DestinationOptions = {}): AccessLogDestination {
  return new BufferedDestination(output, options);
}

function outputFor(target: number | LineSink, shared: boolean): Output {
  if (typeof target === 'object') {
    return (batch, done) => {
      target.write(batch.toString('utf8'));
      done();
    };
  }
  let kind: 'stream' | 'sync' = 'sync';
  try {
    const stat = fstatSync(target);
    if (stat.isFIFO() || stat.isSocket()) kind = 'stream';
  } catch {
    // A closed descriptor: the sync writes fail and their lines are counted as dropped.
  }
  if (kind === 'sync') {
    // A file or a terminal: the kernel orders whole writes to one open file (workers share the
    // description, and its offset); a short write (a signal, a full disk) is continued.
    return (batch, done) => {
      try {
        for (let written = 0; written < batch.length; ) {
          const taken = writeSync(target, batch, written);
          if (taken <= 0) throw new Error('the write took no bytes');
          written += taken;
        }
        done();
      } catch (error) {
        done(error as Error);
      }
    };
  }
  const socket = socketOn(target);
  let failure: Error | undefined;
  socket.on('error', (error) => {
    failure = error;
  });
  // The socket must not keep a draining gateway alive, nor be the reason it stays up.
  socket.unref();
  if (!shared) {
    return (batch, done) => {
      if (failure) return done(failure);
      socket.write(batch, (error) => done(error ?? failure));
    };
  }
  return (batch, done) => {
    let offset = 0;
    // One piece in flight at a time: pieces queued together would leave in one larger writev.
    const next = (error?: Error | null) => {
      if (error || failure) return done(error ?? failure);
      if (offset === batch.length) return done();
      const end = pieceEnd(batch, offset);
      const piece = batch.subarray(offset, end);
      offset = end;
      socket.write(piece, next);
    };
    next();
  };
}

/**
 * A non-blocking socket writing to `fd`. libuv opens a descriptor once per loop: when Node's own
 * stdio stream already holds it (a preloaded module wrote to `process.stderr` and that write still
 * waits on a full pipe), a second socket fails with EEXIST, and the gateway failed to start; that
 * stream, itself a non-blocking socket on the same pipe, is used instead.
 */
function socketOn(fd: number): Socket {
  try {
    return new Socket({ fd, readable: false, writable: true });
  } catch (error) {
    const stdio = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !(stdio instanceof Socket)) throw error;
    return stdio;
  }
}

/** Where the piece of `batch` from `offset` ends: after the last whole line within `PIPE_BUF` bytes, or after one longer line (which cannot be written whole). */
export function pieceEnd(batch: Buffer, offset: number): number {
  if (batch.length - offset <= PIPE_BUF) return batch.length;
  const lastNewline = batch.lastIndexOf(0x0a, offset + PIPE_BUF - 1);
  if (lastNewline >= offset) return lastNewline + 1;
  const newline = batch.indexOf(0x0a, offset);
  return newline === -1 ? batch.length : newline + 1;
}

/**
 * Lines are encoded into one of two off-heap buffers as they come: `filling` takes them while the
 * other is with the output. Kept as strings until written, the lines of a batch (up to 32 KiB, a
 * rope of ~30 small strings a line) were the largest thing alive at every scavenge beside the
 * requests in flight, and were copied by each (bench/proxy/README.md, round 9).
 */
class BufferedDestination implements AccessLogDestination {
  dropped = 0;
  /** Lines dropped in the current episode of drops; 0 while lines flow. */
  private droppedInEpisode = 0;
  /** A line was dropped since the batch being written was taken: its success does not say lines flow. */
  private droppedSinceBatch = false;
  /** When the last drop was seen (`performance.now()`): stamped per batch, at the latest when the batch written during it completes, never per dropped line. */
  private lastDropAt = 0;
  /** The two buffers, each made when first needed: `buffers[filling]` takes lines (`used` bytes of it are pending), the other is the batch being written, or free. */
  private readonly buffers: Array<Buffer | undefined> = [undefined, undefined];
  private filling = 0;
  private used = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly idle: Array<() => void> = [];
  private readonly maxBufferBytes: number;
  private readonly flushBytes: number;
  private readonly flushDelayMs: number;
  private readonly format: ((line: string) => string) | undefined;

  constructor(
    private readonly output: Output,
    private readonly options: DestinationOptions,
  ) {
    this.maxBufferBytes = options.maxBufferBytes ?? 1 << 20;
    this.flushBytes = Math.min(options.flushBytes ?? 32 * 1024, this.maxBufferBytes);
    this.flushDelayMs = options.flushDelayMs ?? 25;
    this.format = options.format;
  }

  write(text: string): void {
    const line = this.format === undefined ? text : this.format(text);
    const filling = (this.buffers[this.filling] ??= Buffer.allocUnsafeSlow(this.maxBufferBytes));
    const room = filling.length - this.used;
    // A UTF-16 code unit takes at most 3 bytes in UTF-8: the exact length is needed only near the end.
    if (line.length * 3 > room && Buffer.byteLength(line) > room) return this.drop('the access log reader is not keeping up');
    this.used += filling.write(line, this.used);
    if (this.writing) return;
    if (this.used >= this.flushBytes || this.flushDelayMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushDelayMs);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing) return;
    if (this.used === 0) {
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    const batch = (this.buffers[this.filling] as Buffer).subarray(0, this.used);
    // The batch's buffer stays untouched until the output is done with it; lines go to the other.
    this.filling = 1 - this.filling;
    this.used = 0;
    this.writing = true;
    // A line dropped while no batch was out (one larger than the buffer).
    if (this.droppedSinceBatch) this.noteDrops(performance.now());
    this.output(batch, (error) => {
      this.writing = false;
      if (error) this.drop(`the access log cannot be written: ${error.message}`, countLines(batch));
      if (this.droppedInEpisode > 0) this.episodeAfterBatch();
      // Lines that arrived meanwhile go out now rather than after another delay: they waited for
      // this write already. (A reader that keeps up takes each batch within the call, so this is
      // one small write only after a slow one: /proc/<pid>/io counted ~0.01 writes per request.)
      this.flush();
    });
  }

  async close(deadlineMs = 1_000): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    const idle = new Promise<void>((resolve) => this.idle.push(resolve));
    this.flush();
    await Promise.race([idle, new Promise<void>((resolve) => (timeout = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(timeout);
  }

  private drop(reason: string, lines = 1): void {
    if (this.droppedInEpisode === 0) this.options.onFirstDrop?.(reason);
    this.droppedInEpisode += lines;
    this.droppedSinceBatch = true;
    this.dropped += lines;
    if (this.options.onDropped) this.options.onDropped(lines);
    else accessLogDroppedTotal.inc(lines);
  }

  /** After a batch, during an episode: lines dropped while it was out (or the batch itself) push the episode's end back; else the episode ends once quiet for EPISODE_QUIET_MS. */
  private episodeAfterBatch(): void {
    const now = performance.now();
    if (this.droppedSinceBatch) this.noteDrops(now);
    else if (now - this.lastDropAt >= EPISODE_QUIET_MS) this.flowAgain();
  }

  private noteDrops(now: number): void {
    this.lastDropAt = now;
    this.droppedSinceBatch = false;
  }

  private flowAgain(): void {
    const dropped = this.droppedInEpisode;
    this.droppedInEpisode = 0;
    this.options.onFlowAgain?.(dropped);
  }
}

function countLines(batch: Buffer): number {
  let lines = 0;
  for (let index = batch.indexOf(0x0a); index !== -1; index = batch.indexOf(0x0a, index + 1)) lines += 1;
  return lines;
}
