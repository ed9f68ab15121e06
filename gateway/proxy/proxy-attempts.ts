import type { Readable } from 'node:stream';
import { nonePicker, UNUSED_PICK, type PickContext, type PickedEndpoint, type Picker } from '../../src/balance/picker.ts';
import { hintServerNameOnMismatch } from '../../src/upstream-tls-hint.ts';
import { retryConditionOf, type RetryCondition, type RouteConfig, type StickyCookie } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import type { RequestGuard } from '../policy/service-guard.ts';
import type { AttemptTrace } from '../telemetry/tracing/index.ts';
import type { AttemptReceiver, AttemptResult, AttemptTimeouts, TransportSettings, UpstreamTransports } from '../transports/index.ts';
import { errorMessageOf, recordListenerAnswer, sendGatewayError } from './error-response.ts';
import { endGrpcCall, stopBodyAfterStatus } from './grpc-answer.ts';
import { answerStatusOf, formatGrpcTimeout, isGrpcRequest, parseGrpcTimeout } from './grpc-status.ts';
import { distinctPick, unlessTimedOut } from './proxy-retry-pick.ts';
import { stickyPickContext } from './sticky-cookie.ts';
import { announcesBody } from './request-body-framing.ts';
import { limitedBody } from './request-body-limit.ts';
import { BodyRefusedError } from '../transports/transport-outcome.ts';
import { answerClassOf, blameClassOf, classifyUpstreamError, isIdempotent, isRequestRefusal, isRetryable, STATUS_BY_CLASS, upstreamErrorCode, type GatewayErrorClass } from './upstream-error.ts';
import { warnUpstreamTlsFailure } from './upstream-tls-warning.ts';
import { warnGrpcWebUnsupported } from './grpc-web-warning.ts';

/** What the proxy needs per request, resolved from the route and the service settings. */
export interface ProxyPolicy extends AttemptTimeouts {
  /** Further attempts after the first, each on a freshly picked instance. */
  readonly retries: number;
  /** Failure kinds that may be retried at all; `isRetryable` narrows them further by method and body. */
  readonly retryOn: readonly RetryCondition[];
  /** How transports connect to the service's instances (connect timeout, TLS); part of the transport key. */
  readonly connection: TransportSettings;
  /** The service's sticky cookie (`sticky-cookie.ts`); undefined when sticky sessions are off. */
  readonly sticky: StickyCookie | undefined;
}

/** Told how upstream attempts end; called on the data path, so it must be cheap and must not throw. */
export interface AttemptObserver {
  /**
   * An attempt on `address` of `service` ended: `errorClass` undefined for an answer below 500,
   * `http-5xx` for a 5xx answer, `grpc-error` for a gRPC call its server failed (`answerClassOf`).
   * Not called for an attempt whose request the transport dropped unsent (`AttemptResult.unsent`).
   */
  attempt(service: string, address: string, errorClass: GatewayErrorClass | undefined): void;
  /** A request of `service` found no instance to send to (and none had been tried). */
  unavailable(service: string, reason: 'no-instances' | 'no-healthy-instances'): void;
}

/** What every request's attempt loop shares: built once per proxy. */
export interface AttemptLoopShared {
  readonly upgrade: boolean;
  readonly transports: UpstreamTransports;
  readonly observer: AttemptObserver | undefined;
  /**
   * The picker in force now for `service` through `route` (undefined when the service is unknown):
   * a retry asks again, so that it picks from the host set of the moment, as Envoy's retries do.
   */
  readonly pickerFor: (service: string, route: RouteConfig | undefined) => Picker | undefined;
  /** The message of a `no-instances` answer for `service` (`noInstancesMessage`). */
  readonly noInstancesMessage: (service: string) => string;
}

/** A retry's picker when its service is no longer known: no instance, so the request ends with its last failure. */
const UNKNOWN_SERVICE = nonePicker('no-instances');

/**
 * The longest a request its transport still holds after answering (`AttemptResult.released`) keeps
 * its concurrency slot: a connection that never opens nor fails (`timeouts.connect: 0`) must not
 * hold one for ever.
 */
const HELD_SLOT_CAP_MS = 60_000;

