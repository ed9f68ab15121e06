import type { Registry } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';

/**
 * A sample line whose value is not a number. prom-client writes NaN as `Nan`, which the
 * exposition format does not know, so strict scrapers refuse the whole page; its event-loop-lag
 * gauges are NaN until their first sample (and after a reset with none since).
 */
const NOT_A_NUMBER_SAMPLE = /^[^#\n][^\n]* Nan(?:\n|$)/gm;

/**
 * The Prometheus text of `registry` (the gateway's by default), valid from the first scrape: a
 * sample whose value is not yet known is left out rather than written as `Nan`, the rule the
 * merged metrics of `workers: N` follow too (see `aggregateMetrics`).
 */
export async function metricsText(registry: Registry = metricsRegistry): Promise<string> {
  return (await registry.metrics()).replace(NOT_A_NUMBER_SAMPLE, '');
}
