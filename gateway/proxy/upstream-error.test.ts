import { describe, expect, it } from 'vitest';
import { errors } from 'undici';
import { blameClassOf, classifyUpstreamError, countsAgainstUpstream, healthClassOf, isIdempotent, isRequestRefusal, isRetryable, STATUS_BY_CLASS, type GatewayErrorClass } from './upstream-error.ts';
import { isUpstreamFailure } from '../../src/health/upstream-outcome.ts';
import { BodyTooLargeError } from '../transports/transport-outcome.ts';

const coded = (code: string) => Object.assign(new Error(code), { code });

describe('classifyUpstreamError', () => {
  it.each([
    { error: coded('ECONNREFUSED'), started: false, expected: 'connect-refused', status: 502 },
    { error: Object.assign(new Error('x'), { cause: coded('ECONNREFUSED') }), started: false, expected: 'connect-refused', status: 502 },
    { error: coded('UND_ERR_CONNECT_TIMEOUT'), started: false, expected: 'connect-timeout', status: 504 },
    { error: coded('UND_ERR_HEADERS_TIMEOUT'), started: false, expected: 'headers-timeout', status: 504 },
    { error: coded('UND_ERR_BODY_TIMEOUT'), started: true, expected: 'body-timeout', status: 504 },
    { error: coded('UND_ERR_SOCKET'), started: false, expected: 'reset-before-headers', status: 502 },
    { error: coded('ECONNRESET'), started: true, expected: 'reset-after-headers', status: 502 },
    { error: coded('HPE_INVALID_CONSTANT'), started: false, expected: 'upstream-protocol', status: 502 },
    { error: coded('UND_ERR_ABORTED'), started: false, expected: 'cancelled', status: 499 },
    { error: new errors.NotSupportedError('expect header not supported'), started: false, expected: 'request-rejected', status: 400 },
    { error: new errors.InvalidArgumentError('invalid x-bad header'), started: false, expected: 'request-rejected', status: 400 },
    { error: new errors.RequestContentLengthMismatchError(), started: false, expected: 'client-body-error', status: 400 },
    { error: new BodyTooLargeError(64), started: false, expected: 'body-too-large', status: 413 },
    { error: new BodyTooLargeError(64), started: true, expected: 'body-too-large', status: 413 },
    { error: new errors.RequestAbortedError(), started: false, expected: 'cancelled', status: 499 },
    { error: new Error('anything else'), started: false, expected: 'reset-before-headers', status: 502 },
    // The gateway out of its own file descriptors (a real undici connect error carries `code: 'EMFILE'`) or memory.
    { error: coded('EMFILE'), started: false, expected: 'internal', status: 500 },
    { error: coded('ENFILE'), started: false, expected: 'internal', status: 500 },
    { error: Object.assign(coded('UND_ERR_SOCKET'), { cause: coded('ENOBUFS') }), started: false, expected: 'internal', status: 500 },
    // TLS: the upstream's certificate, chain or name; undici may wrap the TLS error in a socket error.
    { error: coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), started: false, expected: 'upstream-tls', status: 502 },
    { error: coded('DEPTH_ZERO_SELF_SIGNED_CERT'), started: false, expected: 'upstream-tls', status: 502 },
    { error: coded('SELF_SIGNED_CERT_IN_CHAIN'), started: false, expected: 'upstream-tls', status: 502 },
    { error: coded('CERT_HAS_EXPIRED'), started: false, expected: 'upstream-tls', status: 502 },
    { error: coded('ERR_TLS_CERT_ALTNAME_INVALID'), started: false, expected: 'upstream-tls', status: 502 },
    { error: Object.assign(coded('UND_ERR_SOCKET'), { cause: coded('ERR_SSL_WRONG_VERSION_NUMBER') }), started: false, expected: 'upstream-tls', status: 502 },
    // A certificate without the serverAuth purpose, and alerts the upstream sends: no common ALPN protocol
    // (an HTTP/1.1-only server registered as h2), the gateway's client certificate missing or expired.
    { error: coded('INVALID_PURPOSE'), started: false, expected: 'upstream-tls', status: 502 },
    { error: coded('ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'), started: false, expected: 'upstream-tls', status: 502 },
    { error: Object.assign(coded('UND_ERR_SOCKET'), { cause: coded('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') }), started: false, expected: 'upstream-tls', status: 502 },
    { error: Object.assign(coded('UND_ERR_SOCKET'), { cause: coded('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED') }), started: false, expected: 'upstream-tls', status: 502 },
    // The TLS session broke in the middle of the response: no handshake failure, and the request had reached the upstream.
    { error: Object.assign(coded('UND_ERR_SOCKET'), { cause: coded('ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC') }), started: true, expected: 'reset-after-headers', status: 502 },
    // node:http2
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_REFUSED_STREAM' }), started: false, expected: 'connect-refused', status: 502 },
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_INTERNAL_ERROR' }), started: false, expected: 'reset-before-headers', status: 502 },
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_INTERNAL_ERROR' }), started: true, expected: 'reset-after-headers', status: 502 },
    // PROTOCOL_ERROR before the head: node:http2 refused the upstream's malformed answer (a 204 with a Content-Length).
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_PROTOCOL_ERROR' }), started: false, expected: 'http2-protocol-error', status: 502 },
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_PROTOCOL_ERROR' }), started: true, expected: 'reset-after-headers', status: 502 },
    // ENHANCE_YOUR_CALM before the head: the upstream refused the request (node:http2 past its header limits).
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_ENHANCE_YOUR_CALM' }), started: false, expected: 'upstream-refused', status: 502 },
    { error: Object.assign(coded('ERR_HTTP2_STREAM_ERROR'), { message: 'Stream closed with error code NGHTTP2_ENHANCE_YOUR_CALM' }), started: true, expected: 'reset-after-headers', status: 502 },
    { error: coded('SB_HEADER_TOO_LARGE'), started: false, expected: 'header-too-large', status: 431 },
    { error: coded('ERR_HTTP2_GOAWAY_SESSION'), started: false, expected: 'connect-refused', status: 502 },
    { error: coded('ERR_HTTP2_ERROR'), started: false, expected: 'upstream-protocol', status: 502 },
    { error: coded('ERR_HTTP2_INVALID_CONNECTION_HEADERS'), started: false, expected: 'request-rejected', status: 400 },
    { error: coded('SB_UPSTREAM_CONNECT_TIMEOUT'), started: false, expected: 'connect-timeout', status: 504 },
    { error: coded('SB_UPSTREAM_HEADERS_TIMEOUT'), started: false, expected: 'headers-timeout', status: 504 },
    { error: coded('SB_UPSTREAM_BODY_TIMEOUT'), started: true, expected: 'body-timeout', status: 504 },
    // The client's own deadline for the call (grpc-timeout), in either phase.
    { error: coded('SB_CALL_DEADLINE'), started: false, expected: 'deadline-exceeded', status: 504 },
    { error: coded('SB_CALL_DEADLINE'), started: true, expected: 'deadline-exceeded', status: 504 },
    // Protocols HTTP cannot be proxied to.
    { error: coded('SB_UNSUPPORTED_PROTOCOL'), started: false, expected: 'unsupported-protocol', status: 502 },
    // The gateway's own cap on HTTP/2 sessions to an instance.
    { error: coded('SB_UPSTREAM_POOL_FULL'), started: false, expected: 'pool-overflow', status: 503 },
    // The gateway closing its own HTTP/2 sessions (a shutdown) before the request had one.
    { error: coded('SB_UPSTREAM_POOL_CLOSED'), started: false, expected: 'pool-closed', status: 503 },
    { error: coded('UND_ERR_CLOSED'), started: false, expected: 'pool-closed', status: 503 },
    { error: coded('UND_ERR_DESTROYED'), started: false, expected: 'pool-closed', status: 503 },
    { error: coded('SB_UPSTREAM_INVALID_STATUS'), started: false, expected: 'upstream-protocol', status: 502 },
  ])('maps $error.message (response started: $started) to $expected and HTTP $status', ({ error, started, expected, status }) => {
    const errorClass = classifyUpstreamError(error, started);
    expect(errorClass).toBe(expected);
    expect(STATUS_BY_CLASS[errorClass]).toBe(status);
  });

  it('maps the cases where nothing can be sent to 503 and an unknown route to 404', () => {
    expect([STATUS_BY_CLASS['no-instances'], STATUS_BY_CLASS['no-healthy-instances'], STATUS_BY_CLASS['no-route']]).toEqual([503, 503, 404]);
  });
});

