/**
 * How one upstream attempt failed, as classified at the socket boundary. `http-5xx` is a response
 * the upstream chose to send; `grpc-error` one to a gRPC call whose `grpc-status` says the server
 * failed (UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS) inside an HTTP 200; `upstream-tls` a TLS handshake the upstream failed (unknown CA, name
 * mismatch, expired certificate). The classes of `NotUpstreamFaultClass` name failures the client or
 * the gateway caused; they say nothing about the upstream and so never count against it.
 */
export type UpstreamErrorClass =
  | 'connect-refused'
  | 'connect-timeout'
  | 'upstream-tls'
  | 'reset-before-headers'
  | 'reset-after-headers'
  | 'headers-timeout'
  | 'body-timeout'
  | 'http-5xx'
  | 'grpc-error'
  | NotUpstreamFaultClass;

/**
 * Failures that are not the upstream's: `cancelled` (the client went away, or a pick was released
 * unused), `client-body-error` (the request body the client sent broke off or did not match its
 * framing), `request-rejected` (the gateway refused to send the request, before any byte reached
 * the upstream), `body-too-large` (the request body grew past its route's bodyLimit as it streamed:
 * the gateway aborted the upstream request), `deadline-exceeded` (the client's own deadline for the call, a gRPC call's
 * `grpc-timeout`, passed before the gateway's timeouts did: the upstream was slower than the client
 * asked, not slower than the gateway allows) and `internal` (the gateway failed, e.g. a response
 * transform). `header-too-large` is a large request head an HTTP/2 upstream refused before any
 * answer (RST_STREAM ENHANCE_YOUR_CALM, RFC 9113 §7: node:http2's answer to a head over its field or
 * size limits), or one the gateway declined to send (over the limit the upstream advertised): what
 * was asked, not how the upstream is, so that one client's head cannot get healthy instances
 * ejected. (The same reset of an ordinary head, `upstream-refused`, is the upstream's: node:http2
 * also sends it past its `maxSessionMemory`.) `repeated-refusal` is a refusal the request may have
 * caused (an HTTP/2 stream reset before the answer with ENHANCE_YOUR_CALM or PROTOCOL_ERROR) met
 * again by a later attempt of a request that has already counted the same one against an instance:
 * one request blames at most one instance for each. `grpc-web-unsupported` is a gRPC-Web call sent as
 * it came that an instance answered with a plain gRPC Trailers-Only failure (UNKNOWN, INVALID_ARGUMENT,
 * INTERNAL, UNIMPLEMENTED): the refusal of a server that cannot read gRPC-Web, the route's mismatch
 * (it lacks the `grpcWeb` middleware), or, alike to the gateway, the failure of a call it read.
 * `client-slow-read` is an answer whose connection or stream the upstream closed in the middle of
 * its body after its client had taken nothing for a while (the gateway held the upstream still for
 * it): an upstream's send timeout (nginx's `send_timeout`, Go's `WriteTimeout`) looks the same.
 */
const NOT_UPSTREAM_FAULT_CLASSES = ['cancelled', 'client-body-error', 'body-too-large', 'header-too-large', 'request-rejected', 'repeated-refusal', 'grpc-web-unsupported', 'deadline-exceeded', 'client-slow-read', 'internal'] as const;
export type NotUpstreamFaultClass = (typeof NOT_UPSTREAM_FAULT_CLASSES)[number];

const NOT_UPSTREAM_FAULTS: ReadonlySet<string> = new Set(NOT_UPSTREAM_FAULT_CLASSES);

/** The outcome of one upstream attempt, reported once per pick by the proxy. */
export interface UpstreamOutcome {
  /** False for a 5xx response, a gRPC call failed by its server (`grpc-error`) or any transport error. */
  readonly ok: boolean;
  /**
   * The attempt's latency in milliseconds: from its start to the upstream's response head (status
   * line, HEADERS, a WebSocket's 101), or to its failure when none came; never the time its client
   * took to read the body (the access log's duration is that). The outcome itself is reported at the
   * attempt's end, which is when its in-flight slot is released.
   */
  readonly latencyMs: number;
  /** Set when `ok` is false; a failure without a class counts as a server-side error. */
  readonly errorClass?: UpstreamErrorClass;
}

/** True for the classes the client or the gateway caused, which say nothing about the upstream. */
export function isNotUpstreamFault(errorClass: string): boolean {
  return NOT_UPSTREAM_FAULTS.has(errorClass);
}

/**
 * True when the outcome should count against the upstream (passive health, latency estimates, a
 * breaker): any failure except the ones the client or the gateway caused.
 */
export function isUpstreamFailure(outcome: UpstreamOutcome): boolean {
  return !outcome.ok && (outcome.errorClass === undefined || !isNotUpstreamFault(outcome.errorClass));
}

/**
 * Node error codes of a gateway out of its own resources: file descriptors (`EMFILE` for the
 * process, `ENFILE` for the system), socket buffers, memory. A connection that fails so never
 * reached the upstream and says nothing about it.
 */
const GATEWAY_RESOURCE_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** True when `code` (a Node error's `code`) says the gateway itself ran out of a resource. */
export function isGatewayResourceCode(code: unknown): boolean {
  return typeof code === 'string' && GATEWAY_RESOURCE_CODES.has(code);
}
