import { describe, expect, it } from 'vitest';
import { answerStatusOf, encodeGrpcMessage, formatGrpcTimeout, grpcCallOf, grpcStatusOf, grpcStatusOfHttpAnswer, GrpcStatus, isGrpcRequest, parseGrpcStatus, parseGrpcTimeout } from './grpc-status.ts';
import { answerClassOf } from './upstream-error.ts';

describe('gRPC statuses for the gateway answers', () => {
  it.each([
    [503, 'no-instances', GrpcStatus.UNAVAILABLE],
    [503, 'no-healthy-instances', GrpcStatus.UNAVAILABLE],
    [502, 'connect-refused', GrpcStatus.UNAVAILABLE],
    [502, 'reset-before-headers', GrpcStatus.UNAVAILABLE],
    [504, 'headers-timeout', GrpcStatus.DEADLINE_EXCEEDED],
    [504, 'connect-timeout', GrpcStatus.DEADLINE_EXCEEDED],
    [504, 'deadline-exceeded', GrpcStatus.DEADLINE_EXCEEDED],
    [429, 'rate-limited', GrpcStatus.RESOURCE_EXHAUSTED],
    [503, 'rate-limit-unavailable', GrpcStatus.UNAVAILABLE],
    // statusOnRedisError: the store is unavailable at any 5xx; 429 and 500 keep their own codes.
    [504, 'rate-limit-unavailable', GrpcStatus.UNAVAILABLE],
    [501, 'rate-limit-unavailable', GrpcStatus.UNAVAILABLE],
    [502, 'rate-limit-unavailable', GrpcStatus.UNAVAILABLE],
    [429, 'rate-limit-unavailable', GrpcStatus.RESOURCE_EXHAUSTED],
    [500, 'rate-limit-unavailable', GrpcStatus.INTERNAL],
    [431, 'header-too-large', GrpcStatus.RESOURCE_EXHAUSTED],
    [502, 'upstream-refused', GrpcStatus.RESOURCE_EXHAUSTED],
    [401, 'unauthenticated', GrpcStatus.UNAUTHENTICATED],
    [403, 'forbidden', GrpcStatus.PERMISSION_DENIED],
    [404, 'no-route', GrpcStatus.UNIMPLEMENTED],
    [503, 'circuit-open', GrpcStatus.UNAVAILABLE],
    [504, undefined, GrpcStatus.DEADLINE_EXCEEDED],
    [500, 'internal', GrpcStatus.INTERNAL],
    [400, 'request-rejected', GrpcStatus.INTERNAL],
    [499, 'cancelled', GrpcStatus.CANCELLED],
  ])('HTTP %i (%s) is gRPC status %i', (status, errorClass, expected) => {
    expect(grpcStatusOf(status, errorClass)).toBe(expected);
  });

  it('tells gRPC requests by content type only', () => {
    expect(isGrpcRequest({ 'content-type': 'application/grpc' })).toBe(true);
    expect(isGrpcRequest({ 'content-type': 'application/grpc+proto' })).toBe(true);
    expect(isGrpcRequest({ 'content-type': 'application/json' })).toBe(false);
    expect(isGrpcRequest({})).toBe(false);
  });

  it('percent-encodes grpc-message only when it has to', () => {
    expect(encodeGrpcMessage('no healthy upstream')).toBe('no healthy upstream');
    expect(encodeGrpcMessage('100% ü')).toBe('100%25%20%C3%BC');
  });
});

describe("the gRPC status of an upstream's answer that is not gRPC (http-grpc-status-mapping.md)", () => {
  it.each([
    [400, GrpcStatus.INTERNAL],
    [401, GrpcStatus.UNAUTHENTICATED],
    [403, GrpcStatus.PERMISSION_DENIED],
    [404, GrpcStatus.UNIMPLEMENTED],
    [429, GrpcStatus.UNAVAILABLE],
    [502, GrpcStatus.UNAVAILABLE],
    [503, GrpcStatus.UNAVAILABLE],
    [504, GrpcStatus.UNAVAILABLE],
    [200, GrpcStatus.UNKNOWN],
    [500, GrpcStatus.UNKNOWN],
    [418, GrpcStatus.UNKNOWN],
  ])('HTTP %i reads as gRPC status %i', (status, expected) => {
    expect(grpcStatusOfHttpAnswer(status)).toBe(expected);
  });
});

