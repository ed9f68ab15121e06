import type { PickContext, PickedEndpoint, PickResult, Picker } from '../../src/balance/picker.ts';
import { retryConditionOf, type RetryCondition, type RouteConfig } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import { answerRefusal } from '../policy/refusal-answer.ts';
import { MUST_WAIT, REFUSED_MAX_REQUESTS, type RequestGuard } from '../policy/service-guard.ts';
import type { AttemptTimeouts, TransportSettings, UpstreamTransports } from '../transports/index.ts';
import { errorMessageOf, sendErrorAnswer, sendGatewayError } from './error-response.ts';
import { endGrpcCall } from './grpc-answer.ts';
import { formatGrpcTimeout, isGrpcRequest, parseGrpcTimeout } from './grpc-status.ts';
import { isIdempotent, isRetryable, STATUS_BY_CLASS, type GatewayErrorClass } from './upstream-error.ts';

/** What the proxy needs per request, resolved from the route and the service settings. */
export interface ProxyPolicy extends AttemptTimeouts {
  /** Further attempts after the first, each on a freshly picked instance. */
  readonly retries: number;
  /** Failure kinds that may be retried at all; `isRetryable` narrows them further by method and body. */
  readonly retryOn: readonly RetryCondition[];
  /** How transports connect to the service's instances (connect timeout, TLS); part of the transport key. */
  readonly connection: TransportSettings;
}

/** Told how upstream attempts end; called on the data path, so it must be cheap and must not throw. */
export interface AttemptObserver {
  /** An attempt on `address` of `service` ended: `errorClass` undefined for an answer below 500, `http-5xx` for a 5xx answer. */
  attempt(service: string, address: string, errorClass: GatewayErrorClass | undefined): void;
  /** A request of `service` found no instance to send to (and none had been tried). */
  unavailable(service: string, reason: 'no-instances' | 'no-healthy-instances'): void;
}

/** The proxy's view of the rest of the gateway. */
export interface ProxyDependencies {
  /** The picker for `service` through `route` (its subset or canary, if it has one); undefined when the service is unknown. */
  pickerFor(service: string, route: RouteConfig | undefined): Picker | undefined;
  /** The retry and timeout policy for this request; a function of its route and service only (the proxy keeps it per route). */
  policyFor(context: GatewayContext): ProxyPolicy;
  /** The transport per instance protocol, address and connection settings. */
  transports: UpstreamTransports;
  /** Per-instance counters and upstream error metrics. */
  observer?: AttemptObserver;
  /** The circuit breaker, caps and retry budget of a request's service (and route); none when absent. The proxy keeps each per route. */
  guards?: { guardFor(service: string, route: RouteConfig | undefined): RequestGuard };
}

/** A route's guard and policy for the service its requests went to last, kept on the route's slot. */
interface RouteSlot {
  readonly service: string;
  readonly guard: RequestGuard | undefined;
  readonly policy: ProxyPolicy;
}

/** Attempts to find an instance not tried yet before accepting a repeat. */
const DISTINCT_PICK_TRIES = 4;

/**
 * The centre of the onion: picks an instance, sends the request through the transport of the
 * instance's protocol, streams the answer, and on a retryable failure tries another instance within
 * the policy's budget. Failures the client must see become a JSON answer with the mapped status
 * (503 none, 502 refused/reset/TLS, 504 timeout), or the matching gRPC status for a gRPC call. A
 * gRPC call's `grpc-timeout` bounds every attempt (no gateway timeout outlives it) and goes
 * upstream as what is left of it. With `upgrade`, each attempt is a WebSocket handshake instead
 * (`context.response` is then a ServerResponse on the client socket).
 */
