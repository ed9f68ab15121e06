import type { Picker } from '../../src/balance/picker.ts';
import { retryConditionOf, type RetryCondition, type RouteConfig } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptTimeouts, TransportSettings, UpstreamTransports } from '../transports/index.ts';
import { sendGatewayError } from './error-response.ts';
import { isIdempotent, isRetryable, type GatewayErrorClass } from './upstream-error.ts';

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
  /** The retry and timeout policy for this request. */
  policyFor(context: GatewayContext): ProxyPolicy;
  /** The transport per instance protocol, address and connection settings. */
  transports: UpstreamTransports;
  /** Per-instance counters and upstream error metrics. */
  observer?: AttemptObserver;
}

/** Attempts to find an instance not tried yet before accepting a repeat. */
const DISTINCT_PICK_TRIES = 3;

/**
 * The centre of the onion: picks an instance, sends the request through the transport of the
 * instance's protocol, streams the answer, and on a retryable failure tries another instance within
 * the policy's budget. Failures the client must see become a JSON answer with the mapped status
 * (503 none, 502 refused/reset/TLS, 504 timeout). With `upgrade`, each attempt is a WebSocket
 * handshake instead (`context.response` is then a ServerResponse on the client socket).
 */
export function createProxy(dependencies: ProxyDependencies, mode: 'request' | 'upgrade' = 'request'): (context: GatewayContext) => Promise<void> {
  const upgrade = mode === 'upgrade';
  return async function proxy(context) {
    const picker = dependencies.pickerFor(context.service, context.route);
    const observer = dependencies.observer;
    if (!picker) {
      observer?.unavailable(context.service, 'no-instances');
      return sendGatewayError(context, 'no-instances');
    }
    const policy = dependencies.policyFor(context);
    const { request } = context;
    const hasBody = upgrade ? false : request.headers['content-length'] !== undefined ? request.headers['content-length'] !== '0' : request.headers['transfer-encoding'] !== undefined;
    const idempotent = isIdempotent(context.upstream.method);
    const pickContext = { clientIp: context.clientIp, url: context.upstream.path, headers: request.headers };
    // Addresses tried so far; most requests make one attempt, so no collection until a second.
    let firstTried: string | undefined;
    let laterTried: string[] | undefined;
    let lastError: GatewayErrorClass | undefined;

    for (let attempt = 1; ; attempt += 1) {
      let pick = picker.pick(pickContext);
      for (let again = 1; pick.kind === 'endpoint' && (pick.address === firstTried || laterTried?.includes(pick.address) === true) && again < DISTINCT_PICK_TRIES; again += 1) {
        // Released unused: `cancelled` frees the in-flight slot without feeding latency or health.
        pick.done({ ok: false, latencyMs: 0, errorClass: 'cancelled' });
        pick = picker.pick(pickContext);
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
      const span = context.trace?.attempt(attempt, pick.instance, pick.address, context.upstream.headers);
      const result = upgrade ? await transport.upgrade(context, pick, policy) : await transport.attempt(context, pick, policy, hasBody ? request : null);
      span?.end(result.ok ? context.outcome.status : 0, result.ok ? undefined : result.errorClass);
      observer?.attempt(context.service, pick.address, result.ok ? (context.outcome.status >= 500 ? 'http-5xx' : undefined) : result.errorClass);
      if (result.ok) return;
      lastError = result.errorClass;
      context.outcome.errorClass = result.errorClass;
      if (result.responseStarted) {
        // Part of the answer is already with the client: all that is left is to cut it off.
        context.response.destroy(result.error);
        return;
      }
      const bodyConsumed = hasBody && request.readableDidRead;
      const condition = retryConditionOf(result.errorClass);
      const allowed = condition !== undefined && policy.retryOn.includes(condition) && isRetryable(result.errorClass, idempotent, bodyConsumed);
      if (attempt > policy.retries || !allowed || context.response.destroyed) {
        return sendGatewayError(context, result.errorClass);
      }
      context.log.debug({ upstream: pick.address, errorClass: result.errorClass, attempt }, 'retrying on another instance');
    }
  };
}

/** The proxy for `Upgrade` requests (WebSocket): the same attempt loop, each attempt a handshake. */
export function createUpgradeProxy(dependencies: ProxyDependencies): (context: GatewayContext) => Promise<void> {
  return createProxy(dependencies, 'upgrade');
}
