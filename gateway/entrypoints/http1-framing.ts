import type { IncomingMessage } from 'node:http';

/**
 * The status the HTTP/1.1 listener refuses a request's body framing with, or undefined when the
 * gateway can pass it on. Node's parser already refuses CL+TE, a `chunked` that is not the last
 * coding, and a `Transfer-Encoding` without `chunked`; it reads `gzip, chunked` as chunked and
 * hands over the body with its gzip coding still on it, which the upstream would then get, chunked
 * anew or with a length, as if it had none. So, as nginx and Envoy do:
 * - 501 to any transfer coding but `chunked` (RFC 9112 §6.1: a server SHOULD answer 501 to a
 *   coding it does not understand; the gateway decodes none);
 * - 400 to a `Transfer-Encoding` on an HTTP/1.0 request (RFC 9112 §6.1: its framing MUST be taken
 *   as faulty, a Content-Length beside it too; an HTTP/1.0 peer knows no chunked body).
 */
export function refusedFraming(request: IncomingMessage): 400 | 501 | undefined {
  const codings = request.headers['transfer-encoding'];
  if (codings === undefined) return undefined;
  if (request.httpVersionMajor === 1 && request.httpVersionMinor === 0) return 400;
  return isChunkedAlone(codings) ? undefined : 501;
}

/** Whether a `Transfer-Encoding` value names `chunked` alone (case-insensitive, RFC 9112 §7; Node has trimmed the field's outer spaces). */
function isChunkedAlone(codings: string): boolean {
  return codings.length === 7 && codings.toLowerCase() === 'chunked';
}

/**
 * 505 to a request line of another major version than 1, else undefined. Node's parser takes
 * `GET /x HTTP/2.0` (and a bare `GET /x`, as HTTP/0.9) and the gateway answered it as HTTP/1.1:
 * an HTTP/2 request comes only as HTTP/2 frames, and an HTTP/0.9 client cannot read an HTTP/1.1
 * answer (nginx answers 505 to the first; Envoy refuses both).
 */
export function refusedVersion(request: IncomingMessage): 505 | undefined {
  return request.httpVersionMajor === 1 ? undefined : 505;
}

/**
 * 400 to an HTTP/1.1 request without Host (RFC 9112 §3.2: a server MUST), else undefined. Node
 * refuses one by itself with a bare 400 the gateway never hears of, so nothing logged or counted
 * it: the listener turns Node's check off (`requireHostHeader`) and refuses it as its own.
 */
export function refusedHostless(request: IncomingMessage): 400 | undefined {
  return request.httpVersionMinor >= 1 && request.headers.host === undefined ? 400 : undefined;
}
