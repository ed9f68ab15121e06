import { LISTENER_ANSWER, type AnsweredResponse, type GatewayContext } from '../context.ts';
import { recordListenerAnswer } from '../proxy/error-response.ts';

/**
 * Calls `gone` once, never synchronously, as soon as the client of `context` goes away while a
 * middleware waits (a `fault` or `rateLimit` delay, `whileClientStays`), and returns the function that stops the
 * watch (call it when the wait is over, before the layers after it run); returns undefined, calling
 * nothing, when the client is gone already. The client's response is watched for its 'close': an
 * HTTP/1.1 request pipelined behind another, its response not yet given the connection, hears of
 * the connection's end all the same, since the listener closes such a response with it
 * (http1-connections.ts). Only a middleware that waits adds the listener, so requests that do not
 * wait pay nothing for it.
 */
export function watchClientGone(context: GatewayContext, gone: () => void): (() => void) | undefined {
  const response = context.response;
  if (response.destroyed || response.writableEnded) return undefined;
  response.once('close', gone);
  return () => void response.off('close', gone);
}

/** What a wait that watched its client came to: what it resolved with, and whether the client left meanwhile. */
export interface WatchedWait<T> {
  readonly result: T;
  readonly clientGone: boolean;
}

/**
 * Runs `wait` with a controller that aborts (reason `CLIENT_GONE`) as soon as the client of
 * `context` goes away (`watchClientGone`), the watch ended when `wait` settles; resolves with its
 * result and whether the client left, or undefined, running nothing, when the client is gone
 * already. `wait` may abort the controller itself for its own reasons (a deadline): only the
 * client's leaving counts as gone. The wait of a `forwardAuth` check, a queued `basicAuth` check
 * and a request queued for a concurrency slot; what to do with a result nobody is left to hear
 * (remember a verdict, pass a slot on) is the caller's.
 */
export async function whileClientStays<T>(context: GatewayContext, wait: (controller: AbortController) => Promise<T>): Promise<WatchedWait<T> | undefined> {
  const controller = new AbortController();
  const unwatch = watchClientGone(context, () => controller.abort(CLIENT_GONE));
  if (unwatch === undefined) return undefined;
  try {
    const result = await wait(controller);
    return { result, clientGone: controller.signal.reason === CLIENT_GONE };
  } finally {
    unwatch();
  }
}

/** The reason a `whileClientStays` controller aborts with when the client leaves. */
export const CLIENT_GONE = new Error('the client went away');

/**
 * Resolves true after `ms`, or false as soon as the client goes away first (`watchClientGone`), its
 * timer then cleared: the wait of a `fault` delay and of a `rateLimit` that delays.
 */
export function delayUnlessClientGone(context: GatewayContext, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    // `gone` is never called synchronously: the timer is set by then.
    const unwatch = watchClientGone(context, () => {
      clearTimeout(timer);
      resolve(false);
    });
    if (unwatch === undefined) return resolve(false);
    const timer = setTimeout(() => {
      unwatch();
      resolve(true);
    }, ms);
  });
}

/**
 * Records a request whose client went away while a middleware waited, before anything was sent:
 * 499 `cancelled`, as the proxy records one, with no upstream; or the answer its listener gave in
 * its place before cutting it (an HTTP/1.1 400 or 408, an HTTP/2 408). Its response ends here too.
 */
export function recordClientGone(context: GatewayContext): void {
  // Defensive: what waits on the response's end (`afterResponse`: the access log, an inFlightReq
  // slot, the in-flight count) must hear of it. A response its client left is closed already, also
  // one pipelined behind another (the listener closes it with its connection, http1-connections.ts).
  if (!context.response.destroyed) context.response.destroy();
  if (recordListenerAnswer(context)) return;
  context.outcome.status = 499;
  context.outcome.errorClass = 'cancelled';
}

/**
 * After a wait that the client's leaving cannot cut short (a Redis call of a rate limit, a JWKS
 * fetch of `jwtAuth`: shared with other requests, or bounded by a timeout of its own): true when
 * nothing may go on, the request recorded as its client left it (`recordClientGone`: 499 with no
 * upstream) or as its listener answered it meanwhile (`endAnsweredByListener`); false, doing
 * nothing, while the client still waits. Else the request went upstream for nobody, a side effect
 * there for an answer no one reads, and its line read the upstream's status.
 */
export function endedDuringWait(context: GatewayContext): boolean {
  if (context.response.destroyed) {
    recordClientGone(context);
    return true;
  }
  return endAnsweredByListener(context);
}

/**
 * Ends a request its listener answered in its place while a middleware waited (a body that missed
 * `limits.requestTimeout` while the wait held it unread: an HTTP/1.1 408 written as the connection
 * ended, whose client may keep its side open, so the response has not closed) and returns true: that
 * answer is recorded as the request's, and the connection cut, as the proxy's attempt would have been,
 * not left open with its body unread for as long as its client keeps its side open. Nothing goes on.
 * False, doing nothing, for a request not answered so.
 */
export function endAnsweredByListener(context: GatewayContext): boolean {
  if ((context.response as AnsweredResponse)[LISTENER_ANSWER] === undefined) return false;
  recordListenerAnswer(context);
  context.response.destroy();
  return true;
}
