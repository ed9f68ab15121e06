import type { OutgoingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import type { ErrorPage, GatewayContext } from '../context.ts';
import { isGrpcRequest } from './grpc-status.ts';

/**
 * Headers that describe the body an error page replaces (its length, coding, range, validators and
 * digests): dropped, since the client gets other bytes. The others (Retry-After, Set-Cookie,
 * Cache-Control, WWW-Authenticate…) stay: they are about the answer, not its body.
 */
export const REPLACED_BODY_HEADERS: readonly string[] = [
  'content-length',
  'content-encoding',
  'content-range',
  'content-language',
  'content-location',
  'content-md5',
  'content-digest',
  'repr-digest',
  'transfer-encoding',
  'accept-ranges',
  'etag',
  'last-modified',
];

/**
 * The page that replaces the body of this request's answer of `status` (`errors`), or undefined:
 * no `errors` middleware around the answer, no page for that status, or a request a page would
 * break: a gRPC call (its status travels in trailers, the body is its protocol) and an upgrade
 * (a WebSocket handshake's answer is not a page a browser shows).
 */
export function errorPageFor(context: GatewayContext, status: number): ErrorPage | undefined {
  const lookup = context.errorPage;
  if (lookup === undefined) return undefined;
  const headers = context.request.headers;
  if (headers.upgrade !== undefined || isGrpcRequest(headers)) return undefined;
  return lookup(status);
}

/** Edits `headers` in place into those of `page`: the replaced body's own headers dropped, the page's type and length set. */
export function withErrorPageHeaders(headers: OutgoingHttpHeaders, page: ErrorPage): OutgoingHttpHeaders {
  for (const name of REPLACED_BODY_HEADERS) delete headers[name];
  headers['content-type'] = page.contentType;
  headers['content-length'] = page.body.length;
  return headers;
}

/**
 * Answers with `page` at once (nothing for an answer to HEAD) and returns the sink of the upstream
 * body it replaces, which reads every chunk and drops it (never held, never slowing the upstream
 * with back-pressure) so that the upstream's connection is kept for its next request once that
 * body ends. The client never waits for it, as nginx's `proxy_intercept_errors` answers on the
 * upstream's head: a large, slow or never-ending error body does not hold the page back, and an
 * upstream that fails mid-body costs the client nothing, since its page is already whole (the proxy
 * leaves an ended response as it is). `bytesOut` counts the page. Nobody waits for that body, and an
 * upstream that trickles it for ever would otherwise hold its connection and its request's slots for
 * ever: towards HTTP/1.1 the transport gives it the idle-body timeout in all, not per chunk, and
 * towards HTTP/2 drops it as it drops any replaced answer's (`dropBody`: 64 KiB and 1 s, then its
 * stream cancelled), where a cancel costs a stream, not the connection (`ErrorPageDrain`). Either
 * way the attempt ends with that body: an upstream that breaks it midway is blamed for it
 * (`reset-after-headers`) as for a forwarded body, a cancel of the gateway's blames nobody.
 */
export function sendErrorPage(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders, page: ErrorPage): Writable {
  const head = context.request.method === 'HEAD';
  context.response.writeHead(status, withErrorPageHeaders(outgoing, page));
  context.outcome.bytesOut = head ? 0 : page.body.length;
  if (head) context.response.end();
  else context.response.end(page.body);
  return new ErrorPageDrain();
}

/** The sink of an upstream body an error page replaced (`sendErrorPage`): drops every chunk at once. */
export class ErrorPageDrain extends Writable {
  override _write(_chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    callback();
  }
}
