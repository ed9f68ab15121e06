import type { IncomingMessage } from 'node:http';
import type { BodyLimitSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { sendGatewayError } from '../../proxy/error-response.ts';
import { announcedLength } from '../../proxy/request-body-framing.ts';

/** True when the request announces (`content-length`) a body of more than `maxBytes`. */
export function announcesMoreThan(headers: IncomingMessage['headers'], maxBytes: number): boolean {
  return (announcedLength(headers) ?? 0) > maxBytes;
}

/**
 * Bounds request bodies to `maxBytes` (nginx's client_max_body_size). A request whose
 * `content-length` is over it is answered 413 `body-too-large` before any upstream is tried, and
 * none of its body is sent anywhere; over HTTP/1.1, with the body still on its way, the answer says
 * `connection: close` and the connection lingers after it (`closingUnreadBody`), as nginx's does. A
 * body without `content-length` (HTTP/1.1 chunked, HTTP/2 without one) is counted as the proxy
 * streams it (`limitedBody`): past `maxBytes` the upstream request is aborted and the client gets
 * the same 413, or a cut when the upstream's answer had begun. A body with `content-length` cannot
 * outgrow it (Node's parsers hold both protocols to it), so it is not counted.
 */
export function bodyLimit(settings: BodyLimitSettings): Middleware {
  const { maxBytes } = settings;
  return async function bodyLimit(context, next) {
    const headers = context.request.headers;
    const announced = announcedLength(headers);
    if (announced !== undefined && announced > maxBytes) return sendGatewayError(context, 'body-too-large');
    if (announced === undefined && headers['transfer-encoding'] !== undefined) context.set('requestBodyLimit', maxBytes);
    await next();
  };
}