/**
 * One admitted request's attempt loop, as callbacks instead of an async function: each attempt
 * goes out through the transport's `attemptThen` (or its promise, for transports without one),
 * and its end decides between done and a retry on a freshly picked instance. The usual request
 * thus makes one attempt without a promise of its own. Settles `done` once, after releasing the
 * guard's slot, however the loop ends (a throw included: it rejects).
 */
export class AttemptLoop implements AttemptReceiver {
  private attempt = 0;
  // Addresses tried so far; most requests make one attempt, so no collection until a second.
  private firstTried: string | undefined = undefined;
  private laterTried: string[] | undefined = undefined;
  private lastError: GatewayErrorClass | undefined = undefined;
  /** Instances whose connect timed out: never tried again for this request (`unlessTimedOut`). */
  private timedOut: string[] | undefined = undefined;
  // Whether an attempt's outcome is the breaker's to hear (a trial without one frees its slot), which
  // one (the last such attempt's: booked once, when the request ends), and whether a retry is out.
  private recorded = false;
  private verdictClass: GatewayErrorClass | undefined = undefined;
  private verdictStatus = 0;
  private retrying = false;
  private ended = false;
  /** Set while an attempt's request is still held by its transport, unsent (`AttemptResult.released`). */
  private released: Promise<void> | undefined = undefined;
  private pick: PickedEndpoint | undefined = undefined;
  /** The current pick until a transport has it (and reports its outcome): `next` releases it should `start` throw before. */
  private unreported: PickedEndpoint | undefined = undefined;
  private span: AttemptTrace | undefined = undefined;
  /** What every attempt sends as the request body (`limitedBody`): null for a request without one. */
  private readonly body: Readable | null;
  private readonly idempotent: boolean;
  // gRPC calls only; other requests pay one header test.
  private readonly grpcDeadlineMs: number | undefined;
  /** The first attempt's pick context; a retry's leaves out `sticky` (the instance it names was tried). */
  private pickContext: PickContext;

  constructor(
    private readonly shared: AttemptLoopShared,
    private readonly context: GatewayContext,
    /** The request's route (undefined on a breaker's fallback hop): a retry asks `shared.pickerFor` with it. */
    private readonly route: RouteConfig | undefined,
    /** The first attempt's picker, read just before the loop starts. */
    private readonly picker: Picker,
    private readonly guard: RequestGuard | undefined,
    private readonly admission: number,
    private readonly policy: ProxyPolicy,
    private readonly resolve: () => void,
    private readonly reject: (error: unknown) => void,
  ) {
    const headers = context.request.headers;
    this.body = !shared.upgrade && announcesBody(headers) ? limitedBody(context) : null;
    this.idempotent = isIdempotent(context.upstream.method);
    this.grpcDeadlineMs = !shared.upgrade && isGrpcRequest(headers) ? (parseGrpcTimeout(headers['grpc-timeout']) ?? -1) : undefined;
    // A service without sticky sessions reads no cookie and registers no hook.
    this.pickContext = policy.sticky === undefined ? { clientIp: context.clientIp, url: context.upstream.path, headers } : stickyPickContext(context, policy.sticky);
  }

  /** Starts the next attempt, or ends the loop when there is no instance for it. */
  next(): void {
    try {
      this.start();
    } catch (error) {
      // The gateway's own failure: the instance's in-flight count is given back, and nothing is held against it.
      const unreported = this.unreported;
      this.unreported = undefined;
      unreported?.done({ ok: false, latencyMs: 0, errorClass: 'internal' });
      this.end(error);
    }
  }

  /** @internal The transport's report of the current attempt. */
  attemptEnded(result: AttemptResult): void {
    let again: boolean;
    try {
      again = this.settle(result);
    } catch (error) {
      return this.end(error);
    }
    // A retry leaves the transport's callback first: no dispatch from inside another's error handling.
    if (again) process.nextTick(startNext, this);
  }

