import type { ServerResponse } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Work the admin API does in one turn of the event loop before it lets other callbacks (proxied
 * traffic) run. A view of thousands of instances takes tens of milliseconds to build and write;
 * split into slices of this size, it delays a proxied request by about this much at most.
 */
export const ADMIN_SLICE_MS = 4;

/** A clock that says when the current slice is used up, and yields to the event loop then. */
export class SliceClock {
  private start = performance.now();

  /** Resolves at once while the slice lasts; else after the event loop's pending callbacks ran, starting a new slice. */
  async pause(): Promise<void> {
    if (performance.now() - this.start < ADMIN_SLICE_MS) return;
    await nextTurn();
    this.start = performance.now();
  }
}

/** A JSON body in parts, sent one after the other (`writeSliced`); `length` is their bytes in all, `etag` (quoted) names its version when it has one. */
export class JsonParts {
  constructor(
    readonly parts: readonly Buffer[],
    readonly length: number,
    readonly etag?: string,
  ) {}
}

/** Bytes given to the socket in one write (a `writev` of several parts). */
const WRITE_BYTES = 64 * 1024;

/**
 * Writes `parts` to `response` and ends it, a write of about `WRITE_BYTES` at a time, yielding to
 * the event loop between writes once a slice is used up and waiting for `drain` when the client
 * reads slower. Stops (and resolves) when the response closes early.
 */
export async function writeSliced(response: ServerResponse, parts: readonly Buffer[]): Promise<void> {
  const clock = new SliceClock();
  let index = 0;
  while (index < parts.length) {
    if (response.destroyed) return;
    response.cork();
    let bytes = 0;
    let more = true;
    while (index < parts.length && bytes < WRITE_BYTES) {
      bytes += parts[index]!.length;
      more = response.write(parts[index]!);
      index += 1;
    }
    response.uncork();
    if (!more) await drainedOrClosed(response);
    await clock.pause();
  }
  if (!response.destroyed) response.end();
}

/**
 * Resolves on the response's next `drain` or `close`, whichever comes first, and removes both
 * listeners then: `Promise.race` over two `once()` left the loser's listeners (and its `error`
 * one) on the response, one set per wait, past the default limit of 10 on a long body.
 */
function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.on('drain', done);
    response.on('close', done);
  });
}
