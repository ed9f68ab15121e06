import { constants, type ClientHttp2Session, type Settings } from 'node:http2';
import { cancelOldestDropped, MAY_RETIRE, oldestDroppedAt, STREAMS_WANTED, streamsFreeing } from './transport-http2-peer-end.ts';
import { openPooledSession, type Http2Target, type PooledSession } from './transport-http2-session-open.ts';
import { DEFAULT_HTTP2_MAX_PENDING_STREAMS, Http2StreamQueue, STREAM_WAIT_WITHOUT_CONNECT_TIMEOUT_MS } from './transport-http2-stream-queue.ts';

export type { Http2Target } from './transport-http2-session-open.ts';

/** How many sessions one instance gets, how long an extra one may stay idle, and how many requests may wait for a stream. */
export interface Http2SessionLimits {
  /** Sessions to the instance at once (a service's `concurrency.maxConnections`, else the pool's connections). */
  readonly maxSessions: number;
  /** A session beyond the first that has had no stream for this long is closed (the HTTP/1.1 pool's keep-alive idle rule). */
  readonly idleMs: number;
  /** Requests that may wait for a stream while `maxSessions` sessions are full (`DEFAULT_HTTP2_MAX_PENDING_STREAMS` when left out). */
  readonly maxPending?: number;
}

/** Defaults: as the HTTP/1.1 pool's (256 connections, 4 s idle), and Envoy's 1,024 pending requests. */
export const DEFAULT_HTTP2_SESSION_LIMITS: Http2SessionLimits = { maxSessions: 256, idleMs: 4_000, maxPending: DEFAULT_HTTP2_MAX_PENDING_STREAMS };

/**
 * The streams the first session is assumed to take until the peer's SETTINGS say how many (RFC
 * 9113 §6.5.2 recommends at least 100; node:http2 assumes the same as `peerMaxConcurrentStreams`).
 */
export const INITIAL_MAX_CONCURRENT_STREAMS = 100;

/**
 * Every session of the instance is at its peer's SETTINGS_MAX_CONCURRENT_STREAMS (or going away),
 * there are `maxSessions` of them, and no stream came free within the wait or the queue of waiting
 * requests is full (code `SB_UPSTREAM_POOL_FULL`, class `pool-overflow`, 503): the gateway's own
 * cap, which never counts against the instance.
 */
export class Http2PoolFullError extends Error {
  readonly code = 'SB_UPSTREAM_POOL_FULL';
}

/**
 * The pool was closed (the gateway shutting down, or dropping a transport it no longer uses) before
 * the request had a session (code `SB_UPSTREAM_POOL_CLOSED`, class `pool-closed`, 503): the
 * gateway's own doing, which never counts against the instance.
 */
export class Http2PoolClosedError extends Error {
  readonly code = 'SB_UPSTREAM_POOL_CLOSED';
}

/**
 * The instance's first SETTINGS on a new session allow no stream (SETTINGS_MAX_CONCURRENT_STREAMS
 * 0): the stream is refused before it was sent (code `SB_HTTP2_REFUSED_STREAM`, class
 * `connect-refused`, 502, retried on another instance), as a REFUSED_STREAM would be.
 */
export class Http2StreamRefusedError extends Error {
  readonly code = 'SB_HTTP2_REFUSED_STREAM';
}

/**
 * The HTTP/2 sessions to one instance, as Envoy's HTTP/2 connection pool: a stream goes on the
 * first session with room under its peer's SETTINGS_MAX_CONCURRENT_STREAMS, and another session is
 * opened when all are full (node:http2 would otherwise queue the stream silently until the
 * attempt's headers timeout blamed a healthy instance). Past `maxSessions` a reservation waits in a
 * FIFO queue (`Http2StreamQueue`) for a stream to come free, at most `maxPending` of them and each
 * for the connect timeout, and otherwise fails with `Http2PoolFullError`. A session that receives
 * GOAWAY takes no new stream but counts towards `maxSessions` until it has finished its streams and
 * closed; one beyond the first closes after `idleMs` without streams.
 */
