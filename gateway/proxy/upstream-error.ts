import { isGatewayResourceCode, isNotUpstreamFault, type UpstreamErrorClass } from '../../src/health/upstream-outcome.ts';
import { answerStatusOf } from './grpc-status.ts';

/**
 * Why the gateway answered instead of an upstream. Upstream transport failures use the health
 * layer's classes, so retries, passive health, metrics and the status the client sees agree.
 */
export type GatewayErrorClass =
  | UpstreamErrorClass
  | 'no-route'
  | 'no-instances'
  | 'no-healthy-instances'
  | 'upstream-protocol'
  | 'http2-protocol-error'
  | 'upstream-refused'
  | 'unsupported-protocol'
  | 'pool-overflow'
  | 'pool-closed'
  | 'internal';

/**
 * Status the client sees for each class (503 nothing to send to or no room left towards it, 502 refused/reset/bad answer, 504
 * timeout; 400 a request the gateway cannot forward, 413 a body past its route's bodyLimit, 431 a head an HTTP/2 upstream
 * refused or advertised it would, 499 a client that went away, which is logged but never written, 500 the gateway's own failure).
 * `client-slow-read` always comes after the answer began: its 502 only gives a gRPC call UNAVAILABLE in trailers, as the reset would.
 */
export const STATUS_BY_CLASS: Readonly<Record<GatewayErrorClass, number>> = {
  'no-route': 404,
  'no-instances': 503,
  'no-healthy-instances': 503,
  'connect-refused': 502,
  'reset-before-headers': 502,
  'reset-after-headers': 502,
  'upstream-protocol': 502,
  'http2-protocol-error': 502,
  'upstream-refused': 502,
  'upstream-tls': 502,
  'unsupported-protocol': 502,
  'pool-overflow': 503,
  'pool-closed': 503,
  'http-5xx': 502,
  'grpc-error': 502,
  'connect-timeout': 504,
  'headers-timeout': 504,
  'body-timeout': 504,
  'deadline-exceeded': 504,
  cancelled: 499,
  'client-body-error': 400,
  'client-slow-read': 502,
  'body-too-large': 413,
  'header-too-large': 431,
  'request-rejected': 400,
  'repeated-refusal': 502,
  'grpc-web-unsupported': 502,
  internal: 500,
};

/** Classes after which no byte of the request reached an upstream, so any method may be retried. */
const NOTHING_SENT: ReadonlySet<GatewayErrorClass> = new Set(['connect-refused', 'connect-timeout', 'upstream-tls']);

/**
 * Classes after which the request may have reached a handler that answered nothing usable: a reset,
 * a bad answer (either protocol's), a silent upstream. Sent again only for idempotent methods.
 */
const RESENT_WHEN_IDEMPOTENT: ReadonlySet<GatewayErrorClass> = new Set(['reset-before-headers', 'upstream-protocol', 'http2-protocol-error', 'upstream-refused', 'headers-timeout']);

/**
 * OpenSSL's certificate verification codes as Node names them (X509_V_ERR_*, less the prefix) and
 * Node's own TLS codes of a handshake with the upstream: its certificate, chain, purpose or name.
 */
const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
]);

/**
 * Whether `code` is a TLS failure with the upstream: a verification code above, or any of Node's
 * `ERR_SSL_*` codes, which name an OpenSSL error of the TLS session itself: an alert the upstream
 * sent (it wants a client certificate, refuses the gateway's, knows no protocol the gateway offers
 * through ALPN), a version or a record it cannot speak (a plain-text server). A list of some of
 * them let the others fall through to a reset, retried only for idempotent methods.
 */
function isUpstreamTlsCode(code: string): boolean {
  return TLS_VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_');
}

/** The code an upstream attempt's error stands for: its own, else its cause's under undici's generic socket error. */
export function upstreamErrorCode(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const causeCode = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === 'string' && code !== 'UND_ERR_SOCKET' ? code : (causeCode ?? code);
}

