import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue } from '../../test/harness/prometheus-text.ts';
import { breakerStateGauge, STATE_VALUE } from '../policy/guard-metrics.ts';
import { aggregateMetrics, type ProcessMetrics } from './cluster-metrics.ts';

/** A process's registry: requests it counted, and a lag gauge averaged across processes (as prom-client's event-loop metrics are). */
async function processMetrics(requests: number, lag: number, instances?: number): Promise<ProcessMetrics> {
  const registry = new Registry();
  new Counter({ name: 'requests_total', help: 'h', registers: [registry] }).inc(requests);
  new Gauge({ name: 'lag_seconds', help: 'h', registers: [registry], aggregator: 'average' }).set(lag);
  const gauge = new Gauge({ name: 'instances', help: 'h', labelNames: ['service'], registers: [registry] });
  if (instances !== undefined) gauge.set({ service: 'user' }, instances);
  // Over IPC, the worker's JSON loses NaN to null.
  return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as ProcessMetrics;
}

describe('aggregateMetrics', () => {
  it("sums every process's counters, keeps a gauge only one process sets once, and gives valid text", async () => {
    const text = await aggregateMetrics([await processMetrics(0, 0.01, 2), await processMetrics(5, 0.01), await processMetrics(7, 0.03)]);
    const families = parsePrometheusText(text);
    expect(sampleValue(families, 'requests_total')).toBe(12);
    expect(sampleValue(families, 'instances', { service: 'user' })).toBe(2);
    expect(sampleValue(families, 'lag_seconds')).toBeCloseTo(0.05 / 3);
  });

  it('leaves out a NaN (null after IPC) so the average of the others stays a number', async () => {
    const idle = await processMetrics(0, Number.NaN);
    expect(idle.find((metric) => metric.name === 'lag_seconds')?.values[0]?.value).toBeNull();
    const text = await aggregateMetrics([await processMetrics(1, 0.02), idle]);
    expect(sampleValue(parsePrometheusText(text), 'lag_seconds')).toBeCloseTo(0.02);
  });

  it("shows the highest of the workers' breaker states, never their sum", async () => {
    const labels = { service: 'merge-test', route: '' };
    /** One process's breaker state as the real gauge reports it (with its aggregator), over IPC. */
    const worker = async (state: keyof typeof STATE_VALUE): Promise<ProcessMetrics> => {
      breakerStateGauge.set(labels, STATE_VALUE[state]);
      return JSON.parse(JSON.stringify([await breakerStateGauge.get()])) as ProcessMetrics;
    };
    try {
      const state = async (...states: (keyof typeof STATE_VALUE)[]) => {
        const processes = [];
        for (const one of states) processes.push(await worker(one));
        return sampleValue(parsePrometheusText(await aggregateMetrics(processes)), 'switchboard_circuit_breaker_state', labels);
      };
      expect(await state('open', 'open')).toBe(STATE_VALUE.open);
      expect(await state('closed', 'open', 'closed')).toBe(STATE_VALUE.open);
      expect(await state('open', 'half-open')).toBe(STATE_VALUE['half-open']);
      expect(await state('closed', 'closed', 'closed')).toBe(STATE_VALUE.closed);
    } finally {
      breakerStateGauge.remove(labels);
    }
  });
});