describe('countsAgainstUpstream and healthClassOf', () => {
  it.each([
    { errorClass: 'connect-refused', counts: true, health: 'connect-refused' },
    { errorClass: 'connect-timeout', counts: true, health: 'connect-timeout' },
    { errorClass: 'reset-before-headers', counts: true, health: 'reset-before-headers' },
    { errorClass: 'reset-after-headers', counts: true, health: 'reset-after-headers' },
    { errorClass: 'headers-timeout', counts: true, health: 'headers-timeout' },
    { errorClass: 'body-timeout', counts: true, health: 'body-timeout' },
    { errorClass: 'http-5xx', counts: true, health: 'http-5xx' },
    { errorClass: 'upstream-protocol', counts: true, health: 'reset-before-headers' },
    // The HTTP/2 upstream's malformed answer counts as an HTTP/1.1 one's does.
    { errorClass: 'http2-protocol-error', counts: true, health: 'reset-before-headers' },
    { errorClass: 'upstream-tls', counts: true, health: 'upstream-tls' },
    { errorClass: 'unsupported-protocol', counts: false, health: 'request-rejected' },
    { errorClass: 'pool-overflow', counts: false, health: 'internal' },
    { errorClass: 'pool-closed', counts: false, health: 'internal' },
    { errorClass: 'cancelled', counts: false, health: 'cancelled' },
    { errorClass: 'client-body-error', counts: false, health: 'client-body-error' },
    { errorClass: 'body-too-large', counts: false, health: 'body-too-large' },
    { errorClass: 'header-too-large', counts: false, health: 'header-too-large' },
    { errorClass: 'upstream-refused', counts: true, health: 'reset-before-headers' },
    { errorClass: 'request-rejected', counts: false, health: 'request-rejected' },
    { errorClass: 'repeated-refusal', counts: false, health: 'repeated-refusal' },
    { errorClass: 'grpc-web-unsupported', counts: false, health: 'grpc-web-unsupported' },
    { errorClass: 'deadline-exceeded', counts: false, health: 'deadline-exceeded' },
    { errorClass: 'client-slow-read', counts: false, health: 'client-slow-read' },
    { errorClass: 'internal', counts: false, health: 'internal' },
  ] as const)('counts $errorClass against the upstream: $counts (health class $health)', ({ errorClass, counts, health }) => {
    expect(countsAgainstUpstream(errorClass as GatewayErrorClass)).toBe(counts);
    expect(healthClassOf(errorClass as GatewayErrorClass)).toBe(health);
    // The health layer agrees: what the proxy reports for the attempt counts exactly when the proxy says so.
    expect(isUpstreamFailure({ ok: false, latencyMs: 1, errorClass: healthClassOf(errorClass as GatewayErrorClass) })).toBe(counts);
  });
});