export class Http2SessionPool {
  /** Oldest first: streams fill the first sessions, so the later ones empty and close when the load falls. */
  private readonly entries: PooledSession[] = [];
  /** Reservations waiting for a stream while every session is full and there are `maxSessions`. */
  private readonly queue = new Http2StreamQueue();
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * The SETTINGS_MAX_CONCURRENT_STREAMS the instance sent last, which a new session assumes until
   * its own SETTINGS arrive: a session opened because the others are full would otherwise take the
   * whole burst that filled them (100 assumed) and queue it as before.
   */
  private peerLimit = INITIAL_MAX_CONCURRENT_STREAMS;
  /**
   * Of a reservation on a connecting session (or a queued one served with it), the reservation it
   * was made again as (`claim`), so that `withdraw` finds it in the queue: only such ones are kept.
   */
  private readonly remade = new WeakMap<Promise<ClientHttp2Session>, Promise<ClientHttp2Session>>();
  /** Reservations held on a connecting session whose request went away (`withdraw`): handed the session as it is, to be given back at once. */
  private readonly gone = new WeakSet<Promise<ClientHttp2Session>>();

  constructor(
    private readonly target: Http2Target,
    private readonly limits: Http2SessionLimits = DEFAULT_HTTP2_SESSION_LIMITS,
  ) {}

  /** Sessions in the pool, connecting ones and going-away ones (GOAWAY received, streams still open) included. */
  get size(): number {
    return this.entries.length;
  }

  /** Requests waiting for a stream. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Reserves, synchronously, one stream on a session with room (so that attempts in the same tick
   * spread over sessions), connecting one when none has, or else waits in the queue for one;
   * resolves with the session once it is connected, or rejects with the connect error (refused,
   * TLS, timeout), `Http2PoolFullError` or `Http2PoolClosedError`. A resolved reservation must be
   * given back exactly once with `release`: when its stream closes, or when no stream is opened. A
   * rejected one holds nothing, and so does one taken back with `withdraw`.
   */
  readonly reserve = (): Promise<ClientHttp2Session> => {
    // The common path: the first session, far under its limit.
    const first = this.entries[0];
    if (first !== undefined && first.active < first.limit && !first.session.closed && !first.session.destroyed) return this.claim(first);
    const entry = this.withRoom();
    if (entry !== undefined) return this.claim(entry);
    if (this.closed) return Promise.reject(new Http2PoolClosedError(`the HTTP/2 sessions with ${this.target.address} are closed`));
    if (this.entries.length >= this.limits.maxSessions) return this.wait();
    return this.claim(this.connect());
  };

  /**
   * Takes a reservation still waiting in the queue back (its request ended: the client went away,
   * the call's deadline passed); true if it was waiting, and then it never settles and holds
   * nothing. A reservation not in the queue settles as before (false), and one still held on a
   * connecting session is not made again past its first SETTINGS' limit: its attempt gives it back.
   */
  readonly withdraw = (reservation: Promise<ClientHttp2Session>): boolean => {
    // A reservation made again (`claim`) waits under another promise than the one its request holds.
    for (let current: Promise<ClientHttp2Session> | undefined = reservation; current !== undefined; current = this.remade.get(current)) {
      if (this.queue.length > 0 && this.queue.withdraw(current)) return true;
      // Held on a connecting session: it still settles (the connect's failure is the instance's),
      // but is not made again for a request that is gone (a session opened, or a place in the queue, for nothing).
      this.gone.add(current);
    }
    return false;
  };

  /** Gives back a stream `reserve` resolved with `session`; a session no longer in the pool is ignored. */
  readonly release = (session: ClientHttp2Session): void => {
    const entries = this.entries;
    for (let index = 0; index < entries.length; index += 1) {
      const entry = entries[index]!;
      if (entry.session !== session) continue;
      entry.active -= 1;
      // The one cost of the queue to a request: a length compared with 0.
      if (this.queue.length > 0) this.serveQueue();
      if (entry.active === 0 && index > 0) {
        entry.idleSince = performance.now();
        this.idleTimer ??= setTimeout(this.closeIdle, this.limits.idleMs).unref();
      }
      return;
    }
  };