/**
 * Classifies an error of one upstream attempt at the socket boundary, for every transport: undici
 * codes (HTTP/1.1, HTTPS, the WebSocket handshake), node:http2 codes (h2c, h2) and TLS codes.
 * `responseStarted` tells a reset before the response headers from one in the middle of the body.
 */
export function classifyUpstreamError(error: unknown, responseStarted: boolean): GatewayErrorClass {
  const effective = upstreamErrorCode(error);
  // Once the response started, the TLS session broke in the middle of it (a bad record, an alert):
  // a reset after headers. upstream-tls says that nothing of the request reached the upstream.
  if (typeof effective === 'string' && isUpstreamTlsCode(effective)) return responseStarted ? 'reset-after-headers' : 'upstream-tls';
  // The gateway out of file descriptors or memory (connect EMFILE): its own failure, not the upstream's.
  if (isGatewayResourceCode(effective)) return 'internal';
  switch (effective) {
    // A response header hook threw on the upstream's answer (`ResponseHookError`), or the client's
    // response refused the head the gateway made of it (`AnswerHeadError`): the gateway's failure.
    case 'SB_RESPONSE_HOOK_FAILED':
    case 'SB_ANSWER_HEAD_FAILED':
      return 'internal';
    // The server refused the stream or was going away before it was sent: no handler saw it.
    case 'SB_HTTP2_REFUSED_STREAM':
    case 'ERR_HTTP2_GOAWAY_SESSION':
      return 'connect-refused';
    case 'ERR_HTTP2_STREAM_ERROR':
      if (/REFUSED_STREAM/.test((error as Error).message)) return 'connect-refused';
      if (responseStarted) return 'reset-after-headers';
      // RFC 9113 §7: the upstream holds what it was sent, or the load of it, to be excessive: node:http2's
      // reset of a head over its field or size limits, and of streams past its session's memory. The
      // HTTP/2 transport calls a large head's refusal `header-too-large`, the client's doing.
      if (/ENHANCE_YOUR_CALM/.test((error as Error).message)) return 'upstream-refused';
      return /PROTOCOL_ERROR/.test((error as Error).message) ? 'http2-protocol-error' : 'reset-before-headers';
    case 'SB_UPSTREAM_CONNECT_TIMEOUT':
      return 'connect-timeout';
    case 'SB_UPSTREAM_HEADERS_TIMEOUT':
      return 'headers-timeout';
    case 'SB_UPSTREAM_BODY_TIMEOUT':
      return 'body-timeout';
    case 'SB_CALL_DEADLINE':
      return 'deadline-exceeded';
    case 'SB_UNSUPPORTED_PROTOCOL':
      return 'unsupported-protocol';
    case 'SB_UPSTREAM_POOL_FULL':
      return 'pool-overflow';
    // The gateway's own pools closed under the request: its HTTP/2 sessions, or an undici pool it
    // closed (shutting down, an idle transport swept) or destroyed. Only the gateway closes them;
    // an upstream's reset is UND_ERR_SOCKET.
    case 'SB_UPSTREAM_POOL_CLOSED':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return 'pool-closed';
    case 'SB_UPSTREAM_INVALID_STATUS':
      return 'upstream-protocol';
    // node:http2 refused the request's own headers before sending anything.
    case 'ERR_HTTP2_INVALID_CONNECTION_HEADERS':
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_HTTP2_HEADER_SINGLE_VALUE':
    case 'ERR_HTTP2_INVALID_PSEUDOHEADER':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_INVALID_CHAR':
      return 'request-rejected';
    // A peer that does not speak HTTP/2 (no ALPN h2, garbage instead of SETTINGS).
    case 'ERR_HTTP2_ERROR':
    case 'ERR_HTTP2_SESSION_ERROR':
    case 'ERR_HTTP2_INVALID_SESSION':
      return responseStarted ? 'reset-after-headers' : 'upstream-protocol';
    case 'ERR_HTTP2_STREAM_CANCEL':
      return responseStarted ? 'reset-after-headers' : 'reset-before-headers';
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return 'connect-refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'connect-timeout';
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'headers-timeout';
    case 'UND_ERR_BODY_TIMEOUT':
      return 'body-timeout';
    case 'UND_ERR_ABORTED':
    case 'UND_ERR_ABORT':
      return 'cancelled';
    // undici refused the request itself (a header or option it does not accept): nothing was sent.
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return 'request-rejected';
    // The request body ended short of (or past) its Content-Length: the client's framing; or the
    // gateway could not decode it (`BodyMalformedError`).
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'SB_BODY_MALFORMED':
      return 'client-body-error';
    // The request body grew past its route's bodyLimit as it streamed (request-body-limit.ts).
    case 'SB_BODY_TOO_LARGE':
      return 'body-too-large';
    // A request head over the maxHeaderListSize an HTTP/2 upstream advertised, not sent (`HeadTooLargeError`).
    case 'SB_HEADER_TOO_LARGE':
      return 'header-too-large';
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return responseStarted ? 'reset-after-headers' : 'upstream-protocol';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
      return responseStarted ? 'reset-after-headers' : 'reset-before-headers';
    default:
      if ((error as Error | null)?.name === 'HTTPParserError') return responseStarted ? 'reset-after-headers' : 'upstream-protocol';
      return responseStarted ? 'reset-after-headers' : 'reset-before-headers';
  }
}

