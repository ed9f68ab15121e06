import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

/** Active health checks run, by service and result (`pass`, `fail`). */
export const healthChecksTotal = new Counter({
  name: 'switchboard_health_checks_total',
  help: 'Active health checks run, by result.',
  labelNames: ['service', 'result'] as const,
  registers: [metricsRegistry],
});

/** Endpoints whose active health flipped, by the state entered (`healthy`, `unhealthy`). */
export const healthTransitionsTotal = new Counter({
  name: 'switchboard_health_transitions_total',
  help: 'Endpoints whose active health flipped, by the state entered.',
  labelNames: ['service', 'state'] as const,
  registers: [metricsRegistry],
});

/** Endpoints ejected by passive outlier detection. */
export const outlierEjectionsTotal = new Counter({
  name: 'switchboard_outlier_ejections_total',
  help: 'Endpoints ejected by passive outlier detection.',
  labelNames: ['service'] as const,
  registers: [metricsRegistry],
});

/** Ejections skipped because the service was at its maximum ejected share. */
export const outlierEjectionsSkippedTotal = new Counter({
  name: 'switchboard_outlier_ejections_skipped_total',
  help: 'Ejections skipped because the service was at its maximum ejected share.',
  labelNames: ['service'] as const,
  registers: [metricsRegistry],
});

/** 1 while a service routes to all endpoints because too few are healthy. */
export const healthPanic = new Gauge({
  name: 'switchboard_health_panic',
  help: '1 while a service routes to all endpoints because the healthy share is below the panic threshold.',
  labelNames: ['service'] as const,
  registers: [metricsRegistry],
});
