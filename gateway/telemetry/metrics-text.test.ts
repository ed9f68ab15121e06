import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../test/harness/prometheus-text.ts';
import { metricsText } from './metrics-text.ts';

describe('metricsText', () => {
  it('leaves out samples that are not a number, so a strict parser reads the page, and keeps every other sample', async () => {
    const registry = new Registry();
    const lag = new Gauge({ name: 'lag_seconds', help: 'Lag.', registers: [registry] });
    const byWorker = new Gauge({ name: 'by_worker', help: 'Per worker.', labelNames: ['worker'] as const, registers: [registry] });
    const after = new Gauge({ name: 'after', help: 'After.', registers: [registry] });
    lag.set(Number.NaN);
    byWorker.set({ worker: 'Nan' }, 2);
    byWorker.set({ worker: 'b' }, Number.NaN);
    after.set(0.5);
    // What prom-client writes by itself: the page a strict parser refuses.
    const raw = await registry.metrics();
    expect(() => parsePrometheusText(raw)).toThrow(/not a number/);
    const families = parsePrometheusText(await metricsText(registry));
    expect(families.get('lag_seconds')?.samples).toEqual([]);
    expect(families.get('by_worker')?.samples.map((sample) => [sample.labels, sample.value])).toEqual([[{ worker: 'Nan' }, 2]]);
    expect(families.get('after')?.samples.map((sample) => sample.value)).toEqual([0.5]);
  });
});