describe('blameClassOf', () => {
  it.each([
    { errorClass: 'upstream-refused', blamed: 'upstream-refused', again: 'repeated-refusal' },
    { errorClass: 'http2-protocol-error', blamed: 'http2-protocol-error', again: 'repeated-refusal' },
    // What says how the instance is counts at every attempt.
    { errorClass: 'reset-before-headers', blamed: 'reset-before-headers', again: 'reset-before-headers' },
    { errorClass: 'connect-refused', blamed: 'connect-refused', again: 'connect-refused' },
    { errorClass: 'upstream-protocol', blamed: 'upstream-protocol', again: 'upstream-protocol' },
    { errorClass: 'headers-timeout', blamed: 'headers-timeout', again: 'headers-timeout' },
    { errorClass: 'http-5xx', blamed: 'http-5xx', again: 'http-5xx' },
  ] as const)('counts $errorClass as $blamed first in a request, then as $again', ({ errorClass, blamed, again }) => {
    expect(isRequestRefusal(errorClass)).toBe(again === 'repeated-refusal');
    expect(blameClassOf(errorClass, undefined)).toBe(blamed);
    expect(blameClassOf(errorClass, [errorClass])).toBe(again);
  });

  // An overloaded instance's ENHANCE_YOUR_CALM, then a broken one's PROTOCOL_ERROR: not the same verdict on the request.
  it.each([
    { errorClass: 'http2-protocol-error', blamed: ['upstream-refused'] },
    { errorClass: 'upstream-refused', blamed: ['http2-protocol-error'] },
  ] as const)('counts $errorClass after $blamed was counted', ({ errorClass, blamed }) => {
    expect(blameClassOf(errorClass, blamed)).toBe(errorClass);
    expect(blameClassOf(errorClass, ['upstream-refused', 'http2-protocol-error'])).toBe('repeated-refusal');
  });
});

