// Counters and histograms whose series are plain objects the data path writes to directly, read by
// prom-client only at scrape time. prom-client's own metrics hash the label set on every `inc` and
// `observe`, even through a `labels()` child; here a request costs two Map lookups and a few adds.
import type { Metric, Registry } from 'prom-client';

/** One counter series; the hot path adds to `value`. */
export interface CounterCell {
  value: number;
}

/** One histogram series: `counts[i]` holds observations in bucket i (the last is +Inf), not cumulative. */
export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Adds one observation; allocation-free. */
  observe(value: number): void {
    const bounds = this.bounds;
    let index = 0;
    while (index < bounds.length && value > bounds[index]!) index += 1;
    this.counts[index]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

type Labels<L extends string> = Readonly<Record<L, string>>;

/** What prom-client's registry reads of a metric at scrape time. */
interface MetricSample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

/** The part every cell metric shares: its identity, its series, and registration. */
abstract class CellMetric<L extends string, C> {
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  protected readonly series = new Map<string, { labels: Labels<L>; cell: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    /** The label names every series carries, as prom-client's metrics declare them (the docs test reads them). */
    readonly labelNames: readonly L[],
    registry: Registry,
  ) {
    // The registry takes any object with prom-client's collector shape: name, help, type and get().
    registry.registerMetric(this as unknown as Metric);
  }

  /** The cell of `labels`, created on first use; callers keep it and write to it per request. */
  cell(labels: Labels<L>): C {
    const key = JSON.stringify(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels, cell: this.createCell() };
      this.series.set(key, entry);
    }
    return entry.cell;
  }

  /** prom-client's collector contract: the metric with every series as it is now. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricSample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }

  /** Forgets the series whose `label` is `value`; cells already handed out for them stop being reported. */
  removeMatching(label: string, value: string): void {
    for (const [key, { labels }] of this.series) if ((labels as Readonly<Record<string, string>>)[label] === value) this.series.delete(key);
  }

  /** Forgets every series (`registry.resetMetrics()`); cells already handed out stop being reported. */
  reset(): void {
    this.series.clear();
  }

  protected abstract createCell(): C;
  protected abstract samples(): MetricSample[];
}

/** A Prometheus counter backed by `CounterCell`s. */
export class CellCounter<L extends string> extends CellMetric<L, CounterCell> {
  readonly type = 'counter';

  protected createCell(): CounterCell {
    return { value: 0 };
  }

  protected samples(): MetricSample[] {
    return [...this.series.values()].map(({ labels, cell }) => ({ labels: { ...labels }, value: cell.value }));
  }
}

/** A Prometheus histogram backed by `HistogramCell`s, with fixed bucket bounds (seconds, ascending). */
export class CellHistogram<L extends string> extends CellMetric<L, HistogramCell> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames, registry);
  }

  protected createCell(): HistogramCell {
    return new HistogramCell(this.bounds);
  }

  protected samples(): MetricSample[] {
    const samples: MetricSample[] = [];
    for (const { labels, cell } of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, index) => {
        cumulative += cell.counts[index]!;
        samples.push({ labels: { ...labels, le: bound }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      samples.push({ labels: { ...labels, le: '+Inf' }, value: cell.count, metricName: `${this.name}_bucket` });
      samples.push({ labels: { ...labels }, value: cell.sum, metricName: `${this.name}_sum` });
      samples.push({ labels: { ...labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return samples;
  }
}
