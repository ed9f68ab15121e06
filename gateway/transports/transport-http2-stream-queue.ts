import type { ClientHttp2Session } from 'node:http2';

/** Requests that may wait for a stream of an instance whose sessions are all full: Envoy's `max_pending_requests` default. */
export const DEFAULT_HTTP2_MAX_PENDING_STREAMS = 1024;

/**
 * How long a request waits for a stream when its service has no connect timeout (0): as long as
 * a request waits for a `concurrency.maxRequests` slot then.
 */
export const STREAM_WAIT_WITHOUT_CONNECT_TIMEOUT_MS = 1_000;

/** One request waiting for a stream, and what settles it. */
interface StreamWaiter {
  readonly reservation: Promise<ClientHttp2Session>;
  readonly resolve: (ready: Promise<ClientHttp2Session>) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * The requests waiting for a stream of an HTTP/2 session pool that has no room left, oldest first
 * (Envoy's pending requests, nginx's upstream `queue`): the pool bounds their number, `add` the
 * time each waits. Only a pool at its cap makes one, so a request that finds room pays nothing.
 */
export class Http2StreamQueue {
  private readonly waiters: StreamWaiter[] = [];

  /** Requests waiting now. */
  get length(): number {
    return this.waiters.length;
  }

  /**
   * A reservation that waits at the back of the queue: it settles as the session `serveOldest`
   * hands it does, or rejects with `expired()` after `waitMs`; one taken back with `withdraw`
   * never settles.
   */
  add(waitMs: number, expired: () => Error): Promise<ClientHttp2Session> {
    let resolve!: StreamWaiter['resolve'];
    let reject!: StreamWaiter['reject'];
    const reservation = new Promise<ClientHttp2Session>((yes, no) => {
      resolve = yes;
      reject = no;
    });
    // Unref'd: a request waiting here is held by its client's connection, never by this timer, so a
    // process with nothing else left exits instead of waiting out the wait (close() rejects the waiters).
    const timer = setTimeout(() => {
      if (this.withdraw(reservation)) reject(expired());
    }, waitMs).unref();
    this.waiters.push({ reservation, resolve, reject, timer });
    return reservation;
  }

  /** Hands `ready` (a session's, with a stream reserved on it) to the oldest waiting request, and returns that request's reservation; undefined when none waits. */
  serveOldest(ready: Promise<ClientHttp2Session>): Promise<ClientHttp2Session> | undefined {
    const waiter = this.waiters.shift();
    if (waiter === undefined) return undefined;
    clearTimeout(waiter.timer);
    waiter.resolve(ready);
    return waiter.reservation;
  }

  /** Takes `reservation` out of the queue (its request went away); true if it was waiting, and then it never settles. */
  withdraw(reservation: Promise<ClientHttp2Session>): boolean {
    const index = this.waiters.findIndex((waiter) => waiter.reservation === reservation);
    if (index < 0) return false;
    clearTimeout(this.waiters[index]!.timer);
    this.waiters.splice(index, 1);
    return true;
  }

  /** Rejects every waiting request with `error()`, oldest first, and empties the queue. */
  rejectAll(error: () => Error): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error());
    }
  }
}
