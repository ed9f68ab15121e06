import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';

/** One process's metrics as `Registry.getMetricsAsJSON()` gives them. */
export type ProcessMetrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The Prometheus text of several processes' metrics, merged by prom-client's `AggregatorRegistry`
 * (counters and histograms summed, each metric's own aggregator otherwise). A value that is not a
 * number is left out first: an idle process's event-loop-lag mean is NaN, which JSON carries over
 * IPC as null, and either would turn the average of every process into NaN or a false 0.
 */
export async function aggregateMetrics(processes: readonly ProcessMetrics[]): Promise<string> {
  return aggregate(processes).metrics();
}

function aggregate(processes: readonly ProcessMetrics[]) {
  const numeric = processes.map((metrics) =>
    metrics.map((metric) => ({ ...metric, values: metric.values.filter((sample) => typeof sample.value === 'number' && !Number.isNaN(sample.value)) })),
  );
  return AggregatorRegistry.aggregate(numeric as Parameters<typeof AggregatorRegistry.aggregate>[0]);
}

/** One worker's answer to a scrape, with its slot's generation when it came (`RetiredWorkerMetrics.generation`). */
export interface ScrapeAnswer {
  readonly slot: number;
  readonly generation: number;
  readonly metrics: ProcessMetrics;
}

/** A worker asked in a scrape, with its slot's generation when it was asked. */
export interface ScrapeAsked {
  readonly slot: number;
  readonly generation: number;
}

const CUMULATIVE: ReadonlySet<string> = new Set(['counter', 'histogram']);

/** Registered by the first primary, so that a one-process gateway (and a worker) shows no workers' series. */
const WORKERS_NOT_ANSWERING = 'switchboard_workers_not_answering';
const workersNotAnswering = new Gauge({
  name: WORKERS_NOT_ANSWERING,
  help: "Workers running that did not answer the latest /metrics scrape in time: their counters and histograms in it are their last answer's, their gauges are left out.",
  registers: [],
});

/**
 * The counts of workers that exited, for every later `/metrics`: each worker's latest answer to a
 * scrape is kept by slot, and when the worker exits its counters and histograms (not its gauges,
 * which go with it) join the sum of those gone. Without them the gateway's counters dropped by the
 * replaced worker's share, which Prometheus reads as a reset: `rate()` showed a spike of
 * everything the other workers had counted.
 */
export class RetiredWorkerMetrics {
  private readonly latest = new Map<number, ProcessMetrics>();
  /** Exits per slot: an answer given before its worker exited is in the retired sum already. */
  private readonly exits = new Map<number, number>();
  private retired: ProcessMetrics = [];

  constructor() {
    if (!metricsRegistry.getSingleMetric(WORKERS_NOT_ANSWERING)) metricsRegistry.registerMetric(workersNotAnswering);
    workersNotAnswering.set(0);
  }

  /** Keeps `slot`'s latest metrics (answers only grow, so a late one is as good). */
  answered(slot: number, metrics: ProcessMetrics): void {
    this.latest.set(slot, metrics);
  }

  /** How many workers of `slot` have exited; an answer is current while this has not moved since it came. */
  generation(slot: number): number {
    return this.exits.get(slot) ?? 0;
  }

  /** `slot`'s worker exited: its last counts stay in the sum (folded at once, so the retired set never grows with restarts). */
  exited(slot: number): void {
    this.exits.set(slot, this.generation(slot) + 1);
    const last = this.latest.get(slot);
    this.latest.delete(slot);
    if (!last) return;
    // prom-client's aggregate registers each sum as its plain object plus a `get`: it folds synchronously, with no await for a scrape to fall into.
    this.retired = aggregate([this.retired, cumulativeOf(last)]).getMetricsAsArray() as unknown as ProcessMetrics;
  }

  /**
   * Drops every series labelled with `service` (a forgotten service) from the sum of the workers
   * gone and from the answers kept for a later exit, as `forgetServiceSeries` does in each process:
   * a name that churns would otherwise stay in `/metrics` once a worker that counted it had exited.
   */
  forget(service: string): void {
    const without = (metrics: ProcessMetrics): ProcessMetrics => metrics.map((metric) => ({ ...metric, values: metric.values.filter((sample) => sample.labels.service !== service) }));
    this.retired = without(this.retired);
    for (const [slot, metrics] of this.latest) this.latest.set(slot, without(metrics));
  }

  /** The counters and histograms of every worker gone, as one process's metrics. */
  metrics(): ProcessMetrics {
    return this.retired;
  }

  /**
   * What one scrape sums: the answers whose worker has not exited since it answered, the counters
   * and histograms of the last answer of each running worker that did not answer this one (stopped,
   * or too busy), and the retired sum. A worker that answers and then exits before the scrape ends
   * is in the retired sum already: counted twice, the next scrape would read lower, and a worker left
   * out would too, each of which Prometheus takes for a reset (a spike in `rate()` when it is back).
   * Sets `switchboard_workers_not_answering` to the workers of `asked` that neither answered nor
   * exited since, whose gauges are missing from the sum: an operator tells a partial view from a
   * real drop by it (a worker that exited is in `switchboard_workers_listening`).
   */
  scrape(answers: readonly ScrapeAnswer[], asked: readonly ScrapeAsked[]): ProcessMetrics[] {
    const current = answers.filter((answer) => answer.generation === this.generation(answer.slot));
    const answered = new Set(current.map((answer) => answer.slot));
    workersNotAnswering.set(asked.filter((worker) => worker.generation === this.generation(worker.slot) && !answered.has(worker.slot)).length);
    const silent = [...this.latest].filter(([slot]) => !answered.has(slot)).map(([, metrics]) => cumulativeOf(metrics));
    return [...current.map((answer) => answer.metrics), ...silent, this.retired];
  }
}

/** A process's counters and histograms, the metrics an answer given earlier still vouches for (its gauges may have moved since). */
function cumulativeOf(metrics: ProcessMetrics): ProcessMetrics {
  // prom-client types `type` as a numeric enum, but its JSON (and so IPC) carries the name.
  return metrics.filter((metric) => CUMULATIVE.has(String(metric.type)));
}
