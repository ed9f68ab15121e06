import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext, HeldAnswer } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { sendHeldAnswer } from '../../transports/transport-response-body.ts';
import { isNotModified, NO_BODY, notModifiedHeaders, preconditionsHold } from './cache-conditional.ts';
import { rangeOfStored } from './cache-range.ts';
import type { CachedAnswer } from './cache-store.ts';

/**
 * The answer a stored one (`status`, `headers` with its `Age`, the caller's own, `body`) makes for a
 * request whose headers, as the upstream would get them, are `sent`, in RFC 9110 §13.2.2's order
 * (nginx's not_modified and range filters on a cached answer): a `412` with no body and none of the
 * stored headers when a 2xx fails its `If-Match` or `If-Unmodified-Since` (`preconditionsHold`;
 * nginx drops the validators of its 412 too, and the stored freshness would let a cache downstream
 * keep an error); else a 304 with its validators and freshness when its `If-None-Match` or
 * `If-Modified-Since` meet it (RFC 9110 §15.4.5); else a stored 200's part for its `Range`
 * (`rangeOfStored`), or the answer itself. Every path that sends a stored answer (HIT, UPDATING,
 * REVALIDATED, STALE) goes through here, so a request gets the same answer whichever sends it.
 */
export function answerFromMemory(method: string | undefined, sent: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, body: Buffer): HeldAnswer {
  if (!preconditionsHold(sent, status, headers)) return { status: 412, headers: { 'content-length': '0' }, body: NO_BODY };
  if (isNotModified(sent, status, headers)) return { status: 304, headers: { ...notModifiedHeaders(headers), age: headers.age }, body: NO_BODY };
  return rangeOfStored(method, sent, status, headers, body);
}

/**
 * Sends a stored answer as the upstream's would go (the request's response header hooks, its
 * encoder, an `errors` page for a 412 or 416), with `Age` (RFC 9111 §5.1); HEAD gets the head alone.
 * The request's conditionals and `Range`, as the upstream would get them (`sent`), make of it a
 * 412, a 304 or a part (`answerFromMemory`), as the upstream would have answered. `cacheStatus` goes in
 * `statusHeader`: `HIT`, or `UPDATING` for a stale answer sent while another request updates it.
 */
export function sendHit(context: GatewayContext, answer: CachedAnswer, sent: IncomingHttpHeaders, statusHeader: string | undefined, cacheStatus = 'HIT'): Promise<void> {
  // The client already left (or a listener answered in the request's place): nothing to send.
  if (context.response.headersSent || context.response.destroyed) return Promise.resolve();
  const age = String(Math.floor(answer.policy.age()));
  const { status, headers, body } = answerFromMemory(context.request.method, sent, answer.status, { ...answer.headers, age }, answer.body);
  if (statusHeader !== undefined) headers[statusHeader] = cacheStatus;
  try {
    applyHeaderHooks(context, status, headers);
  } catch (error) {
    context.log.error({ err: error instanceof Error ? error.message : String(error) }, 'a response header hook failed a cached answer');
    context.responseHeaderHooks.length = 0;
    sendErrorAnswer(context, 500, 'internal', 'the gateway failed to answer');
    return Promise.resolve();
  }
  context.outcome.status = status;
  sendHeldAnswer(context, status, headers, body);
  return Promise.resolve();
}