  private start(): void {
    const { context, policy, firstTried, laterTried } = this;
    this.attempt += 1;
    // A retry picks from the host set in force now (Envoy's): the picker the request started with
    // may list a member its balancer has let go since (a registry change) or belong to a balancer a
    // reload replaced, and a pick there counts in no live load. The first attempt takes its own.
    const picker = firstTried === undefined ? this.picker : (this.shared.pickerFor(context.service, this.route) ?? UNKNOWN_SERVICE);
    let pick = picker.pick(this.pickContext);
    // Only a retry can repeat an instance; the first attempt takes its pick as it is.
    if (firstTried !== undefined && pick.kind === 'endpoint' && (pick.address === firstTried || laterTried?.includes(pick.address) === true)) {
      const sameContext = () => this.pickContext;
      pick = unlessTimedOut(picker, sameContext, distinctPick(picker, sameContext, pick, laterTried ? [firstTried, ...laterTried] : [firstTried]), this.timedOut);
    }
    // After a failed attempt, what the client needs to hear is that failure, not "none left".
    if (pick.kind === 'none') {
      if (!this.lastError) this.shared.observer?.unavailable(context.service, pick.reason);
      if (this.lastError) sendGatewayError(context, this.lastError);
      else sendGatewayError(context, pick.reason, pick.reason === 'no-instances' ? this.shared.noInstancesMessage(context.service) : undefined);
      return this.end();
    }
    this.unreported = pick;
    if (firstTried === undefined) {
      this.firstTried = pick.address;
      if (this.pickContext.sticky !== undefined) this.pickContext = { clientIp: this.pickContext.clientIp, url: this.pickContext.url, headers: this.pickContext.headers };
    } else (this.laterTried ??= []).push(pick.address);
    context.outcome.attempts = this.attempt;
    context.outcome.upstream = pick.address;
    if (context.outcome.unsent === true) context.outcome.unsent = false;
    const transport = this.shared.transports.get(pick.instance, pick.address, policy.connection);
    let timeouts: AttemptTimeouts = policy;
    if (this.grpcDeadlineMs !== undefined) {
      timeouts = grpcTimeouts(context, policy, this.grpcDeadlineMs);
      if (timeouts.deadlineMs === 0) {
        // The deadline was spent before this attempt went out: nothing is sent, so the attempt is
        // none of the instance's requests, nor the request's bytes its bytes (the access log still
        // names the instance as `upstream`).
        this.unreported = undefined;
        context.outcome.unsent = true;
        pick.done(UNUSED_PICK);
        sendGatewayError(context, 'deadline-exceeded');
        return this.end();
      }
    }
    this.pick = pick;
    this.span = context.trace?.attempt(this.attempt, pick.instance, pick.address, context.upstream.headers);
    // From here the transport reports the outcome, also of a request it fails at once.
    this.unreported = undefined;
    if (this.shared.upgrade) {
      transport.upgrade(context, pick, timeouts).then((result) => this.attemptEnded(result), (error: unknown) => this.end(error));
    } else if (transport.attemptThen) {
      // Last: the result may come back before this returns.
      transport.attemptThen(context, pick, timeouts, this.body, this);
    } else {
      transport.attempt(context, pick, timeouts, this.body).then((result) => this.attemptEnded(result), (error: unknown) => this.end(error));
    }
  }

