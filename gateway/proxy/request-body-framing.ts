import type { IncomingHttpHeaders } from 'node:http';

/** The body length a request's `content-length` announces (NaN when it is not a number), or undefined without one. */
export function announcedLength(headers: IncomingHttpHeaders): number | undefined {
  const length = headers['content-length'];
  return length === undefined ? undefined : Number(length);
}

/**
 * Whether a request's head announces a body: a `transfer-encoding` (HTTP/1.1 chunked; the HTTP/2
 * listener sets one on a stream with data and no `content-length`), or a `content-length` other
 * than 0. `transfer-encoding` wins over `content-length` (RFC 9112 §6.3), though Node's parser
 * refuses a request with both. A length that is no number counts as a body: never taken for none.
 */
export function announcesBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = announcedLength(headers);
  return length !== undefined && length !== 0;
}
