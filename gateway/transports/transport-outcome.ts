import type { Readable } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import { UNUSED_PICK, type PickedEndpoint, type PickOutcome } from '../../src/balance/picker.ts';
import type { GatewayContext, RequestOutcome } from '../context.ts';
import { transformBody } from '../middleware/response-transform/index.ts';
import { answerClassOf, blameClassOf, healthClassOf } from '../proxy/upstream-error.ts';
import type { AttemptResult } from './transport.ts';
import { countBodyBytes, startResponseBody } from './transport-response-body.ts';

/** Marks the abort the gateway causes when the client goes away, so it is classified as `cancelled`. */
export class ClientGoneError extends Error {
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('the client closed the connection');
  }
}

/**
 * A request body the gateway refuses as it streams, the client's fault and never the upstream's:
 * the attempt fails with it at once (an upstream stream already open is cancelled), without
 * waiting for a timeout, and the client is answered for it (`BodyTooLargeError`, `BodyMalformedError`).
 */
export abstract class BodyRefusedError extends Error {
  abstract readonly code: string;
}

/** The failure of a request body that grew past its route's bodyLimit (proxy/request-body-limit.ts): the attempt ends `body-too-large`, never the upstream's fault. */
export class BodyTooLargeError extends BodyRefusedError {
  readonly code = 'SB_BODY_TOO_LARGE';
  constructor(maxBytes: number) {
    super(`the request body is larger than ${maxBytes} bytes`);
  }
}

/**
 * The failure of a request body the gateway cannot decode (`grpcWeb`'s `-text` body that is not
 * base64): the attempt ends `client-body-error` (400, INTERNAL to a gRPC-Web caller, as Envoy
 * answers), never the upstream's fault; its message says what was wrong.
 */
export class BodyMalformedError extends BodyRefusedError {
  readonly code = 'SB_BODY_MALFORMED';
}

/**
 * A request head not sent to an HTTP/2 upstream for its size (over the maxHeaderListSize the
 * upstream advertised, or a header block node:http2 will not send): the attempt ends
 * `header-too-large` (431), never the upstream's fault.
 */
export class HeadTooLargeError extends Error {
  readonly code = 'SB_HEADER_TOO_LARGE';
}

/**
 * Whether the headers wait is the client's: its request body is still coming and nothing of it
 * waits to be sent (`queuedBytes`: what the transport itself holds for the upstream). An upstream
 * that stops reading leaves the body's buffer full, and then the timeout is its own.
 */
export function uploadWaitsForClient(body: Readable | null, queuedBytes = 0): boolean {
  return body !== null && !body.readableEnded && body.readableLength === 0 && queuedBytes === 0;
}

/**
 * An upstream's final status outside 200–599 (`isValidFinalStatus`): a 502 (class
 * `upstream-protocol`, against the upstream), as Envoy answers.
 */
export class InvalidStatusError extends Error {
  readonly code = 'SB_UPSTREAM_INVALID_STATUS';
  constructor(status: number) {
    super(`the upstream answered with status ${status}, outside 200-599`);
  }
}

/**
 * A transport's own timeout, with the stable code the classifier maps (`SB_UPSTREAM_CONNECT_TIMEOUT`
 * and so on); `SB_CALL_DEADLINE` is the client's deadline for the call, not a gateway timeout.
 */
export class UpstreamTimeoutError extends Error {
  constructor(
    readonly code: 'SB_UPSTREAM_CONNECT_TIMEOUT' | 'SB_UPSTREAM_HEADERS_TIMEOUT' | 'SB_UPSTREAM_BODY_TIMEOUT' | 'SB_CALL_DEADLINE',
    message: string,
  ) {
    super(message);
  }
}

/** The longest delay a Node timer holds (about 24.8 days); a longer one fires after 1 ms instead. */
const LONGEST_TIMER_MS = 2_147_483_647;

/**
 * Runs `onPassed` with the error of a call whose own deadline (`AttemptTimeouts.deadlineMs`) passed
 * during an attempt: classed `deadline-exceeded`, which never counts against the upstream. Returns
 * the timer to clear when the attempt ends, or undefined when the call has no deadline or one
 * further off than a timer can wait (as grpc-js treats it: no deadline; the upstream still gets it
 * in `grpc-timeout`, and the gateway's own timeouts still run).
 */
export function startCallDeadline(deadlineMs: number | undefined, onPassed: (error: UpstreamTimeoutError) => void): NodeJS.Timeout | undefined {
  if (deadlineMs === undefined || deadlineMs > LONGEST_TIMER_MS) return undefined;
  return setTimeout(() => onPassed(new UpstreamTimeoutError('SB_CALL_DEADLINE', `the call's deadline passed (${deadlineMs} ms were left of it when this attempt began)`)), deadlineMs);
}