/**
 * The class an upstream's answer counts as: `http-5xx` for a 5xx, `grpc-error` for an HTTP 200 whose
 * `grpc-status` stands for one (`answerStatusOf`; `grpcStatus` undefined for an answer to anything
 * but a gRPC call), undefined for an answer that does not count against the upstream.
 */
export function answerClassOf(status: number, grpcStatus: number | undefined): 'http-5xx' | 'grpc-error' | undefined {
  if (status >= 500) return 'http-5xx';
  return grpcStatus !== undefined && answerStatusOf(status, grpcStatus) >= 500 ? 'grpc-error' : undefined;
}

/** True when a failure of `errorClass` counts against the upstream (passive health, latency, metrics of upstream errors). */
export function countsAgainstUpstream(errorClass: GatewayErrorClass): boolean {
  return !isNotUpstreamFault(healthClassOf(errorClass));
}

/**
 * Classes of failed attempts that count against no instance yet are still metered per service
 * (switchboard_upstream_errors_total): the refusals one request met again on another instance
 * (`repeated-refusal`, beside the one it blamed) and gRPC-Web calls an instance could not read
 * (`grpc-web-unsupported`: the route lacks `grpcWeb`). Other unblamed classes (a client's abort,
 * a body over the limit) are the client's story, told by the request metrics.
 */
const METERED_UNBLAMED: ReadonlySet<GatewayErrorClass> = new Set<GatewayErrorClass>(['repeated-refusal', 'grpc-web-unsupported']);

/** True for a failed attempt's class that blames no instance but is metered per service all the same. */
export function isMeteredUnblamed(errorClass: GatewayErrorClass): boolean {
  return METERED_UNBLAMED.has(errorClass);
}

/**
 * The health layer's class for an attempt that failed with `errorClass`. A bad answer
 * (`upstream-protocol` over HTTP/1.1, `http2-protocol-error` over HTTP/2) is the upstream's fault
 * and counts as a reset; the classes the client or the gateway caused keep their names, which the
 * health layer never counts; so do an unsupported protocol, which is not the upstream's failure,
 * the gateway's own cap on sessions and its closing of them (`internal`).
 */
