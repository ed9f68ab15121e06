import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CellCounter, CellHistogram } from './metric-cells.ts';
import { forgetServiceSeries } from './service-series.ts';

describe('forgetServiceSeries', () => {
  it('removes every series labelled with the service, of prom-client and cell metrics alike, and keeps the others', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 't_checks_total', help: 'h', labelNames: ['service', 'result'], registers: [registry] });
    const gauge = new Gauge({ name: 't_instances', help: 'h', labelNames: ['service', 'state'], registers: [registry] });
    const histogram = new Histogram({ name: 't_seconds', help: 'h', labelNames: ['service'], buckets: [0.1, 1], registers: [registry] });
    const unlabelled = new Counter({ name: 't_reloads_total', help: 'h', labelNames: ['result'], registers: [registry] });
    const cells = new CellCounter<'route' | 'service'>('t_requests_total', 'h', ['route', 'service'], registry);
    const cellHistogram = new CellHistogram<'service'>('t_duration_seconds', 'h', ['service'], registry, [0.1]);
    for (const service of ['canary-7', 'web']) {
      counter.inc({ service, result: 'pass' });
      counter.inc({ service, result: 'fail' });
      gauge.set({ service, state: 'total' }, 2);
      histogram.observe({ service }, 0.5);
      cells.cell({ route: 'r', service }).value += 1;
      cellHistogram.cell({ service }).observe(0.05);
    }
    unlabelled.inc({ result: 'applied' });

    await forgetServiceSeries('canary-7', registry);

    const text = await registry.metrics();
    expect(text).not.toContain('canary-7');
    expect(text.match(/service="web"/g)?.length).toBe(2 + 1 + (3 + 2) + 1 + (2 + 2));
    expect(text).toContain('t_reloads_total{result="applied"} 1');
  });
});

describe('forgetServiceSeries and a request meanwhile', () => {
  it('removes the cell series before it returns, so cells made right after (a request of the name, listed again) are reported', async () => {
    const registry = new Registry();
    // A prom-client metric first: reading its series is asynchronous.
    new Counter({ name: 'u_checks_total', help: 'h', labelNames: ['service'], registers: [registry] }).inc({ service: 'canary-8' });
    const cells = new CellCounter<'service'>('u_requests_total', 'h', ['service'], registry);
    cells.cell({ service: 'canary-8' }).value += 1;

    const sweep = forgetServiceSeries('canary-8', registry);
    cells.cell({ service: 'canary-8' }).value += 1;
    await sweep;

    expect(await registry.metrics()).toContain('u_requests_total{service="canary-8"} 1');
    expect(await registry.metrics()).not.toContain('u_checks_total{service="canary-8"}');
  });
});
