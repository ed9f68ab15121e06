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
  /** Characters held before lines are dropped (besides one batch being written); 1 Mi by default. */
  readonly maxBufferChars?: number;
  /** A batch this large is written at once; smaller ones wait up to `flushDelayMs`. 32 Ki by default. */
  readonly flushChars?: number;
  /** Longest a line waits in the buffer; 25 ms by default. */
  readonly flushDelayMs?: number;
  /** Told once, when the first line is dropped. */
  readonly onFirstDrop?: (reason: string) => void;
}

/** How a batch leaves: `done` is called once it is with the kernel (or failed). */
export type Output = (text: string, done: (error?: Error | null) => void) => void;

/**
 * An access-log destination on file descriptor `fd` (stdout by default) or on a line sink (the
 * `--pretty` formatter). A pipe or socket is written without blocking; a regular file or a terminal
 * with a synchronous write per batch (neither waits on a reader).
 */
export function accessLogDestination(target: number | LineSink = 1, options: DestinationOptions = {}): AccessLogDestination {
  return bufferedDestination(outputFor(target), options);
}

/** The buffer alone, in front of any output (tests drive the output's completions). */
export function bufferedDestination(output: Output, options: DestinationOptions = {}): AccessLogDestination {
  return new BufferedDestination(output, options);
}

function outputFor(target: number | LineSink): Output {
  if (typeof target === 'object') {
    return (text, done) => {
      target.write(text);
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
    return (text, done) => {
      try {
        writeSync(target, text);
        done();
      } catch (error) {
        done(error as Error);
      }
    };
  }
  const socket = new Socket({ fd: target, readable: false, writable: true });
  let failure: Error | undefined;
  socket.on('error', (error) => {
    failure = error;
  });
  // The socket must not keep a draining gateway alive, nor be the reason it stays up.
  socket.unref();
  return (text, done) => {
    if (failure) return done(failure);
    socket.write(text, (error) => done(error ?? failure));
  };
}

class BufferedDestination implements AccessLogDestination {
  dropped = 0;
  private pending = '';
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly idle: Array<() => void> = [];
  private readonly maxBufferChars: number;
  private readonly flushChars: number;
  private readonly flushDelayMs: number;

  constructor(
    private readonly output: Output,
    private readonly options: DestinationOptions,
  ) {
    this.maxBufferChars = options.maxBufferChars ?? 1 << 20;
    this.flushChars = options.flushChars ?? 32 * 1024;
    this.flushDelayMs = options.flushDelayMs ?? 25;
  }

  write(line: string): void {
    if (this.pending.length + line.length > this.maxBufferChars) return this.drop('the access log reader is not keeping up');
    this.pending += line;
    if (this.writing) return;
    if (this.pending.length >= this.flushChars) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushDelayMs);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing) return;
    if (this.pending === '') {
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    const batch = this.pending;
    this.pending = '';
    this.writing = true;
    this.output(batch, (error) => {
      this.writing = false;
      if (error) this.drop(`the access log cannot be written: ${error.message}`, countLines(batch));
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
    if (this.dropped === 0) this.options.onFirstDrop?.(reason);
    this.dropped += lines;
    accessLogDroppedTotal.inc(lines);
  }
}

function countLines(text: string): number {
  let lines = 0;
  for (let index = text.indexOf('\n'); index !== -1; index = text.indexOf('\n', index + 1)) lines += 1;
  return lines;
}