export function healthClassOf(errorClass: GatewayErrorClass): UpstreamErrorClass {
  switch (errorClass) {
    // An answer that breaks its protocol is the server's fault, as nginx (`invalid_header`) and
    // Envoy's outlier detection count it. Over HTTP/2 node:http2 (nghttp2) resets the stream with
    // PROTOCOL_ERROR for the gateway on a malformed head (RFC 9113 §8.1.1), such as a 204 with a
    // Content-Length, which RFC 9110 §8.6 forbids the server; a request head node would not send is
    // refused before it leaves (`request-rejected`).
    // So does an ENHANCE_YOUR_CALM reset of an ordinary head (`upstream-refused`; a large one is
    // `header-too-large`): an overloaded upstream (node:http2 past `maxSessionMemory`) or one whose
    // limits refuse ordinary requests, which nginx (`max_fails`) and Envoy (`consecutive_5xx`) count as any reset.
    case 'upstream-protocol':
    case 'http2-protocol-error':
    case 'upstream-refused':
      return 'reset-before-headers';
    // The gateway cannot speak the instance's protocol (a `tcp` instance behind an HTTP route): a
    // configuration mismatch, not the instance's fault.
    case 'unsupported-protocol':
      return 'request-rejected';
    // The gateway's own cap on sessions to the instance (Envoy's overflow): its load, not the instance's
    // fault; and the gateway closing its own sessions (shutting down) before the request had one.
    case 'pool-overflow':
    case 'pool-closed':
      return 'internal';
    // Never reported for an attempt (nothing was picked); counted as nothing should one be.
    case 'no-route':
    case 'no-instances':
    case 'no-healthy-instances':
      return 'internal';
    default:
      return errorClass;
  }
}

/**
 * Refusals a request may cause itself, met before any answer: an HTTP/2 stream reset with
 * ENHANCE_YOUR_CALM of an ordinary head (`upstream-refused`: node:http2's limits on what it was
 * sent, which it does not advertise) or with PROTOCOL_ERROR (`http2-protocol-error`: RFC 9113 §8.1.1
 * has a malformed request reset so by the instance, and a malformed answer by the gateway, which a
 * handler sends for what it was asked). Every instance running the same code refuses the same
 * request alike, so a retried request would blame each in turn: a request counts each of them
 * against the instance that gives it first (it may as well be overloaded, or broken), and the same
 * refusal met again as `repeated-refusal` (`blameClassOf`). A refusal of the other class is not the
 * same verdict on the request (an overloaded instance's ENHANCE_YOUR_CALM, then a broken one's
 * PROTOCOL_ERROR), and counts. Ordinary resets, connect failures, timeouts and
 * answers (a 5xx, an HTTP/1.1 instance's invalid head: its verdict on a request is an answer, a 400
 * or a 431) say how the instance is, and count at every attempt.
 */
const REQUEST_REFUSALS: ReadonlySet<GatewayErrorClass> = new Set(['upstream-refused', 'http2-protocol-error']);

/** True when `errorClass` is a refusal the request may have caused (see `REQUEST_REFUSALS`). */
export function isRequestRefusal(errorClass: GatewayErrorClass): boolean {
  return REQUEST_REFUSALS.has(errorClass);
}

/**
 * The class an attempt that failed with `errorClass` counts as against its instance (passive health,
 * the breaker, the admin API's errors, `switchboard_upstream_errors_total`): `repeated-refusal`, which
 * counts against no instance, for a refusal the request may have caused when `refusalsBlamed` says an
 * earlier attempt of the same request was counted for the same one (`RequestOutcome.refusalsBlamed`);
 * else `errorClass`. The client's answer and the access log keep `errorClass`.
 */
export function blameClassOf(errorClass: GatewayErrorClass, refusalsBlamed: readonly string[] | undefined): GatewayErrorClass {
  return refusalsBlamed !== undefined && REQUEST_REFUSALS.has(errorClass) && refusalsBlamed.includes(errorClass) ? 'repeated-refusal' : errorClass;
}

/**
 * True when an attempt that failed with `errorClass` may safely go to another instance: never when
 * the request body was consumed (what was read from the client cannot be sent again, and another
 * instance would get it truncated); when nothing was sent, for any method; for a reset or a
 * headers timeout before any response only when the method is idempotent (a keep-alive socket the
 * backend had closed lands here). Which of these are retried at all is the configuration's `retryOn`.
 */
export function isRetryable(errorClass: GatewayErrorClass, idempotent: boolean, bodyConsumed: boolean): boolean {
  if (bodyConsumed) return false;
  if (NOTHING_SENT.has(errorClass)) return true;
  return RESENT_WHEN_IDEMPOTENT.has(errorClass) && idempotent;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** RFC 9110 §9.2.2 idempotent methods. */
export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}
