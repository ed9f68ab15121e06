import type { OutgoingHttpHeaders } from 'node:http';
import { Transform } from 'node:stream';
import type { ErrorPage, GatewayContext } from '../context.ts';
import { isGrpcRequest } from './grpc-status.ts';

/**
 * Headers that describe the body an error page replaces (its length, coding, range, validators and
 * digests): dropped, since the client gets other bytes. The others (Retry-After, Set-Cookie,
 * Cache-Control, WWW-Authenticate…) stay: they are about the answer, not its body.
 */
const REPLACED_BODY_HEADERS: readonly string[] = [
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
 * The sink of an upstream body replaced by `page`: reads every chunk and drops it at once (never
 * held, and never slowing the upstream with back-pressure), then gives out the page when the
 * upstream body ends, nothing for an answer to HEAD. Not before: the upstream's connection is
 * kept for its next request only once its body is read, and an upstream that fails mid-body then
 * cuts the page as it would have cut its own body, instead of the proxy destroying a response it
 * already ended (and with it a kept-alive client connection). The upstream's body timeout bounds the wait.
 */
export function errorPageBody(page: ErrorPage, head: boolean): Transform {
  return new Transform({
    transform(_chunk, _encoding, callback) {
      callback();
    },
    flush(callback) {
      callback(null, head ? undefined : page.body);
    },
  });
}