describe("what an upstream's gRPC status counts as", () => {
  it.each([
    // The server failed: as the 5xx it stands for (Envoy's grpcToHttpStatus).
    [200, 2, 500, 'grpc-error'],
    [200, 13, 500, 'grpc-error'],
    [200, 14, 503, 'grpc-error'],
    [200, 15, 500, 'grpc-error'],
    // Load shed or a caller's quota: a 429, which only a breaker listing 429 counts.
    [200, 8, 429, undefined],
    // OK, and the caller's doing, the caller's own deadline included: never against the upstream.
    ...[0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 16, 17, Number.NaN].map((code) => [200, code, 200, undefined] as const),
    // An HTTP status other than 200 is the answer's own, whatever grpc-status says.
    [503, 0, 503, 'http-5xx'],
    [404, 14, 404, undefined],
  ] as const)('HTTP %i with grpc-status %d counts as %i (%s)', (httpStatus, grpcStatus, counted, answerClass) => {
    expect(answerStatusOf(httpStatus, grpcStatus)).toBe(counted);
    expect(answerClassOf(httpStatus, grpcStatus)).toBe(answerClass);
  });

  it.each([
    ['14', 14],
    ['0', 0],
    ['16', 16],
    ['17', 2],
    ['oops', 2],
    ['', 2],
    ['14 ', 2],
    ['1e1', 2],
    ['-1', 2],
    [['14', '0'], 2],
  ] as const)('reads grpc-status %j as code %i, an unknown or malformed value as UNKNOWN (the caller reads it so)', (value, code) => {
    expect(parseGrpcStatus(value as string | string[])).toBe(code);
  });

  it('leaves an answer without grpc-status to its HTTP status', () => {
    expect(answerClassOf(200, undefined)).toBeUndefined();
    expect(answerClassOf(502, undefined)).toBe('http-5xx');
  });
});

describe('grpc-timeout', () => {
  it.each([
    ['1S', 1_000],
    ['200m', 200],
    ['2M', 120_000],
    ['1H', 3_600_000],
    ['5000u', 5],
    ['3000000n', 3],
  ])('%s is %f ms', (text, ms) => expect(parseGrpcTimeout(text)).toBeCloseTo(ms));

  it.each([['', undefined], ['10', undefined], ['123456789S', undefined], ['1s', undefined], ['-1S', undefined]])('%j is refused', (text) => {
    expect(parseGrpcTimeout(text)).toBeUndefined();
  });

  it('is passed on in whole milliseconds, never as zero', () => {
    expect(formatGrpcTimeout(199.2)).toBe('200m');
    expect(formatGrpcTimeout(0)).toBe('1m');
  });

  it.each([
    [99_999_999, '99999999m'],
    // 27.8 hours: 100000000m has 9 digits, which grpc-js read as 00000000m (0 ms) and grpc-go refused.
    [100_000_000, '100000S'],
    [100_000_000_001, '1666667M'],
    // A year; then more than 8 digits of hours, held at the largest value there is.
    [365 * 24 * 3_600_000, '31536000S'],
    [1e18, '99999999H'],
  ])('a deadline of %d ms is written as %s, in at most 8 digits, never shorter than it is', (ms, text) => {
    expect(formatGrpcTimeout(ms)).toBe(text);
    expect(parseGrpcTimeout(text)).toBeGreaterThanOrEqual(Math.min(ms, parseGrpcTimeout('99999999H')!));
  });
});

describe('grpcCallOf', () => {
  it('splits a gRPC path into service and method, and refuses other paths', () => {
    expect(grpcCallOf('/helloworld.Greeter/SayHello')).toEqual({ service: 'helloworld.Greeter', method: 'SayHello' });
    expect(grpcCallOf('/a/b/c')).toBeUndefined();
    expect(grpcCallOf('/only')).toBeUndefined();
    expect(grpcCallOf('/svc/')).toBeUndefined();
  });
});
