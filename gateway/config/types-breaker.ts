import type { StatusRange } from '../../src/health/probe-http.ts';

/** What an open breaker answers in the service's place. */
export type BreakerFallback =
  /** A 503 `circuit-open` with the reason (the default). */
  | { readonly kind: 'error' }
  /** A fixed answer. */
  | { readonly kind: 'static'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly body: string }
  /** The request goes to another service (under that service's own breaker and limits). */
  | { readonly kind: 'service'; readonly service: string };

/** The numbers a breaker trips and recovers by (Hystrix's names; durations in milliseconds). */
export interface BreakerThresholds {
  /** Length of the rolling window the error percentage is measured over. */
  readonly windowMs: number;
  readonly buckets: number;
  /** Calls the window must hold before the error percentage can trip the breaker. */
  readonly requestVolumeThreshold: number;
  /** Failures, in percent of the window's calls, at or above which the breaker opens. */
  readonly errorPercentThreshold: number;
  /** How long the breaker stays open before it lets trial calls through. */
  readonly sleepWindowMs: number;
  /** Trial calls let through when half-open; all must succeed to close. */
  readonly halfOpenRequests: number;
}

/** A Hystrix circuit breaker of a service or a route, every default applied; durations in milliseconds. */
export interface CircuitBreakerSettings extends BreakerThresholds {
  /** Calls in flight through this breaker at once (Hystrix's semaphore); undefined: unlimited. */
  readonly maxConcurrentRequests: number | undefined;
  /** Per-call (per-attempt) limit on waiting for the response headers; undefined: the service's timeouts. */
  readonly timeoutMs: number | undefined;
  /** Answers that count as failures, besides the upstream errors of the one classification. */
  readonly failureStatuses: readonly (number | StatusRange)[];
  readonly fallback: BreakerFallback;
}

/** Envoy's per-service thresholds; undefined: unlimited. */
export interface ConcurrencyLimits {
  /** Connections per instance (the HTTP/1.1 pool's size); requests beyond wait in the pool. */
  readonly maxConnections: number | undefined;
  /** Requests that may wait for a `maxRequests` slot; beyond, a 503 at once. */
  readonly maxPendingRequests: number;
  /** Requests of the service in flight at once. */
  readonly maxRequests: number | undefined;
  /** Retries of the service in flight at once. */
  readonly maxActiveRetries: number | undefined;
}

/** Finagle's retry budget: retries in the window ≤ `percent` % of the window's requests + `minRetriesPerSecond` × its seconds. */
export interface RetryBudgetSettings {
  readonly percent: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
}