  /**
   * Closes every session, letting their streams finish for at most `graceMs` when given (shutdown),
   * then failing them with `Http2PoolClosedError` (the gateway's doing, counted against nobody), as
   * at once the attempts waiting for a session still connecting. Idempotent.
   */
  async close(graceMs?: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const entries = this.entries.splice(0);
    this.queue.rejectAll(() => new Http2PoolClosedError(`the HTTP/2 sessions with ${this.target.address} were closed by the gateway while the request waited for a stream`));
    const closing = entries.map((entry) => {
      // node:http2's close() of a connecting session would let it connect and then fail the attempts'
      // streams (ERR_HTTP2_INVALID_SESSION, the instance's upstream-protocol), or, mid TLS handshake,
      // wait without an event for the peer to close the socket.
      if (entry.socket === undefined) return entry.abandon(new Http2PoolClosedError(`the HTTP/2 session with ${this.target.address} was closed by the gateway while it connected`));
      const { session } = entry;
      if (session.destroyed) return;
      // Not close(callback): a session already closing (GOAWAY received) would never call it.
      return new Promise<void>((resolve) => {
        session.once('close', resolve);
        session.close();
      });
    });
    // A graceful close waits as long as the upstream takes to answer or to read what it was sent, for
    // good when it never does: past the bound the sessions left are destroyed (NO_ERROR in their last
    // GOAWAY, as in the first: a shutdown, no fault of either side's), and their sockets with them.
    const bound = graceMs === undefined ? undefined : setTimeout(() => {
      const error = new Http2PoolClosedError(`the HTTP/2 session with ${this.target.address} was closed by the gateway before its streams finished`);
      for (const { session, socket } of entries) {
        if (!session.destroyed) session.destroy(error, constants.NGHTTP2_NO_ERROR);
        socket?.destroy();
      }
    }, graceMs);
    await Promise.all(closing);
    clearTimeout(bound);
  }

  /** Closes the sessions beyond the first idle for `idleMs`, and waits again for those idle for less. */
  private readonly closeIdle = (): void => {
    this.idleTimer = undefined;
    const now = performance.now();
    let nextMs = Infinity;
    for (let index = this.entries.length - 1; index > 0; index -= 1) {
      const entry = this.entries[index]!;
      if (entry.active > 0) continue;
      // Timers may fire a little early; a millisecond's slack keeps one from re-arming for nothing.
      const leftMs = entry.idleSince + this.limits.idleMs - now;
      if (leftMs > 1) {
        nextMs = Math.min(nextMs, leftMs);
        continue;
      }
      this.entries.splice(index, 1);
      entry.session.close();
    }
    if (nextMs !== Infinity) this.idleTimer = setTimeout(this.closeIdle, nextMs).unref();
    // Only a session that takes no stream (its peer said 0) is idle while requests wait: its place is theirs.
    if (this.queue.length > 0) this.serveQueue();
  };

  /**
   * Reserves a stream on `entry`. On a session still connecting, whose limit is only assumed (100,
   * or the instance's last one), the reservation is held to the limit its peer's first SETTINGS
   * say: the first reservations up to it keep the session, and the rest are given back and made
   * again (another session with room, a new one, or the queue), instead of being sent where the
   * instance would refuse them or node:http2 would hold them unsent until a headers timeout.
   */
  private claim(entry: PooledSession): Promise<ClientHttp2Session> {
    entry.active += 1;
    if (entry.socket !== undefined) return entry.ready;
    const claimed: Promise<ClientHttp2Session> = entry.ready.then((session) => {
      // Its attempt gives it back unused: no admission taken from a request still waiting.
      if (this.gone.has(claimed)) return session;
      if (entry.admitted < entry.limit || session.closed || session.destroyed) {
        entry.admitted += 1;
        return session;
      }
      this.release(session);
      // An instance that takes no stream at all (0) refuses it, as its REFUSED_STREAM would: made
      // again, each reservation would open a session that says 0 too, up to `maxSessions` for one request.
      if (entry.limit === 0) throw new Http2StreamRefusedError(`${this.target.address} takes no HTTP/2 stream on a new session (SETTINGS_MAX_CONCURRENT_STREAMS 0)`);
      const again = this.reserve();
      this.remade.set(claimed, again);
      return again;
    });
    return claimed;
  }

  /** The first session, oldest first, that takes another stream. */
  private withRoom(): PooledSession | undefined {
    for (const entry of this.entries) if (entry.active < entry.limit && !entry.session.closed && !entry.session.destroyed) return entry;
    return undefined;
  }

  /** Queues a reservation past `maxSessions`, or refuses it when `maxPending` already wait. */
  private wait(): Promise<ClientHttp2Session> {
    const { address, connectTimeoutMs } = this.target;
    const maxPending = this.limits.maxPending ?? DEFAULT_HTTP2_MAX_PENDING_STREAMS;
    const sessions = () => `${this.entries.length} HTTP/2 sessions with ${address}, all at their streams limit or going away`;
    if (this.queue.length >= maxPending) return Promise.reject(new Http2PoolFullError(`${sessions()}, and ${maxPending} requests already wait for a stream`));
    const waitMs = connectTimeoutMs || STREAM_WAIT_WITHOUT_CONNECT_TIMEOUT_MS;
    const waiting = this.queue.add(waitMs, () => new Http2PoolFullError(`${sessions()}: no stream came free within ${waitMs} ms`));
    // A stream held only for a replaced answer's body nobody reads comes free for it (its close serves the queue).
    this.freeDroppedStream();
    return waiting;
  }

