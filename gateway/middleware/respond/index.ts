import type { OutgoingHttpHeaders } from 'node:http';
import type { RespondSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { closingUnreadBody, sendOwnAnswer } from '../../proxy/error-response.ts';

/**
 * Answers every request itself with `status`, the body and headers of `settings`, and never calls
 * the inner layers, so no upstream is picked or tried (Envoy's direct_response, Kong's
 * request-termination, nginx's `return`). HEAD gets the head GET gets (its Content-Length too) and
 * no body. The answer goes through the response header hooks of the layers around it (a headers
 * middleware's `response`, CORS, HSTS), is recorded as the request's outcome with no upstream and
 * no error class, and, with the request's body still arriving, reads and drops a small one or closes
 * an HTTP/1.1 connection after it, or asks an HTTP/2 client to stop sending (`closingUnreadBody`),
 * as the gateway's other answers do.
 */
export function respond(settings: RespondSettings): Middleware {
  const { status } = settings;
  const body = settings.fileBody?.bytes ?? (settings.body === undefined ? undefined : Buffer.from(settings.body, 'utf8'));
  const fixed: OutgoingHttpHeaders = { ...settings.headers };
  if (settings.contentType !== undefined) fixed['content-type'] = settings.contentType;
  // 204 and 304 carry no Content-Length either (RFC 9110 §8.6); the schema refuses a body for them.
  if (status !== 204 && status !== 304) fixed['content-length'] = body?.length ?? 0;
  return async function respond(context) {
    const headers: OutgoingHttpHeaders = { ...fixed, 'x-request-id': context.requestId, ...closingUnreadBody(context) };
    sendOwnAnswer(context, status, headers, context.request.method === 'HEAD' ? undefined : body);
  };
}
