import type { Http2Session, Http2Stream } from 'node:http2';
import { addAbortSignal, PassThrough, Readable } from 'node:stream';

/** Where a watched stream records that its peer's END_STREAM came (`watchPeerEnd`). */
const PEER_ENDED = Symbol('switchboard.peerEnded');
/** Where `cancelStream` marks a stream it reset: the gateway's doing, not the peer's (`cancelledByGateway`). */
const CANCELLED = Symbol('switchboard.cancelledByGateway');
type WatchedStream = Http2Stream & { [PEER_ENDED]?: boolean; [CANCELLED]?: boolean };

/** node:http2's streams inherit Readable's `push` (a unit test holds it so on each Node version). */
const readablePush = Readable.prototype.push;

/**
 * Watches `stream` for its peer's END_STREAM (read it with `peerEnded`); call it before the
 * stream can read a frame: at once after `session.request()`, or, for a server stream, in the
 * session's 'stream' event.
 *
 * node:http2 ends a stream's readable side at the peer's END_STREAM (a DATA or HEADERS frame) and
 * also when the stream closes: an RST_STREAM with NO_ERROR, or a close with no error code, ends it
 * the same way, `rstCode` 0 either way, so at 'end' a cut body looks whole. RFC 9113 §8.1 allows
 * NO_ERROR only after a complete message (a server that answered without reading the request
 * body); before END_STREAM it means the message was truncated. The two differ in order only:
 * node pushes the end of a peer's END_STREAM while the stream is still open, and the end of a
 * close after marking the stream closed, so the stream's own `push` is watched. One module-level
 * function and a symbol slot per stream, no closure: this runs for every HTTP/2 stream.
 */
export function watchPeerEnd(stream: Http2Stream): void {
  const watched = stream as WatchedStream & { _readableState: { ended: boolean } };
  // A server stream whose HEADERS frame carried END_STREAM has its end pushed before its 'stream'
  // event (node pushes DATA only once the stream reads): an end pushed while it is open was the
  // peer's. One that closed meanwhile is taken as cut (reset before the gateway saw it).
  watched[PEER_ENDED] = watched._readableState.ended && !stream.closed;
  watched.push = pushWatched;
}

/** Whether the peer of a stream `watchPeerEnd` watches has sent END_STREAM. */
export function peerEnded(stream: Http2Stream): boolean {
  return (stream as WatchedStream)[PEER_ENDED] === true;
}

/** Whether the gateway reset `stream` itself (`cancelStream`), rather than its peer or their connection. */
export function cancelledByGateway(stream: Http2Stream): boolean {
  return (stream as WatchedStream)[CANCELLED] === true;
}

/** A watched stream's `push`. */
function pushWatched(this: WatchedStream, chunk: unknown, encoding?: BufferEncoding): boolean {
  if (chunk === null && !this.closed) this[PEER_ENDED] = true;
  return readablePush.call(this, chunk, encoding);
}

/**
 * node:http2's own AbortError, which it keeps internal: a stream destroyed with it is reset with
 * RST_STREAM CANCEL alone (what a request's AbortSignal does), any other error gives
 * INTERNAL_ERROR. Taken once from `addAbortSignal`, which destroys a stream with one.
 */
const NODE_ABORT_ERROR: Error = (() => {
  const probe = new PassThrough();
  probe.on('error', () => undefined);
  addAbortSignal(AbortSignal.abort(), probe);
  return probe.errored!;
})();

/**
 * Resets `stream` with RST_STREAM CANCEL and nothing before it: an attempt that failed (its client
 * gone mid-upload, a timeout) must not look whole to the upstream. `stream.close(NGHTTP2_CANCEL)`
 * ends the writable side first, and node sends that END_STREAM before the RST_STREAM, so an
 * upstream took an upload cut short for a whole request. Destroying the stream with node's
 * AbortError leaves `end()` nothing to send; one shared instance, nothing made per stream (a
 * request's own AbortSignal would cost an AbortController and an EventTarget listener each).
 */
export function cancelStream(stream: Http2Stream): void {
  // Read before the destroy, which detaches the stream from its session.
  const session = stream.session as CountedSession | undefined;
  (stream as WatchedStream)[CANCELLED] = true;
  stream.destroy(NODE_ABORT_ERROR);
  if (session !== undefined) countResetSent(session);
}

