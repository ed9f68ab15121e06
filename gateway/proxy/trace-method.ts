import type { GatewayContext } from '../context.ts';
import { FORWARDED_METHODS } from '../entrypoints/http1-refusal.ts';
import { closingUnreadBody, sendErrorAnswer, sendOwnAnswer } from './error-response.ts';

/**
 * Fields a TRACE echo leaves out, RFC 9110 §9.3.8 ("SHOULD exclude any request fields that are
 * likely to contain sensitive data"): credentials a page's script cannot read by itself (an
 * HttpOnly cookie, a browser's Basic credentials), which cross-site tracing is after.
 */
const UNECHOED_FIELDS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie']);

const REFUSED_MESSAGE = 'TRACE is not forwarded (forwardTrace)';

/**
 * Takes a TRACE request before any layer edits it, true when it answered it. Refused with a JSON
 * 405 `method-not-allowed` unless `forward` (the top-level `forwardTrace`), as nginx refuses TRACE
 * and security checklists ask (cross-site tracing; the instance's echo would carry what the
 * gateway adds upstream: a header policy's secret, X-Forwarded-*). Forwarded, its `Max-Forwards`
 * is counted down, and one of 0 is answered here as its final recipient (RFC 9110 §7.6.2): the
 * request as the client sent it, as `message/http`, without the fields of `UNECHOED_FIELDS` and
 * nothing the gateway would add, since the echo is made of the client's own head.
 */
export function answeredTrace(context: GatewayContext, forward: boolean): boolean {
  if (context.request.method !== 'TRACE') return false;
  if (!forward) {
    sendErrorAnswer(context, 405, 'method-not-allowed', REFUSED_MESSAGE, { allow: FORWARDED_METHODS });
    return true;
  }
  const maxForwards = context.request.headers['max-forwards'];
  if (typeof maxForwards !== 'string' || !/^\d+$/.test(maxForwards)) return false;
  // As a BigInt: the field has no upper bound (RFC 9110 §7.6.2), and a Number past 2^53 would go
  // upstream as another count, or as `1e+23`, no count at all.
  const left = BigInt(maxForwards);
  if (left > 0n) {
    context.upstream.headers['max-forwards'] = String(left - 1n);
    return false;
  }
  const body = Buffer.from(echoOf(context), 'latin1');
  sendOwnAnswer(context, 200, { 'content-type': 'message/http', 'content-length': body.length, 'x-request-id': context.requestId, ...closingUnreadBody(context) }, body);
  return true;
}

/** The client's request head as HTTP/1.1 text: its request line and its own fields, in order, but the unechoed ones and HTTP/2's pseudo-headers. */
function echoOf(context: GatewayContext): string {
  const { request } = context;
  let text = `TRACE ${request.url} HTTP/${request.httpVersion}\r\n`;
  const raw = request.rawHeaders;
  for (let index = 0; index < raw.length; index += 2) {
    const name = raw[index]!;
    if (name.startsWith(':') || UNECHOED_FIELDS.has(name.toLowerCase())) continue;
    text += `${name}: ${raw[index + 1]!}\r\n`;
  }
  return `${text}\r\n`;
}
