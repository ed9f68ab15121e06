import type { OutgoingHttpHeaders } from 'node:http';
import type { ClientResponse, GatewayContext } from '../context.ts';

/**
 * A response header hook threw (a header policy, a middleware's hook): the gateway's own failure,
 * which `classifyUpstreamError` classes `internal` whatever the upstream answered, so that it never
 * counts against the instance (passive health, breakers). The hook's error is the `cause`.
 */
export class ResponseHookError extends Error {
  readonly code = 'SB_RESPONSE_HOOK_FAILED';
  constructor(cause: unknown) {
    super(`a response header hook failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * The client's response refused the head of an answer as the gateway made it, an upstream's after
 * the hooks (node:http throws from `writeHead` on a header it cannot send, such as a `Trailer` on an
 * answer with a `Content-Length`): the gateway's own failure, which `classifyUpstreamError` classes
 * `internal` as a `ResponseHookError`, so that it never counts against the instance. The refusal
 * is the `cause`.
 */
export class AnswerHeadError extends Error {
  readonly code = 'SB_ANSWER_HEAD_FAILED';
  constructor(cause: unknown) {
    super(`the answer's head could not be written: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * Takes back from `response` the headers of a head it refused (`AnswerHeadError`), so that the
 * gateway's own answer in its place goes out without them: node:http merges a head into the headers
 * set on the response before (`setHeader`: hsts, a drain's `connection: close`) and node:http2
 * always does, the refused ones included, so that answer would carry the upstream's headers, or be
 * refused for the same one again. Headers set before under the same names go too: the hooks, which
 * run again over that answer, put theirs back. Does nothing once the head went out.
 */
export function forgetRefusedHead(response: ClientResponse, outgoing: OutgoingHttpHeaders | undefined): void {
  if (outgoing === undefined || response.headersSent) return;
  for (const name in outgoing) response.removeHeader(name);
}

/**
 * Runs the request's response header hooks over an answer, an upstream's (the transports) or one of
 * the gateway's own (an error, a refusal, a fallback): `headers` is edited in place and returned.
 * A hook that throws is reported as a `ResponseHookError`. A `connection` the answer had before
 * them stays, whatever a hook removes or sets: it is the gateway's own `close` (an upstream's is
 * removed with the other hop-by-hop headers), without which the connection would live on behind a
 * body the gateway does not read, the requests pipelined behind it never answered; or a 101's
 * `upgrade`, without which the client would refuse the WebSocket.
 */
export function applyHeaderHooks(context: GatewayContext, status: number, headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const closing = headers.connection;
  try {
    for (const hook of context.responseHeaderHooks) hook(status, headers, context);
  } catch (error) {
    throw error instanceof ResponseHookError ? error : new ResponseHookError(error);
  }
  if (closing !== undefined) headers.connection = closing;
  return headers;
}