/**
 * Drops the rest of a body nobody reads (an answer the gateway replaced): read on and thrown away
 * while it ends within `DROPPED_BODY_BYTES` and `DROPPED_BODY_MS`, else cancelled (`cancelStream`).
 * A small page that ends is not reset: node emits the stream's 'response' before the DATA frames
 * read with the head, and a node server sends END_STREAM in a frame of its own after the page, so
 * a cancel at the head reset whole answers, each counted towards `RESETS_BEFORE_RETIRING`. A page
 * that never ends, or a large one, is cancelled rather than read until the idle-body timeout.
 * Cancelled at once instead when a request of the session's pool waits for a stream that no other
 * cancel frees already (`STREAMS_WANTED`).
 */
export function dropBody(stream: Http2Stream): void {
  if (stream.closed) return;
  const session = stream.session as CountedSession | undefined;
  // A request already waits for a stream of this session's pool: it is given this one at once.
  if (session?.[STREAMS_WANTED]?.() === true) return cancelForWaiting(session, stream);
  let bytes = 0;
  const cancel = () => {
    if (!stream.closed) cancelStream(stream);
  };
  const timer = setTimeout(cancel, DROPPED_BODY_MS);
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > DROPPED_BODY_BYTES) cancel();
  });
  // A Map keeps its insertion order: the oldest dropped body first.
  const dropping = session === undefined ? undefined : (session[DROPPING] ??= new Map());
  dropping?.set(stream, performance.now());
  stream.once('close', () => {
    clearTimeout(timer);
    dropping?.delete(stream);
  });
  stream.resume();
}

/** When the oldest body `dropBody` still reads on `session` was dropped (`performance.now()`), or undefined when it reads none. */
export function oldestDroppedAt(session: Http2Session): number | undefined {
  const dropping = (session as CountedSession)[DROPPING];
  if (dropping === undefined) return undefined;
  for (const [stream, since] of dropping) if (!stream.closed) return since;
  return undefined;
}

/**
 * Cancels the oldest body `dropBody` still reads on `session`, for a request of its pool that waits
 * for a stream (`Http2SessionPool`) and would otherwise wait up to `DROPPED_BODY_MS` for one that
 * nobody reads, and past its wait get a 503 pool-overflow; true if there was one. One body per
 * waiting request, not all of them: each cancel is an RST_STREAM the instance counts towards its
 * Rapid Reset limit, and the oldest is the likeliest never to end (a small page ends soon after its
 * head, with no reset) and the nearest to its own cancel at `DROPPED_BODY_MS`.
 */
export function cancelOldestDropped(session: Http2Session): boolean {
  const dropping = (session as CountedSession)[DROPPING];
  if (dropping === undefined) return false;
  for (const stream of dropping.keys()) {
    if (stream.closed) continue;
    cancelForWaiting(session as CountedSession, stream);
    return true;
  }
  return false;
}

/** Streams of `session` cancelled for a waiting request that have not closed yet: the pool's waiting requests they are to serve. */
export function streamsFreeing(session: Http2Session): number {
  return (session as CountedSession)[FREEING] ?? 0;
}

/** Cancels a dropped body's `stream` for a waiting request, counted in `streamsFreeing` until it closes (its 'close' gives its stream back to the pool). */
function cancelForWaiting(session: CountedSession, stream: Http2Stream): void {
  session[FREEING] = (session[FREEING] ?? 0) + 1;
  stream.once('close', () => (session[FREEING]! -= 1));
  cancelStream(stream);
}

/** Set on a session by its pool: whether a request waits for a stream that a cancel on this session would serve (`dropBody` then cancels at once). */
export const STREAMS_WANTED = Symbol('switchboard.streamsWanted');
/** Where `dropBody` keeps the streams whose bodies it reads on a session, oldest first, with when each was dropped. */
const DROPPING = Symbol('switchboard.droppingBodies');
/** Where `cancelForWaiting` counts a session's streams cancelled for waiting requests and not yet closed. */
const FREEING = Symbol('switchboard.streamsFreeing');

/** The most of a dropped body read on before its stream is cancelled (`dropBody`): a stream's initial flow-control window. */
export const DROPPED_BODY_BYTES = 64 * 1024;

/** How long a dropped body may take to end before its stream is cancelled (`dropBody`). */
export const DROPPED_BODY_MS = 1_000;