export function createProxy(dependencies: ProxyDependencies, mode: 'request' | 'upgrade' = 'request'): (context: GatewayContext) => Promise<void> {
  const upgrade = mode === 'upgrade';
  const guards = dependencies.guards;
  // One lookup a request instead of four (the guard's and the policy's two-level caches); route
  // objects belong to one configuration, so a reload starts afresh by itself, as those caches do.
  const slots = new WeakMap<RouteConfig, RouteSlot>();
  const slotOf = (context: GatewayContext, route: RouteConfig): RouteSlot => {
    let slot = slots.get(route);
    if (slot?.service !== context.service) {
      slot = { service: context.service, guard: guards?.guardFor(context.service, route), policy: dependencies.policyFor(context) };
      slots.set(route, slot);
    }
    return slot;
  };

  // One async function per request (no nested one): admission by the service's breaker and caps,
  // the attempt loop, then the guard's release.
  async function proxy(context: GatewayContext, route: RouteConfig | undefined, fallbackDepth: number): Promise<void> {
    const picker = dependencies.pickerFor(context.service, route);
    const observer = dependencies.observer;
    if (!picker) {
      observer?.unavailable(context.service, 'no-instances');
      return sendGatewayError(context, 'no-instances');
    }
    // The slot only for a request's own route: a fallback hop (no route) asks directly.
    const slot = route !== undefined && route === context.route ? slotOf(context, route) : undefined;
    const guard = slot ? slot.guard : guards?.guardFor(context.service, route);
    let admission = 1;
    if (guard) {
      admission = guard.enter(context.startedAt);
      if (admission === MUST_WAIT) {
        // Queued behind `maxRequests`: bounded by the connect timeout, as Envoy bounds its pending requests.
        const waitMs = (slot?.policy ?? dependencies.policyFor(context)).connection.connectTimeoutMs || 1_000;
        admission = (await guard.waitForSlot(waitMs)) ? guard.enter(performance.now()) : REFUSED_MAX_REQUESTS;
        if (admission === MUST_WAIT) admission = REFUSED_MAX_REQUESTS;
      }
      if (admission < 0) {
        const other = answerRefusal(context, admission, guard);
        if (other === undefined) return;
        // The fallback service under its own guard, once: its own open breaker answers 503, never another hop.
        context.service = other;
        if (fallbackDepth > 0) return sendErrorAnswer(context, 503, 'circuit-open', 'the circuit breaker of the fallback service is open too', { 'retry-after': '1' });
        return proxy(context, undefined, fallbackDepth + 1);
      }
    }
    const policy = slot ? slot.policy : dependencies.policyFor(context);
    const { request } = context;
    const hasBody = upgrade ? false : request.headers['content-length'] !== undefined ? request.headers['content-length'] !== '0' : request.headers['transfer-encoding'] !== undefined;
    const idempotent = isIdempotent(context.upstream.method);
    // gRPC calls only; other requests pay one header test.
    const grpcDeadlineMs = !upgrade && isGrpcRequest(request.headers) ? (parseGrpcTimeout(request.headers['grpc-timeout']) ?? -1) : undefined;
    const pickContext: PickContext = { clientIp: context.clientIp, url: context.upstream.path, headers: request.headers };
    // Addresses tried so far; most requests make one attempt, so no collection until a second.
    let firstTried: string | undefined;
    let laterTried: string[] | undefined;
    let lastError: GatewayErrorClass | undefined;
    // Whether an attempt's outcome counted for the breaker (a trial without one frees its slot), and whether a retry is out.
    let recorded = false;
    let retrying = false;

    try {
      for (let attempt = 1; ; attempt += 1) {
        let pick = picker.pick(pickContext);
        // Only a retry can repeat an instance; the first attempt takes its pick as it is.
        if (firstTried !== undefined && pick.kind === 'endpoint' && (pick.address === firstTried || laterTried?.includes(pick.address) === true)) {
          pick = distinctPick(picker, pickContext, pick, firstTried, laterTried);
        }
        // After a failed attempt, what the client needs to hear is that failure, not "none left".
        if (pick.kind === 'none') {
          if (!lastError) observer?.unavailable(context.service, pick.reason);
          return sendGatewayError(context, lastError ?? pick.reason);
        }
        if (firstTried === undefined) firstTried = pick.address;
        else (laterTried ??= []).push(pick.address);
        context.outcome.attempts = attempt;
        context.outcome.upstream = pick.address;
        const transport = dependencies.transports.get(pick.instance, pick.address, policy.connection);
        let timeouts: AttemptTimeouts = policy;
        if (grpcDeadlineMs !== undefined) {
          timeouts = grpcTimeouts(context, policy, grpcDeadlineMs);
          if (timeouts.deadlineMs === 0) {
            pick.done({ ok: false, latencyMs: 0, errorClass: 'cancelled' });
            return sendGatewayError(context, 'headers-timeout');
          }
        }
        const span = context.trace?.attempt(attempt, pick.instance, pick.address, context.upstream.headers);
        const result = upgrade ? await transport.upgrade(context, pick, timeouts) : await transport.attempt(context, pick, timeouts, hasBody ? request : null);
        span?.end(result.ok ? context.outcome.status : 0, result.ok ? undefined : result.errorClass);
        // One classification feeds the per-instance counters, passive health (through `pick`) and the breaker.
        const attemptClass = result.ok ? (context.outcome.status >= 500 ? 'http-5xx' : undefined) : result.errorClass;
        observer?.attempt(context.service, pick.address, attemptClass);
        if (guard) {
          // The clock is read only when a breaker will use it.
          if (guard.record(guard.slot ? performance.now() : 0, attemptClass, context.outcome.status, admission === 2)) recorded = true;
          if (retrying) guard.retryEnded();
          retrying = false;
        }
        if (result.ok) return;
        lastError = result.errorClass;
        context.outcome.errorClass = result.errorClass;
        if (result.responseStarted) {
          // Part of the answer is already with the client: all that is left is to cut it off (a gRPC
          // call gets its status in trailers instead, which its client reads).
          if (grpcDeadlineMs !== undefined) endGrpcCall(context, STATUS_BY_CLASS[result.errorClass], result.errorClass, errorMessageOf(result.errorClass), result.error);
          else context.response.destroy(result.error);
          return;
        }
        const bodyConsumed = hasBody && request.readableDidRead;
        const condition = retryConditionOf(result.errorClass);
        const allowed = condition !== undefined && policy.retryOn.includes(condition) && isRetryable(result.errorClass, idempotent, bodyConsumed);
        // The guard is asked last: a retry it allows is taken from the budget.
        if (attempt > policy.retries || !allowed || context.response.destroyed || (guard !== undefined && !guard.mayRetry(performance.now()))) {
          return sendGatewayError(context, result.errorClass);
        }
        retrying = guard !== undefined;
        context.log.debug({ upstream: pick.address, errorClass: result.errorClass, attempt }, 'retrying on another instance');
      }
    } finally {
      if (guard) {
        if (retrying) guard.retryEnded();
        guard.leave(admission, recorded);
      }
    }
  }

  return (context) => proxy(context, context.route, 0);
}

