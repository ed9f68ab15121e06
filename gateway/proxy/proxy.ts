import type { Picker } from '../../src/balance/picker.ts';
import type { RouteConfig } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import { endAnsweredByListener, recordClientGone, whileClientStays } from '../middleware/client-gone.ts';
import { answerRefusal } from '../policy/refusal-answer.ts';
import { MUST_WAIT, REFUSED_MAX_REQUESTS, type RequestGuard } from '../policy/service-guard.ts';
import type { UpstreamTransports } from '../transports/index.ts';
import { noInstancesMessage, sendErrorAnswer, sendGatewayError } from './error-response.ts';
import { isGrpcRequest, parseGrpcTimeout } from './grpc-status.ts';
import { AttemptLoop, type AttemptLoopShared, type AttemptObserver, type ProxyPolicy } from './proxy-attempts.ts';

export type { AttemptObserver, ProxyPolicy } from './proxy-attempts.ts';

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
  /** The registries not yet connected while none has given `service` an instance set (`noInstancesMessage`); none when absent. */
  unconnectedRegistriesOf?(service: string): readonly string[];
}

/** A route's guard and policy for the service its requests went to last, kept on the route's slot. */
interface RouteSlot {
  readonly service: string;
  readonly guard: RequestGuard | undefined;
  readonly policy: ProxyPolicy;
}

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

  const noInstances = (service: string) => noInstancesMessage(dependencies.unconnectedRegistriesOf?.(service) ?? []);
  const shared: AttemptLoopShared = { upgrade, transports: dependencies.transports, observer: dependencies.observer, pickerFor: (service, route) => dependencies.pickerFor(service, route), noInstancesMessage: noInstances };

  // Admission by the service's breaker and caps without a promise of its own (one only while
  // queued behind `maxRequests`), then the attempt loop, which releases the guard.
  function proxy(context: GatewayContext, route: RouteConfig | undefined, fallbackDepth: number): Promise<void> {
    const picker = dependencies.pickerFor(context.service, route);
    if (!picker) {
      dependencies.observer?.unavailable(context.service, 'no-instances');
      sendGatewayError(context, 'no-instances', noInstances(context.service));
      return DONE;
    }
    // The slot only for a request's own route: a fallback hop (no route) asks directly.
    const slot = route !== undefined && route === context.route ? slotOf(context, route) : undefined;
    const guard = slot ? slot.guard : guards?.guardFor(context.service, route);
    let admission = 1;
    if (guard) {
      // The arrival, not the clock, unless an open breaker's sleep window decides: a request held in
      // middleware (a fault's delay, forwardAuth, a Redis rate limit) would find the breaker still
      // open, its sleep window over since, and be refused instead of being its trial.
      admission = guard.enter(guard.needsClock ? performance.now() : context.startedAt);
      if (admission === MUST_WAIT) return queued(context, route, picker, slot, guard, fallbackDepth);
      if (admission < 0) return refused(context, admission, guard, fallbackDepth);
    }
    return attempts(context, route, picker, guard, admission, slot ? slot.policy : dependencies.policyFor(context));
  }

  /** Queued behind `maxRequests`: bounded by the connect timeout, as Envoy bounds its pending requests. */
  async function queued(context: GatewayContext, route: RouteConfig | undefined, picker: Picker, slot: RouteSlot | undefined, guard: RequestGuard, fallbackDepth: number): Promise<void> {
    const policy = slot ? slot.policy : dependencies.policyFor(context);
    // A client that leaves ends its wait: 499, nothing counted, no slot kept.
    const watched = await whileClientStays(context, (left) => guard.waitForSlot(policy.connection.connectTimeoutMs || 1_000, left.signal));
    if (watched === undefined) return recordClientGone(context);
    let admission = watched.result ? guard.enter(performance.now()) : REFUSED_MAX_REQUESTS;
    if (watched.clientGone) {
      // Gone just as the slot was handed over: it goes on to the next in line.
      if (admission > 0) guard.leave(admission, false);
      return recordClientGone(context);
    }
    // Its listener answered in its place meanwhile (a body that missed `limits.requestTimeout` while
    // the wait held it unread): that answer is the request's; the slot goes on, nothing upstream.
    if (endAnsweredByListener(context)) {
      if (admission > 0) guard.leave(admission, false);
      return;
    }
    if (admission === MUST_WAIT) admission = REFUSED_MAX_REQUESTS;
    if (admission < 0) return refused(context, admission, guard, fallbackDepth);
    // The host set may have changed during the wait: the first pick too is made from the one in force now.
    return attempts(context, route, dependencies.pickerFor(context.service, route) ?? picker, guard, admission, policy);
  }

  function refused(context: GatewayContext, admission: number, guard: RequestGuard, fallbackDepth: number): Promise<void> {
    const other = answerRefusal(context, admission, guard);
    if (other === undefined) return DONE;
    // The fallback service under its own guard, once: its own open breaker answers 503, never another hop.
    context.service = other;
    if (fallbackDepth > 0) {
      sendErrorAnswer(context, 503, 'circuit-open', 'the circuit breaker of the fallback service is open too', { 'retry-after': '1' });
      return DONE;
    }
    return proxy(context, undefined, fallbackDepth + 1);
  }

  function attempts(context: GatewayContext, route: RouteConfig | undefined, picker: Picker, guard: RequestGuard | undefined, admission: number, policy: ProxyPolicy): Promise<void> {
    return new Promise<void>((resolve, reject) => new AttemptLoop(shared, context, route, picker, guard, admission, policy, resolve, reject).next());
  }

  return (context) => {
    if (!upgrade && malformedGrpcTimeout(context)) {
      // grpc-go and grpc-js fail such a call with INTERNAL, which would count against the instance
      // as a 500 (passive health, breakers): the caller's mistake is answered here, blaming no one.
      sendErrorAnswer(context, 400, 'bad-request', `malformed grpc-timeout ${JSON.stringify(context.request.headers['grpc-timeout'])}: expected 1 to 8 digits and a unit (H, M, S, m, u, n)`);
      return DONE;
    }
    return proxy(context, context.route, 0);
  };
}

/** True for a gRPC call that carries a `grpc-timeout` the spec's grammar does not read (gRPC over HTTP/2: `TimeoutValue TimeoutUnit`). */
function malformedGrpcTimeout(context: GatewayContext): boolean {
  const headers = context.request.headers;
  return headers['grpc-timeout'] !== undefined && isGrpcRequest(headers) && parseGrpcTimeout(headers['grpc-timeout']) === undefined;
}

/** The answer of a request finished without an attempt. */
const DONE: Promise<void> = Promise.resolve();

/** The proxy for `Upgrade` requests (WebSocket): the same attempt loop, each attempt a handshake. */
export function createUpgradeProxy(dependencies: ProxyDependencies): (context: GatewayContext) => Promise<void> {
  return createProxy(dependencies, 'upgrade');
}