  /** Books an attempt's result; true when another attempt follows. */
  private settle(result: AttemptResult): boolean {
    const { context, guard, policy } = this;
    const pick = this.pick!;
    // Every held request keeps the slot (today only classes that are never retried carry one).
    if (!result.ok && result.released) this.released = this.released ? Promise.allSettled([this.released, result.released]).then(() => undefined) : result.released;
    // One classification feeds the per-instance counters, passive health (through `pick`) and the
    // breaker: an answer to a gRPC call counts as the status its `grpc-status` stands for; an answer
    // the gateway put in the upstream's place (a `cache`'s stale one for a 503, `grpcWeb`'s status
    // for an answer that is not gRPC) as the upstream's HTTP status.
    const upstreamStatus = context.outcome.upstreamStatus ?? context.outcome.status;
    let status = upstreamStatus;
    let attemptClass: GatewayErrorClass | undefined;
    if (!result.ok) attemptClass = result.errorClass;
    // A gRPC-Web call the instance could not read: the route's mismatch, counted against none, its status kept.
    else if (context.outcome.grpcWebUnsupported) {
      attemptClass = 'grpc-web-unsupported';
      warnGrpcWebUnsupported(context);
    } else if (this.grpcDeadlineMs === undefined || context.outcome.grpcStatus === undefined || context.outcome.upstreamStatus !== undefined) attemptClass = status >= 500 ? 'http-5xx' : undefined;
    else {
      attemptClass = answerClassOf(status, context.outcome.grpcStatus);
      status = answerStatusOf(status, context.outcome.grpcStatus);
    }
    // The span's error is the attempt's class: its failure, or an answer that counts as one (a 5xx, a gRPC call failed inside an HTTP 200).
    this.span?.end(result.ok ? upstreamStatus : 0, attemptClass, this.grpcDeadlineMs === undefined ? undefined : context.outcome.grpcStatus);
    this.span = undefined;
    // A refusal the request may have caused counts against the first instance that gives it, the
    // same refusal met again against none (`blameClassOf`; the transport told the pick so already):
    // one request cannot get every instance it is retried on ejected. Its answer and its log line keep the class.
    if (!result.ok && isRequestRefusal(result.errorClass)) {
      const blamed = context.outcome.refusalsBlamed;
      attemptClass = blameClassOf(result.errorClass, blamed);
      if (attemptClass !== 'repeated-refusal') context.outcome.refusalsBlamed = blamed === undefined ? [result.errorClass] : [...blamed, result.errorClass];
    }
    // A request its transport dropped unsent is no request of the instance's (blame only the guilty):
    // the route and the service count it when it is answered, the instance never saw it.
    if (result.ok || result.unsent !== true) this.shared.observer?.attempt(context.service, pick.address, attemptClass);
    else context.outcome.unsent = true;
    if (guard) {
      // The breaker judges the request, not each attempt (passive health does that, per instance): a
      // failure a retry answers is no failure of the service's. Held until the loop ends.
      if (guard.judges(attemptClass)) {
        this.recorded = true;
        this.verdictClass = attemptClass;
        this.verdictStatus = status;
      }
      if (this.retrying) guard.retryEnded();
      this.retrying = false;
    }
    if (result.ok) {
      // The upstream's answer ended before the client's body did (a 413 to an upload, a gRPC
      // server's Trailers-Only status to a client stream): nobody reads the rest. An HTTP/2 client
      // is asked to stop sending once its answer is out (RST_STREAM NO_ERROR, RFC 9113 §8.1), as
      // after the gateway's own answers; else it waits for flow-control window nobody opens.
      stopBodyAfterStatus(context);
      this.end();
      return false;
    }
    // Not the request's error class yet: a retry may still answer it (the gateway's own answer records its class).
    this.lastError = result.errorClass;
    if (result.errorClass === 'connect-timeout') (this.timedOut ??= []).push(pick.address);
    if (result.errorClass === 'upstream-tls') {
      const code = upstreamErrorCode(result.error);
      warnUpstreamTlsFailure(context.log, context.service, pick.address, code, result.error);
      hintServerNameOnMismatch(context.log, context.service, pick.instance.host, policy.connection.tls.serverName, code, (result.error as Error | null)?.message);
    }
    if (result.responseStarted) {
      // An HTTP/2 listener's 408 (the body came too slowly) answered in the upstream's place, whose
      // answer then found the response taken: the 408 is what the client got, not the upstream's status.
      const answered = recordListenerAnswer(context);
      if (!answered) context.outcome.errorClass = result.errorClass;
      // A body past the route's limit is why the answer is cut: the request reads 413, not the upstream's status.
      if (!answered && result.errorClass === 'body-too-large') context.outcome.status = STATUS_BY_CLASS['body-too-large'];
      // Part of the answer is already with the client: all that is left is to cut it off (a gRPC
      // call gets its status in trailers instead, which its client reads).
      if (this.grpcDeadlineMs !== undefined && !answered) endGrpcCall(context, STATUS_BY_CLASS[result.errorClass], result.errorClass, errorMessageOf(result.errorClass), result.error);
      // An `errors` page went out whole on the upstream's head (`sendErrorPage`): the client has its
      // answer, and its connection lives on.
      else if (!context.response.writableEnded) {
        // A HEAD's answer is its head (RFC 9110 §9.3.2), written already: the body that failed is
        // the GET's that the cache fetched for it (`convertHead`), never the client's. Ended, the
        // head goes out (node:http sends it only at the end) and the connection lives on; cut, the
        // client would get no answer at all. A client gone (its response destroyed) has nothing to end.
        if (context.request.method === 'HEAD' && context.response.headersSent && !context.response.destroyed) context.response.end();
        else context.response.destroy(result.error);
      }
      this.end();
      return false;
    }
    // A body refused as it streams (past the route's limit, not decodable) is the answer, whatever
    // this attempt met first (a connect timeout: undici holds a body's error until it has a
    // connection): no retry would send it. A body that cannot be decoded says what was wrong.
    const refused = this.body?.errored;
    if (refused instanceof BodyRefusedError) {
      const refusedClass = classifyUpstreamError(refused, false);
      sendGatewayError(context, refusedClass, refusedClass === 'body-too-large' ? undefined : refused.message);
      this.end();
      return false;
    }
    const bodyConsumed = this.body !== null && this.body.readableDidRead;
    const condition = retryConditionOf(result.errorClass);
    const allowed = condition !== undefined && policy.retryOn.includes(condition) && isRetryable(result.errorClass, this.idempotent, bodyConsumed);
    // The guard is asked last: a retry it allows is taken from the budget.
    if (this.attempt > policy.retries || !allowed || context.response.destroyed || (guard !== undefined && !guard.mayRetry(performance.now()))) {
      sendGatewayError(context, result.errorClass);
      this.end();
      return false;
    }
    this.retrying = guard !== undefined;
    context.log.debug({ upstream: pick.address, errorClass: result.errorClass, attempt: this.attempt }, 'retrying on another instance');
    return true;
  }

