import { Counter } from 'prom-client';
import { metricsRegistry } from '../../../src/metrics.ts';

/** Faults a `fault` middleware injected, per middleware and fault (`delay`, `abort`). */
export const faultsInjectedTotal = new Counter({
  name: 'switchboard_faults_injected_total',
  help: 'Faults a fault middleware injected, by middleware and fault (delay, abort).',
  labelNames: ['middleware', 'fault'] as const,
  registers: [metricsRegistry],
});

/** Requests a `fault` middleware chose for a fault but let through untouched because `maxActive` faults were under way (Envoy's faults_overflow). */
export const faultsOverflowTotal = new Counter({
  name: 'switchboard_faults_overflow_total',
  help: 'Requests a fault middleware chose for a fault but passed untouched because maxActive faults were under way.',
  labelNames: ['middleware'] as const,
  registers: [metricsRegistry],
});

/** The counters of one `fault` middleware, labelled once when it is built so a request pays an increment only. */
export interface FaultCounters {
  readonly delay: { inc(): void };
  readonly abort: { inc(): void };
  readonly overflow: { inc(): void };
}

/** The counters of the `fault` middleware declared as `middleware`. */
export function faultCounters(middleware: string): FaultCounters {
  return {
    delay: faultsInjectedTotal.labels({ middleware, fault: 'delay' }),
    abort: faultsInjectedTotal.labels({ middleware, fault: 'abort' }),
    overflow: faultsOverflowTotal.labels({ middleware }),
  };
}
