import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CellCounter, CellHistogram, HistogramCell } from './metric-cells.ts';

describe('HistogramCell', () => {
  it('counts each observation in the first bucket whose bound it does not exceed, the rest in +Inf', () => {
    const cell = new HistogramCell([0.1, 1]);
    for (const value of [0.05, 0.1, 0.5, 1, 2, 3]) cell.observe(value);
    expect([...cell.counts]).toEqual([2, 2, 2]);
    expect(cell.count).toBe(6);
    expect(cell.sum).toBeCloseTo(6.65);
  });
});

describe('cell metrics in a prom-client registry', () => {
  it('exposes counter cells as one series per label set, the same cell for the same labels', async () => {
    const registry = new Registry();
    const counter = new CellCounter<'route' | 'status'>('test_requests_total', 'Requests.', ['route', 'status'], registry);
    counter.cell({ route: 'a', status: '2xx' }).value += 3;
    counter.cell({ route: 'a', status: '2xx' }).value += 1;
    counter.cell({ route: 'b', status: '5xx' }).value += 1;
    expect(await registry.metrics()).toBe(
      '# HELP test_requests_total Requests.\n# TYPE test_requests_total counter\ntest_requests_total{route="a",status="2xx"} 4\ntest_requests_total{route="b",status="5xx"} 1\n',
    );
  });

  it('exposes histogram cells with cumulative buckets, +Inf, sum and count', async () => {
    const registry = new Registry();
    const histogram = new CellHistogram<'route'>('test_seconds', 'Time.', ['route'], registry, [0.1, 1]);
    const cell = histogram.cell({ route: 'a' });
    for (const value of [0.05, 0.5, 2]) cell.observe(value);
    expect(await registry.metrics()).toBe(
      [
        '# HELP test_seconds Time.',
        '# TYPE test_seconds histogram',
        'test_seconds_bucket{route="a",le="0.1"} 1',
        'test_seconds_bucket{route="a",le="1"} 2',
        'test_seconds_bucket{route="a",le="+Inf"} 3',
        'test_seconds_sum{route="a"} 2.55',
        'test_seconds_count{route="a"} 3',
        '',
      ].join('\n'),
    );
  });

  it('refuses a second metric of the same name in one registry, as prom-client does', () => {
    const registry = new Registry();
    new CellCounter('test_total', 'x', [], registry);
    expect(() => new CellCounter('test_total', 'x', [], registry)).toThrow(/already been registered/);
  });

  it('drops every series on reset', async () => {
    const registry = new Registry();
    const counter = new CellCounter<'a'>('test_total', 'x', ['a'], registry);
    counter.cell({ a: '1' }).value = 5;
    registry.resetMetrics();
    expect(await registry.metrics()).toBe('# HELP test_total x\n# TYPE test_total counter\n');
  });
});
