/**
 * The answers a listener cut at its drain deadline (`shutdown.drainTimeout`): their requests end
 * as if their clients had left (the socket or stream is gone), and without this mark their lines
 * and metrics would read 499 `cancelled`, blaming clients that were still waiting.
 */
const CUT_BY_DRAIN = new WeakSet<object>();

/**
 * Where an HTTP/2 response holds its session: node:http2 forgets a stream's session once the stream
 * closes, and the request is recorded after that. A property, not a WeakMap: it is set per request.
 */
const SESSION = Symbol('switchboard.drain-session');
type SessionHolder = { [SESSION]?: object };

/** Marks `holder` (an HTTP/1.1 response, an HTTP/2 session) as cut by the drain deadline; call it before cutting. */
export function markCutByDrain(holder: object): void {
  CUT_BY_DRAIN.add(holder);
}

/** Lets `cutByDrain(response)` see a mark on the HTTP/2 `session` that carries it. */
export function holdSession(response: object, session: object): void {
  (response as SessionHolder)[SESSION] = session;
}

/** Whether `response`, or the HTTP/2 session it was answered on, was cut by a drain deadline (`markCutByDrain`). */
export function cutByDrain(response: object): boolean {
  if (CUT_BY_DRAIN.has(response)) return true;
  const session = (response as SessionHolder)[SESSION];
  return session !== undefined && CUT_BY_DRAIN.has(session);
}