describe('isRetryable', () => {
  it.each([
    { errorClass: 'connect-refused', idempotent: false, consumed: false, expected: true },
    { errorClass: 'connect-timeout', idempotent: false, consumed: false, expected: true },
    { errorClass: 'upstream-tls', idempotent: false, consumed: false, expected: true },
    // A body already read from the client cannot be sent again whole, whatever the method.
    { errorClass: 'connect-refused', idempotent: true, consumed: true, expected: false },
    { errorClass: 'connect-timeout', idempotent: true, consumed: true, expected: false },
    { errorClass: 'upstream-tls', idempotent: true, consumed: true, expected: false },
    { errorClass: 'connect-refused', idempotent: false, consumed: true, expected: false },
    { errorClass: 'connect-refused', idempotent: true, consumed: false, expected: true },
    { errorClass: 'reset-before-headers', idempotent: true, consumed: false, expected: true },
    { errorClass: 'reset-before-headers', idempotent: false, consumed: false, expected: false },
    { errorClass: 'reset-before-headers', idempotent: true, consumed: true, expected: false },
    { errorClass: 'headers-timeout', idempotent: true, consumed: false, expected: true },
    { errorClass: 'headers-timeout', idempotent: false, consumed: false, expected: false },
    { errorClass: 'reset-after-headers', idempotent: true, consumed: false, expected: false },
    // A bad answer, over either protocol, goes to another instance as a reset does.
    { errorClass: 'upstream-protocol', idempotent: true, consumed: false, expected: true },
    { errorClass: 'upstream-protocol', idempotent: false, consumed: false, expected: false },
    { errorClass: 'http2-protocol-error', idempotent: true, consumed: false, expected: true },
    { errorClass: 'http2-protocol-error', idempotent: false, consumed: false, expected: false },
    { errorClass: 'http2-protocol-error', idempotent: true, consumed: true, expected: false },
    // A large head would only be refused again elsewhere; an ordinary one refused (an overloaded instance) goes to another, as after a reset.
    { errorClass: 'header-too-large', idempotent: true, consumed: false, expected: false },
    { errorClass: 'upstream-refused', idempotent: true, consumed: false, expected: true },
    { errorClass: 'upstream-refused', idempotent: false, consumed: false, expected: false },
    // The call's own deadline has passed: another instance would have no time left either.
    { errorClass: 'deadline-exceeded', idempotent: true, consumed: false, expected: false },
  ] as const)('says $expected for $errorClass (idempotent: $idempotent, body consumed: $consumed)', ({ errorClass, idempotent, consumed, expected }) => {
    expect(isRetryable(errorClass, idempotent, consumed)).toBe(expected);
  });

  it('treats GET, PUT and DELETE as idempotent and POST and PATCH as not', () => {
    expect(['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH'].map(isIdempotent)).toEqual([true, true, true, true, false, false]);
  });
});
