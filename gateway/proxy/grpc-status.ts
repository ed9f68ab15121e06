import type { IncomingHttpHeaders } from 'node:http';

/** The gRPC status codes the gateway answers with (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/**
 * True when the request is a gRPC call (`content-type: application/grpc`, `application/grpc+proto`,
 * `application/grpc-web…`). One string test, so the hot path of other requests pays nothing else.
 */
export function isGrpcRequest(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return type !== undefined && type.startsWith('application/grpc');
}

/** Classes whose answer to a gRPC caller is DEADLINE_EXCEEDED rather than what their HTTP status would map to. */
const DEADLINE_CLASSES: ReadonlySet<string> = new Set(['connect-timeout', 'headers-timeout', 'body-timeout', 'deadline-exceeded']);

/**
 * The gRPC status for a gateway answer of HTTP `status` (and error class, when it has one): 401
 * UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 413, 429, 431 and an upstream's
 * `upstream-refused` RESOURCE_EXHAUSTED (gRPC's own mapping of an ENHANCE_YOUR_CALM reset), 503 and
 * refused/reset UNAVAILABLE, a rate limit's `rate-limit-unavailable` UNAVAILABLE at any status but 429
 * and 500, 504 and timeouts DEADLINE_EXCEEDED, 499 CANCELLED; the rest follows
 * gRPC's HTTP-to-gRPC mapping (other 4xx INTERNAL, other 5xx UNAVAILABLE, 500 INTERNAL).
 */
export function grpcStatusOf(status: number, errorClass?: string): number {
  if (errorClass !== undefined && DEADLINE_CLASSES.has(errorClass)) return GrpcStatus.DEADLINE_EXCEEDED;
  if (errorClass === 'upstream-refused') return GrpcStatus.RESOURCE_EXHAUSTED;
  // A rate limit that cannot count (`statusOnRedisError`): its store is unavailable, whatever 5xx an
  // operator picked, never a 501's UNIMPLEMENTED (no such method) nor a 504's DEADLINE_EXCEEDED (the
  // caller's deadline); a 429 or a 500 keeps its own code.
  if (errorClass === 'rate-limit-unavailable' && status !== 429 && status !== 500) return GrpcStatus.UNAVAILABLE;
  switch (status) {
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
    case 405:
    case 501:
      return GrpcStatus.UNIMPLEMENTED;
    case 408:
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 413:
    case 429:
    case 431:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 499:
      return GrpcStatus.CANCELLED;
    case 500:
      return GrpcStatus.INTERNAL;
    default:
      return status >= 500 ? GrpcStatus.UNAVAILABLE : GrpcStatus.INTERNAL;
  }
}

/**
 * The gRPC status a gRPC client reads from an upstream's answer of HTTP `status` that is not gRPC
 * (grpc/doc/http-grpc-status-mapping.md, as Envoy's `Grpc::Utility::httpToGrpcStatus`): 400
 * INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503 and 504
 * UNAVAILABLE, anything else (a 200 included: it is not gRPC) UNKNOWN.
 */
export function grpcStatusOfHttpAnswer(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * The HTTP status an upstream's answer to a gRPC call counts as for passive health and breakers,
 * after Envoy's `Grpc::Utility::grpcToHttpStatus`: an HTTP 200 whose `grpc-status` says the server
 * failed counts as the 5xx it stands for (UNKNOWN, INTERNAL and DATA_LOSS 500, UNAVAILABLE 503), and
 * RESOURCE_EXHAUSTED as 429 (a server shedding load or a caller over its quota, as an HTTP 429: never
 * in passive health, in a breaker only when its `failureStatuses` list 429). Every other code keeps
 * `httpStatus`: OK, and the codes that are the caller's doing (CANCELLED, INVALID_ARGUMENT,
 * NOT_FOUND, UNIMPLEMENTED…), DEADLINE_EXCEEDED included, since the deadline is the caller's own
 * (`grpc-timeout`, passed on upstream), which must not get an instance ejected.
 */
export function answerStatusOf(httpStatus: number, grpcStatus: number): number {
  if (httpStatus !== 200) return httpStatus;
  switch (grpcStatus) {
    case GrpcStatus.UNKNOWN:
    case GrpcStatus.INTERNAL:
    case GrpcStatus.DATA_LOSS:
      return 500;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 429;
    default:
      return httpStatus;
  }
}

/**
 * An upstream's `grpc-status` value as the code its caller reads, as grpc-js does: a known code
 * (0–16) as it is, anything else (`oops`, `14 `, `99`, a repeated header) as UNKNOWN, which is the
 * server's failure. Never NaN: the value lands in the access log's JSON and in a metric label.
 */
export function parseGrpcStatus(value: string | string[]): number {
  const code = typeof value === 'string' && /^\d{1,2}$/.test(value) ? Number(value) : -1;
  return code >= 0 && code <= 16 ? code : GrpcStatus.UNKNOWN;
}

/** `grpc-message` is percent-encoded (gRPC over HTTP/2 spec): bytes outside 0x20–0x7E and `%` itself. */
export function encodeGrpcMessage(message: string): string {
  return /^[\x20-\x24\x26-\x7e]*$/.test(message) ? message : encodeURIComponent(message);
}

const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** The `grpc-timeout` header in milliseconds (`1S`, `200m`, `5000000u`…), or undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!;
}

/** The largest `grpc-timeout` value: "TimeoutValue → positive integer as ASCII string of at most 8 digits". */
const GRPC_TIMEOUT_MAX_VALUE = 99_999_999;

/** Units a deadline is written in, finest first. */
const FORMAT_UNITS: readonly (readonly [string, number])[] = [['m', 1], ['S', 1_000], ['M', 60_000], ['H', 3_600_000]];

/**
 * `ms` as a `grpc-timeout` value, at least 1 (an expired deadline is never sent), in the finest unit
 * whose count fits the spec's 8 digits (milliseconds up to 27 hours, then seconds…), rounded up, as
 * grpc-js writes it. A 9-digit value is refused by grpc-go ("malformed grpc-timeout", INTERNAL) and
 * misread by grpc-js (the last 8 digits: `100000000m` as 0 ms, DEADLINE_EXCEEDED at once).
 */
export function formatGrpcTimeout(ms: number): string {
  for (const [unit, unitMs] of FORMAT_UNITS) {
    const count = Math.max(1, Math.ceil(ms / unitMs));
    if (count <= GRPC_TIMEOUT_MAX_VALUE) return `${count}${unit}`;
  }
  return `${GRPC_TIMEOUT_MAX_VALUE}H`;
}

/** `/package.Service/Method` as its service and method, or undefined for a path that is not a gRPC call's. */
export function grpcCallOf(path: string): { service: string; method: string } | undefined {
  const slash = path.indexOf('/', 1);
  if (path.charCodeAt(0) !== 47 || slash < 2) return undefined;
  const end = path.indexOf('?', slash);
  const method = path.slice(slash + 1, end === -1 ? undefined : end);
  return method.length > 0 && !method.includes('/') ? { service: path.slice(1, slash), method } : undefined;
}
