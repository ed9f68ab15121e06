import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue } from '../../test/harness/prometheus-text.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { breakerStateGauge, STATE_VALUE } from '../policy/guard-metrics.ts';
import { aggregateMetrics, RetiredWorkerMetrics, type ProcessMetrics } from './cluster-metrics.ts';

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

describe('RetiredWorkerMetrics', () => {
  /** A worker's counter, histogram and gauge, over IPC. */
  async function workerMetrics(requests: number, inFlight: number): Promise<ProcessMetrics> {
    const registry = new Registry();
    new Counter({ name: 'requests_total', help: 'h', labelNames: ['status'], registers: [registry] }).inc({ status: '2xx' }, requests);
    const histogram = new Histogram({ name: 'duration_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
    for (let index = 0; index < requests; index += 1) histogram.observe(0.05);
    new Gauge({ name: 'in_flight', help: 'h', registers: [registry] }).set(inFlight);
    return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as ProcessMetrics;
  }

  it("keeps a replaced worker's counters and histograms in the sum, so no counter goes back, but not its gauges", async () => {
    const retired = new RetiredWorkerMetrics();
    const scrape = async (...workers: ProcessMetrics[]) => parsePrometheusText(await aggregateMetrics([...workers, retired.metrics()]));
    const [zero, one] = [await workerMetrics(30, 4), await workerMetrics(10, 1)];
    retired.answered(0, zero);
    retired.answered(1, one);
    expect(sampleValue(await scrape(zero, one), 'requests_total', { status: '2xx' })).toBe(40);

    // Slot 0's worker crashed; its replacement starts from zero.
    retired.exited(0);
    const replacement = await workerMetrics(2, 0);
    retired.answered(0, replacement);
    const after = await scrape(replacement, one);
    expect(sampleValue(after, 'requests_total', { status: '2xx' })).toBe(42);
    expect(sampleValue(after, 'duration_seconds_count')).toBe(42);
    expect(sampleValue(after, 'duration_seconds_bucket', { le: '0.1' })).toBe(42);
    expect(sampleValue(after, 'in_flight')).toBe(1);

    // A second exit folds into the same sum; a slot that never answered adds nothing.
    retired.exited(0);
    retired.exited(1);
    retired.exited(1);
    expect(sampleValue(await scrape(), 'requests_total', { status: '2xx' })).toBe(42);
  });

  it('counts a worker that answers a scrape and exits before it ends once, so the next scrape reads no less', async () => {
    const retired = new RetiredWorkerMetrics();
    const answer = (slot: number, metrics: ProcessMetrics) => {
      retired.answered(slot, metrics);
      return { slot, generation: retired.generation(slot), metrics };
    };
    const total = async (answers: Parameters<RetiredWorkerMetrics['scrape']>[0]) => sampleValue(parsePrometheusText(await aggregateMetrics(retired.scrape(answers, []))), 'requests_total', { status: '2xx' });
    // One scrape: slot 0 answers, then exits while slot 1's answer is awaited.
    const zero = answer(0, await workerMetrics(30, 0));
    retired.exited(0);
    const one = answer(1, await workerMetrics(10, 0));
    expect(await total([zero, one])).toBe(40);
    // The next scrape: slot 0's replacement has counted nothing yet.
    expect(await total([answer(0, await workerMetrics(0, 0)), answer(1, await workerMetrics(10, 0))])).toBe(40);
  });

  it("keeps the counters and histograms of a worker that does not answer a scrape as its last answer gave them, so no counter goes back", async () => {
    const retired = new RetiredWorkerMetrics();
    const answer = (slot: number, metrics: ProcessMetrics) => {
      retired.answered(slot, metrics);
      return { slot, generation: retired.generation(slot), metrics };
    };
    // Both slots are asked each time; the primary's gauge, in its own registry, says how many did not answer.
    const asked = () => [0, 1].map((slot) => ({ slot, generation: retired.generation(slot) }));
    const scrape = async (answers: Parameters<RetiredWorkerMetrics['scrape']>[0], workers = asked()) => {
      const summed = retired.scrape(answers, workers);
      return parsePrometheusText(await aggregateMetrics([await metricsRegistry.getMetricsAsJSON(), ...summed]));
    };
    const first = await scrape([answer(0, await workerMetrics(30, 4)), answer(1, await workerMetrics(10, 1))]);
    expect([sampleValue(first, 'requests_total', { status: '2xx' }), sampleValue(first, 'switchboard_workers_not_answering')]).toEqual([40, 0]);
    // Slot 0's worker is stopped (a stuck event loop, before the watchdog kills it): only slot 1 answers.
    const silent = await scrape([answer(1, await workerMetrics(12, 1))]);
    expect(sampleValue(silent, 'requests_total', { status: '2xx' })).toBe(42);
    expect(sampleValue(silent, 'duration_seconds_count')).toBe(42);
    // Its gauges are not vouched for by an old answer: only the worker that answered sets one, and the sum says one is missing.
    expect(sampleValue(silent, 'in_flight')).toBe(1);
    expect(sampleValue(silent, 'switchboard_workers_not_answering')).toBe(1);
    // It answers again, or exits: counted once either way.
    const back = await scrape([answer(0, await workerMetrics(31, 0)), answer(1, await workerMetrics(12, 1))]);
    expect([sampleValue(back, 'requests_total', { status: '2xx' }), sampleValue(back, 'switchboard_workers_not_answering')]).toEqual([43, 0]);
    // Asked, then exited before the scrape ended: gone (its exit is counted elsewhere), not silent.
    const before = asked();
    retired.exited(0);
    const gone = await scrape([answer(1, await workerMetrics(12, 1))], before);
    expect([sampleValue(gone, 'requests_total', { status: '2xx' }), sampleValue(gone, 'switchboard_workers_not_answering')]).toEqual([43, 0]);
  });

  it('counts a worker silent for several scrapes and then replaced once, beside a replacement that has not answered yet and then does', async () => {
    const retired = new RetiredWorkerMetrics();
    const answer = (slot: number, metrics: ProcessMetrics) => {
      retired.answered(slot, metrics);
      return { slot, generation: retired.generation(slot), metrics };
    };
    const totals = async (answers: Parameters<RetiredWorkerMetrics['scrape']>[0]) => {
      const samples = parsePrometheusText(await aggregateMetrics(retired.scrape(answers, [])));
      return [sampleValue(samples, 'requests_total', { status: '2xx' }), sampleValue(samples, 'duration_seconds_bucket', { le: '0.1' })];
    };
    expect(await totals([answer(0, await workerMetrics(30, 4)), answer(1, await workerMetrics(10, 1))])).toEqual([40, 40]);
    // Slot 0's worker stops answering for three scrapes, then the watchdog kills it.
    for (const served of [11, 12, 13]) expect(await totals([answer(1, await workerMetrics(served, 1))])).toEqual([30 + served, 30 + served]);
    retired.exited(0);
    // Its replacement, not asked yet (still loading), or asked and too slow: its predecessor once, itself not yet.
    expect(await totals([answer(1, await workerMetrics(13, 1))])).toEqual([43, 43]);
    expect(await totals([answer(1, await workerMetrics(14, 1))])).toEqual([44, 44]);
    expect(await totals([answer(0, await workerMetrics(2, 0)), answer(1, await workerMetrics(14, 1))])).toEqual([46, 46]);
    // It then misses one: its own last answer, beside its predecessor's.
    expect(await totals([answer(1, await workerMetrics(15, 1))])).toEqual([47, 47]);
  });

  it('drops the series of a forgotten service from the exited workers and from the answers kept for an exit', async () => {
    const retired = new RetiredWorkerMetrics();
    const byService = async (counts: Record<string, number>): Promise<ProcessMetrics> => {
      const registry = new Registry();
      const counter = new Counter({ name: 'requests_total', help: 'h', labelNames: ['service'], registers: [registry] });
      const histogram = new Histogram({ name: 'duration_seconds', help: 'h', labelNames: ['service'], buckets: [1], registers: [registry] });
      for (const [service, count] of Object.entries(counts)) {
        counter.inc({ service }, count);
        histogram.observe({ service }, 0.5);
      }
      return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as ProcessMetrics;
    };
    retired.answered(0, await byService({ canary: 3, stable: 5 }));
    retired.exited(0);
    retired.answered(1, await byService({ canary: 2, stable: 1 }));
    retired.forget('canary');
    retired.exited(1);
    const families = parsePrometheusText(await aggregateMetrics([retired.metrics()]));
    const services = new Set([...families.values()].flatMap((family) => family.samples.map((sample) => sample.labels.service)));
    expect([...services]).toEqual(['stable']);
    expect(sampleValue(families, 'requests_total', { service: 'stable' })).toBe(6);
    expect(sampleValue(families, 'duration_seconds_count', { service: 'stable' })).toBe(2);
  });
});