/**
 * Counts, on `session`, a stream reset with PROTOCOL_ERROR before its answer's head
 * (`http2-protocol-error`): mostly nghttp2 refusing the upstream's head (a 204 with a Content-Length
 * other than 0). node counts each such head as an invalid frame, for good, and past
 * its `maxSessionInvalidFrames` (1,000) destroys the session with every stream still on it
 * (ERR_HTTP2_TOO_MANY_INVALID_FRAMES, counted against the instance); the RST_STREAM it sends counts
 * towards the instance's Rapid Reset limit as `cancelStream`'s do. The session is retired from
 * `REFUSALS_BEFORE_RETIRING` on once its pool can replace it (`MAY_RETIRE`): retired, the only
 * session of a full pool would keep its place for as long as a long-lived stream lasts on it (a
 * gRPC watch: for good, as no more refusals come to end it), every request after waiting for a
 * stream until a 503 pool-overflow; kept, it takes them until node ends it at its limit.
 */
export function countRefusedAnswer(session: Http2Session): void {
  const counted = session as CountedSession;
  if (counted.closed || counted.destroyed) return;
  const refused = (counted[ANSWERS_REFUSED] ?? 0) + 1;
  counted[ANSWERS_REFUSED] = refused;
  if (refused >= REFUSALS_BEFORE_RETIRING && (counted[MAY_RETIRE]?.() ?? true)) counted.close();
  else countResetSent(counted);
}

/** Counts an RST_STREAM the gateway sent on `session` and retires the session past a burst of them (`RESETS_BEFORE_RETIRING`). */
function countResetSent(session: CountedSession): void {
  if (session.closed || session.destroyed) return;
  // A token bucket as the instance's own: resets the session had earned back since the last count first.
  const now = performance.now();
  const since = session[RESETS_SINCE_MS] ?? now;
  const sent = Math.max(0, (session[RESETS_SENT] ?? 0) - ((now - since) * RESETS_FORGIVEN_PER_SECOND) / 1_000) + 1;
  session[RESETS_SENT] = sent;
  session[RESETS_SINCE_MS] = now;
  if (sent >= RESETS_BEFORE_RETIRING && (session[MAY_RETIRE]?.() ?? true)) session.close();
}

/**
 * Set on a session by its pool: whether retiring it leaves the next requests a session to go on
 * (another open one, or room under `maxSessions` for a new one). A retired session keeps its place
 * in the pool while its long-lived streams (gRPC watches) last, so at the cap with no other session
 * every request would wait for a stream until a 503 pool-full; kept, it still takes them, and only
 * a burst past the instance's own limit (twice ours) would end it.
 */
export const MAY_RETIRE = Symbol('switchboard.mayRetire');

/** Where `cancelStream` counts the RST_STREAMs sent on a session (less those forgiven since), and since when. */
const RESETS_SENT = Symbol('switchboard.resetsSent');
const RESETS_SINCE_MS = Symbol('switchboard.resetsSinceMs');
/** Where `countRefusedAnswer` counts the answer heads node:http2 refused on a session, for good, as node counts them. */
const ANSWERS_REFUSED = Symbol('switchboard.answersRefused');
type CountedSession = NonNullable<Http2Stream['session']> & {
  [RESETS_SENT]?: number;
  [RESETS_SINCE_MS]?: number;
  [ANSWERS_REFUSED]?: number;
  [MAY_RETIRE]?: () => boolean;
  [STREAMS_WANTED]?: () => boolean;
  [DROPPING]?: Map<Http2Stream, number>;
  [FREEING]?: number;
};

/**
 * The answer heads node:http2 refuses on one upstream session before the gateway retires it: half
 * node's `maxSessionInvalidFrames` (1,000), leaving room for the refusals of the streams still on it.
 */
export const REFUSALS_BEFORE_RETIRING = 500;

/**
 * The RST_STREAMs the gateway sends on one upstream session in a burst before it retires it: a
 * graceful close (GOAWAY, no new stream; those in flight finish) so that the next requests go on a
 * new session. Servers built on nghttp2 1.57+ (node:http2, Apache, h2o…) answer a peer's resets
 * beyond a burst of 1,000, then 33 a second, with GOAWAY and kill the session (their mitigation of
 * the HTTP/2 Rapid Reset attack, CVE-2023-44487). One session carries many clients' requests, so a
 * client that cancels its calls in bulk had every other stream on it reset, counted against a
 * healthy instance. Half the burst leaves room for the streams still open on the retired session
 * to be cancelled too.
 */
export const RESETS_BEFORE_RETIRING = 500;

/**
 * The resets forgiven per second, as the instance's bucket refills (half its 33, for its whole-second
 * clock): a busy service's ordinary cancellations (calls past their deadline, clients gone) never
 * trip that defence, and counted for good they retired its session every few hundred, each retired
 * one kept open by its long-lived streams (gRPC watches) towards `concurrency.maxConnections`.
 */
export const RESETS_FORGIVEN_PER_SECOND = 16;
