import type { CircuitBreakerInput, ConcurrencyInput, RetryBudgetInput } from './schema-breaker.ts';
import type { CircuitBreakerSettings, ConcurrencyLimits, RetryBudgetSettings } from './types-breaker.ts';

/** Hystrix's defaults: a 10 s window of 10 buckets, 20 calls, 50 % errors, 5 s asleep; one trial call; 5xx answers fail. */
export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerSettings = {
  windowMs: 10_000,
  buckets: 10,
  requestVolumeThreshold: 20,
  errorPercentThreshold: 50,
  sleepWindowMs: 5_000,
  halfOpenRequests: 1,
  maxConcurrentRequests: undefined,
  timeoutMs: undefined,
  failureStatuses: [{ from: 500, to: 599 }],
  fallback: { kind: 'error' },
};

/** No caps: a service is limited only when it sets them. */
export const DEFAULT_CONCURRENCY: ConcurrencyLimits = { maxConnections: undefined, maxPendingRequests: 0, maxRequests: undefined, maxActiveRetries: undefined };

/** Finagle's defaults: 20 % of the last 10 s of requests, plus 10 retries a second as a floor for quiet services. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetSettings = { percent: 20, minRetriesPerSecond: 10, windowMs: 10_000 };

/** A breaker layer over `base` (the inherited breaker, or Hystrix's defaults when none is on). */
export function mergeCircuitBreaker(base: CircuitBreakerSettings | false, layer: CircuitBreakerInput | undefined): CircuitBreakerSettings | false {
  if (layer === undefined) return base;
  if (layer === false) return false;
  const start = base || DEFAULT_CIRCUIT_BREAKER;
  const fallback = layer.fallback;
  return {
    windowMs: layer.window ?? start.windowMs,
    buckets: layer.buckets ?? start.buckets,
    requestVolumeThreshold: layer.requestVolumeThreshold ?? start.requestVolumeThreshold,
    errorPercentThreshold: layer.errorPercentThreshold ?? start.errorPercentThreshold,
    sleepWindowMs: layer.sleepWindow ?? start.sleepWindowMs,
    halfOpenRequests: layer.halfOpenRequests ?? start.halfOpenRequests,
    maxConcurrentRequests: layer.maxConcurrentRequests ?? start.maxConcurrentRequests,
    timeoutMs: layer.timeout ?? start.timeoutMs,
    failureStatuses: layer.failureStatuses ?? start.failureStatuses,
    fallback:
      fallback === undefined
        ? start.fallback
        : 'service' in fallback
          ? { kind: 'service', service: fallback.service }
          : { kind: 'static', status: fallback.status, headers: fallback.headers ?? {}, body: fallback.body ?? '' },
  };
}

/**
 * A route's own breaker (undefined: none, the service's applies): its keys over the breaker of the
 * service it routes to, or over Hystrix's defaults when that service has none; `false` turns
 * breaking off on the route. The route keeps a state of its own either way.
 */
export function routeCircuitBreaker(serviceBreaker: CircuitBreakerSettings | false, layer: CircuitBreakerInput | undefined): CircuitBreakerSettings | false | undefined {
  return layer === undefined ? undefined : mergeCircuitBreaker(serviceBreaker, layer);
}

/** Caps of a layer over `base`, key by key. */
export function mergeConcurrency(base: ConcurrencyLimits, layer: ConcurrencyInput | undefined): ConcurrencyLimits {
  if (!layer) return base;
  return {
    maxConnections: layer.maxConnections ?? base.maxConnections,
    maxPendingRequests: layer.maxPendingRequests ?? base.maxPendingRequests,
    maxRequests: layer.maxRequests ?? base.maxRequests,
    maxActiveRetries: layer.maxActiveRetries ?? base.maxActiveRetries,
  };
}

/** A retry budget layer over `base`. */
export function mergeRetryBudget(base: RetryBudgetSettings | false, layer: RetryBudgetInput | undefined): RetryBudgetSettings | false {
  if (layer === undefined) return base;
  if (layer === false) return false;
  const start = base || DEFAULT_RETRY_BUDGET;
  return { percent: layer.percent ?? start.percent, minRetriesPerSecond: layer.minRetriesPerSecond ?? start.minRetriesPerSecond, windowMs: layer.window ?? start.windowMs };
}