/**
 * A retry's pick of an instance not tried yet, when the balancer offers one within
 * `DISTINCT_PICK_TRIES` picks, else the last repeat. `repeat` (a pick of a tried instance) and the
 * later repeats are held until the search ends, so that least-connections and p2c count them and
 * turn to the others (released at once, a repeat would win the next pick again); each further pick
 * carries `tried`, which balancers that would repeat themselves (least-connections, hashes, random
 * draws) skip. Only retries get
 * here, so the usual single attempt allocates nothing for it.
 */
function distinctPick(picker: Picker, base: PickContext, repeat: PickedEndpoint, firstTried: string, laterTried: readonly string[] | undefined): PickResult {
  const held: PickedEndpoint[] = [];
  const tried = laterTried ? [firstTried, ...laterTried] : [firstTried];
  let pick: PickResult = repeat;
  for (let again = 1; pick.kind === 'endpoint' && tried.includes(pick.address) && again < DISTINCT_PICK_TRIES; again += 1) {
    held.push(pick);
    pick = picker.pick({ ...base, tried });
  }
  // Released unused: `cancelled` frees the in-flight slot without feeding latency or health.
  for (const unused of held) unused.done({ ok: false, latencyMs: 0, errorClass: 'cancelled' });
  return pick;
}

/**
 * The timeouts of one attempt of a gRPC call with `deadlineMs` in total since the request arrived
 * (-1: the call has none): the policy's, each capped at what is left, with `deadlineMs` set to it
 * (0 when it has passed), and the remaining time written to the upstream `grpc-timeout`.
 */
function grpcTimeouts(context: GatewayContext, policy: AttemptTimeouts, deadlineMs: number): AttemptTimeouts {
  if (deadlineMs < 0) return policy;
  const left = Math.max(0, Math.floor(deadlineMs - (performance.now() - context.startedAt)));
  if (left === 0) return { ...policy, deadlineMs: 0 };
  context.upstream.headers['grpc-timeout'] = formatGrpcTimeout(left);
  const cap = (ms: number) => (ms > 0 ? Math.min(ms, left) : left);
  return { headersTimeoutMs: cap(policy.headersTimeoutMs), bodyTimeoutMs: cap(policy.bodyTimeoutMs), deadlineMs: left };
}

/** The proxy for `Upgrade` requests (WebSocket): the same attempt loop, each attempt a handshake. */
export function createUpgradeProxy(dependencies: ProxyDependencies): (context: GatewayContext) => Promise<void> {
  return createProxy(dependencies, 'upgrade');
}
