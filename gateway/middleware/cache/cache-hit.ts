import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { sendHeldAnswer } from '../../transports/transport-response-body.ts';
import { isNotModified, NO_BODY, notModifiedHeaders } from './cache-conditional.ts';
import { rangeOfStored } from './cache-range.ts';
import type { CachedAnswer } from './cache-store.ts';

/**
 * Sends a stored answer as the upstream's would go (the request's response header hooks, its
 * encoder), with `Age` (RFC 9111 §5.1); HEAD gets the head alone. A request whose conditionals, as
 * the upstream would get them (`sent`), the answer meets gets a 304 with its validators and
 * freshness instead (RFC 9110 §13.2.2, §15.4.5), as the upstream would have answered; a stored 200
 * answers the request's `Range` with the part it asks for (`rangeOfStored`). `cacheStatus` goes in
 * `statusHeader`: `HIT`, or `UPDATING` for a stale answer sent while another request updates it.
 */
export function sendHit(context: GatewayContext, answer: CachedAnswer, sent: IncomingHttpHeaders, statusHeader: string | undefined, cacheStatus = 'HIT'): Promise<void> {
  // The client already left (or a listener answered in the request's place): nothing to send.
  if (context.response.headersSent || context.response.destroyed) return Promise.resolve();
  const notModified = isNotModified(sent, answer.status, answer.headers);
  const age = String(Math.floor(answer.policy.age()));
  // Preconditions come before the range (RFC 9110 §13.2.2): a 304 has no part to take.
  const { status, headers, body } = notModified
    ? { status: 304, headers: { ...notModifiedHeaders(answer.headers), age } as OutgoingHttpHeaders, body: NO_BODY }
    : rangeOfStored(context.request.method, sent, answer.status, { ...answer.headers, age }, answer.body);
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
