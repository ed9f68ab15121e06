import { Gauge } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

/** Instances kept routable because their removal right after a registry outage took most of their service. */
export const protectedInstances = new Gauge({
  name: 'switchboard_registry_protected_instances',
  help: 'Instances kept routable because their removal right after a registry outage took most of their service (removal protection).',
  labelNames: ['service'] as const,
  registers: [metricsRegistry],
});
