import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';

/**
 * 0 closed, 1 open, 2 half-open, per service and route (`route=""` for a service's own breaker).
 * Each worker has its own breakers; a sum of states means nothing, so the merged `/metrics` of
 * `workers: N` shows the highest (any value above 0: some worker's breaker is not closed).
 */
export const breakerStateGauge = new Gauge({
  name: 'switchboard_circuit_breaker_state',
  help: 'State of each circuit breaker: 0 closed, 1 open, 2 half-open (route="" is the service breaker; with workers, the highest over workers).',
  labelNames: ['service', 'route'] as const,
  registers: [metricsRegistry],
  aggregator: 'max',
});

/** Breaker state changes, by the state entered. */
export const breakerTransitionsTotal = new Counter({
  name: 'switchboard_circuit_breaker_transitions_total',
  help: 'Circuit breaker state changes, by service, route and the state entered (open, half-open, closed).',
  labelNames: ['service', 'route', 'to'] as const,
  registers: [metricsRegistry],
});

/** Requests the gateway refused before any upstream attempt: `circuit-open`, `max-concurrent` (the breaker's), `max-requests`, `max-pending`. */
export const trafficRejectionsTotal = new Counter({
  name: 'switchboard_traffic_rejections_total',
  help: 'Requests refused by a circuit breaker or a concurrency cap before any upstream attempt, by service and reason (circuit-open, max-concurrent, max-requests, max-pending).',
  labelNames: ['service', 'reason'] as const,
  registers: [metricsRegistry],
});

/** Retries not made because the retry budget or `maxActiveRetries` had none left. */
export const retryBudgetExhaustedTotal = new Counter({
  name: 'switchboard_retry_budget_exhausted_total',
  help: 'Retries not made because the retry budget (or maxActiveRetries) was exhausted, by service and reason (budget, max-active-retries, circuit-open).',
  labelNames: ['service', 'reason'] as const,
  registers: [metricsRegistry],
});

/** The gauge value of a state. */
export const STATE_VALUE = { closed: 0, open: 1, 'half-open': 2 } as const;