  /**
   * Cancels one dropped body (`cancelOldestDropped`) for a request that waits and that no cancel
   * frees a stream for yet: the oldest of the pool's, on a session where the freed stream can be
   * taken. Not every dropped body of every session: each cancel is an RST_STREAM the instance counts
   * towards its Rapid Reset limit (and `cancelStream` towards retiring the session), and one request
   * takes one stream.
   */
  private freeDroppedStream(): void {
    if (this.unserved() <= 0) return;
    let oldest: PooledSession | undefined;
    let oldestAt = Infinity;
    for (const entry of this.entries) {
      if (!this.freeingServes(entry)) continue;
      const droppedAt = oldestDroppedAt(entry.session);
      if (droppedAt !== undefined && droppedAt < oldestAt) {
        oldest = entry;
        oldestAt = droppedAt;
      }
    }
    if (oldest !== undefined) cancelOldestDropped(oldest.session);
  }

  /** Requests waiting for a stream less the streams cancelled for them that have not closed yet (`streamsFreeing`). */
  private unserved(): number {
    let unserved = this.queue.length;
    for (const entry of this.entries) unserved -= streamsFreeing(entry.session);
    return unserved;
  }

  /**
   * Whether a stream freed on `entry` goes to a waiting request: its session takes new streams (not
   * going away) and, with the streams already being freed on it, is over its peer's limit by none
   * (a limit the peer lowered below the streams in flight leaves a freed stream no room).
   */
  private freeingServes(entry: PooledSession): boolean {
    const { session } = entry;
    return !session.closed && !session.destroyed && entry.active - streamsFreeing(session) <= entry.limit;
  }

  /** Gives the waiting reservations, oldest first, the streams there is room for now, opening sessions up to `maxSessions`. */
  private serveQueue(): void {
    while (this.queue.length > 0) {
      let entry = this.withRoom();
      if (entry === undefined) {
        if (this.closed || this.entries.length >= this.limits.maxSessions) return;
        entry = this.connect();
      }
      const claimed = this.claim(entry);
      const served = this.queue.serveOldest(claimed);
      if (served !== undefined && claimed !== entry.ready) this.remade.set(served, claimed);
    }
  }

  private connect(): PooledSession {
    const entry = openPooledSession(this.target, this.peerLimit);
    const { session } = entry;
    // Retired for a burst of resets (`cancelStream`) only when the requests after have somewhere to go.
    (session as ClientHttp2Session & { [MAY_RETIRE]?: () => boolean })[MAY_RETIRE] = () =>
      this.entries.length < this.limits.maxSessions || this.entries.some((other) => other !== entry && !other.session.closed && !other.session.destroyed);
    // A dropped body's stream goes at once to a request waiting for one that no other cancel serves (`dropBody`).
    (session as ClientHttp2Session & { [STREAMS_WANTED]?: () => boolean })[STREAMS_WANTED] = () => this.queue.length > 0 && this.freeingServes(entry) && this.unserved() > 0;
    // Every SETTINGS frame may change the limit; streams already over a lowered one stay (node queues them).
    session.on('remoteSettings', (settings: Settings) => {
      entry.limit = settings.maxConcurrentStreams ?? INITIAL_MAX_CONCURRENT_STREAMS;
      // A session refusing all streams for now (0, as some servers say before their GOAWAY) is not
      // what a new one will say: learnt, it would open a session per request up to the cap.
      if (entry.limit > 0) this.peerLimit = entry.limit;
      if (this.queue.length > 0) this.serveQueue();
    });
    const forget = () => {
      const index = this.entries.indexOf(entry);
      if (index < 0) return;
      this.entries.splice(index, 1);
      // Its place under `maxSessions` is free: a waiting request may open a session.
      if (this.queue.length > 0) this.serveQueue();
    };
    // After GOAWAY node:http2 closes the session (`closed`: `reserve` passes it by) and lets its
    // streams finish; it stays in the pool until then, so that the sessions open to the instance
    // never exceed `maxSessions`.
    session.once('close', forget);
    // An idle upstream session must not keep the process alive (the listener does while it runs).
    session.unref();
    this.entries.push(entry);
    return entry;
  }
}