/**
 * The outcome of a pick whose request the gateway never sent (it waited in a queue for a stream or
 * a connection until its call's deadline passed): released unused, counted for and against nobody,
 * since the instance saw nothing (the wait was the gateway's own congestion, no latency of the instance's).
 */
export const NEVER_SENT: PickOutcome = UNUSED_PICK;

/**
 * The latency sample of an attempt for its balancer (`PickOutcome.latencyMs`, and
 * `PickedEndpoint.answered` as the head comes): from `started` to the upstream's response head
 * (`answeredAt`: the status line or HEADERS, a WebSocket's 101), as Linkerd's peak-EWMA (tower's
 * `CompleteOnResponse`) and Finagle sample it, so that a client that reads slowly, a long download
 * or a long stream does not count against a fast upstream. `started` is when the request went out
 * on a connection (undici writing it, the HTTP/2 stream opening), as tower measures from the
 * endpoint's `call`, once it is ready: the wait in the gateway's own pool or stream queue is its
 * congestion, which the in-flight count already weighs, and the connect is paid once per
 * connection, by whichever request the pool gives it to (its failure and timeout still count). An
 * upload's time stays in: the gateway reads a body only as fast as the upstream takes it, so its end
 * does not tell a client slow to send from an upstream slow to read. An attempt that failed before any head
 * (`answeredAt` undefined) is sampled to its failure; one that failed after it, to its head: its
 * failure still counts for health (and p2c-ewma's failure penalty), and what came after the head is
 * as much the client's pace as the upstream's.
 */
export function latencySample(started: number, answeredAt: number | undefined): number {
  return (answeredAt ?? performance.now()) - started;
}

/**
 * Reports an answer's head to its pick as the attempt's latency sample (`PickedEndpoint.answered`),
 * unless its status says the upstream failed (a 5xx): that one is sampled at the attempt's end
 * (`reportAttempt`), as at least p2c-ewma's failure penalty, so that a failing instance's quick head
 * never counts as a fast answer, nor stays its only sample when the client leaves during its body.
 */
export function sampleHead(pick: PickedEndpoint, status: number, latencyMs: number): void {
  if (answerClassOf(status, undefined) === undefined) pick.answered(latencyMs);
}

/**
 * Reports one attempt's end to its pick (its in-flight slot is released now, at the end, whatever
 * `latencySample` measured): a 5xx answer as `http-5xx`, an answer to a gRPC call with
 * `grpcStatus` (its `grpc-status`, from the headers of a Trailers-Only answer or from the trailers)
 * as `answerClassOf` says, a failure by its health class, so the gateway's own failures
 * (`internal`) and the client's never count against the upstream, nor a refusal the request may
 * have caused once `outcome.refusalsBlamed` says it counted the same one (`blameClassOf`), nor an
 * answer to a gRPC-Web call that may be an instance's refusal to read it (`outcome.grpcWebUnsupported`).
 */
export function reportAttempt(pick: PickedEndpoint, started: number, answeredAt: number | undefined, status: number, result: AttemptResult, grpcStatus?: number, outcome?: Pick<RequestOutcome, 'refusalsBlamed' | 'grpcWebUnsupported'>): void {
  const latencyMs = latencySample(started, answeredAt);
  if (!result.ok) return pick.done({ ok: false, latencyMs, errorClass: healthClassOf(blameClassOf(result.errorClass, outcome?.refusalsBlamed)) });
  const answerClass = outcome?.grpcWebUnsupported ? 'grpc-web-unsupported' : answerClassOf(status, grpcStatus);
  pick.done(answerClass === undefined ? { ok: true, latencyMs } : { ok: false, latencyMs, errorClass: answerClass });
}

/**
 * Runs the response body transforms over a buffered upstream body and sends the result (through
 * the route's response encoder, if any). A
 * transform that fails is the gateway's failure: `internal`, and nothing was sent yet, so the proxy
 * answers 500.
 */
export function sendTransformed(context: GatewayContext, status: number, outgoing: OutgoingHttpHeaders, chunks: readonly Buffer[]): Promise<AttemptResult> {
  return Promise.resolve()
    .then(() => transformBody(Buffer.concat(chunks), outgoing, context.responseBodyTransforms))
    .then((body): AttemptResult => {
      const sink = startResponseBody(context, status, outgoing);
      countBodyBytes(context, sink, body.length);
      sink.end(body);
      return { ok: true };
    })
    .catch((error: Error): AttemptResult => ({ ok: false, errorClass: 'internal', responseStarted: context.response.headersSent, error }));
}