  /** Releases the guard's slot and settles the request's promise; once. */
  private end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const guard = this.guard;
    try {
      if (guard) {
        // The clock is read only when a breaker will use it.
        if (this.recorded) guard.record(guard.slot ? performance.now() : 0, this.verdictClass, this.verdictStatus, this.admission);
        if (this.retrying) guard.retryEnded();
        // A request its transport still holds (waiting for a connection) keeps its concurrency slot
        // until let go, but not a breaker's trial without an outcome: the transport drops that
        // request unsent, so the trial can never reach the upstream, and holding its slot answered
        // every other call the fallback until then (up to `HELD_SLOT_CAP_MS`). Its slot goes to the
        // next call at once, counted neither a success nor a failure.
        if (this.released) {
          if (!this.recorded) guard.releaseTrial(this.admission);
          leaveWhenReleased(guard, this.released, this.admission);
        } else guard.leave(this.admission, this.recorded);
      }
    } finally {
      if (error === undefined) this.resolve();
      else this.reject(error);
    }
  }
}

/** Gives `guard` its slot back once `released` settles, or after `HELD_SLOT_CAP_MS` at the latest; a trial's slot was settled already. */
function leaveWhenReleased(guard: RequestGuard, released: Promise<void>, admission: number): void {
  let left = false;
  const leave = () => {
    if (left) return;
    left = true;
    clearTimeout(cap);
    guard.leave(admission, true);
  };
  const cap = setTimeout(leave, HELD_SLOT_CAP_MS).unref();
  void released.then(leave, leave);
}

/** `process.nextTick` target: an argument instead of a closure per retry. */
function startNext(loop: AttemptLoop): void {
  loop.next();
}

/**
 * The timeouts of one attempt of a gRPC call with `deadlineMs` in total since the request arrived
 * (-1: the call has none): the policy's, with `deadlineMs` set to what is left (0 when it has
 * passed), and that written to the upstream `grpc-timeout`. The policy's timeouts are not cut to
 * the deadline: the transport ends the attempt at the deadline itself, as `deadline-exceeded`, which
 * is the client's bound and never counts against the upstream; a gateway timeout that runs out first
 * is the upstream's slowness by the gateway's own measure, and counts.
 */
function grpcTimeouts(context: GatewayContext, policy: AttemptTimeouts, deadlineMs: number): AttemptTimeouts {
  if (deadlineMs < 0) return policy;
  const left = Math.max(0, Math.floor(deadlineMs - (performance.now() - context.startedAt)));
  if (left === 0) return { ...policy, deadlineMs: 0 };
  context.upstream.headers['grpc-timeout'] = formatGrpcTimeout(left);
  return { headersTimeoutMs: policy.headersTimeoutMs, bodyTimeoutMs: policy.bodyTimeoutMs, deadlineMs: left };
}
