import { batchedRandomUUID } from './request-id-uuid.ts';
import type { GatewayContext, Middleware, ResponseHeadersHook } from '../../context.ts';

/** The header that carries the request id both ways. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** An incoming id is kept only when it is this sane: it ends up in logs and upstream headers. */
const SANE_REQUEST_ID = /^[\w.-]{1,128}$/;

/** Settings of the request-id middleware. */
export interface RequestIdOptions {
  /** Header name; `x-request-id` by default. */
  readonly header?: string;
  /** Id generator; a random (version 4) UUID by default (`batchedRandomUUID`). */
  readonly generate?: () => string;
}

/**
 * Gives every request an id: the client's `X-Request-Id` when it is 1–128 characters of
 * `[A-Za-z0-9_.-]`, else a fresh UUID. Sets it on the context (whose `log` then carries it), on
 * the upstream request, and on the response (also over an id the upstream sent back; answers the
 * gateway writes itself carry it too).
 */
export function requestId(options: RequestIdOptions = {}): Middleware {
  const assign = requestIdStep(options);
  return async function requestId(context, next) {
    assign(context);
    await next();
  };
}

/** What `requestId` does before the inner layers, as a plain step (the request runner calls it without a middleware frame). */
export function requestIdStep(options: RequestIdOptions = {}): (context: GatewayContext) => void {
  const header = (options.header ?? REQUEST_ID_HEADER).toLowerCase();
  const generate = options.generate ?? batchedRandomUUID;
  // One hook for every request (it reads the id from the request's context): no closure per request.
  // It wins over an upstream's own id; gateway answers (sendGatewayError) add the id themselves.
  const answerWithId: ResponseHeadersHook = (_status, headers, context) => {
    headers[header] = context.requestId;
  };
  return (context) => {
    const incoming = context.request.headers[header];
    const id = typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : generate();
    context.requestId = id;
    context.upstream.headers[header] = id;
    context.responseHeaderHooks.push(answerWithId);
  };
}
