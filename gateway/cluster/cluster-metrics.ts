import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** One process's metrics as `Registry.getMetricsAsJSON()` gives them. */
export type ProcessMetrics = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The Prometheus text of several processes' metrics, merged by prom-client's `AggregatorRegistry`
 * (counters and histograms summed, each metric's own aggregator otherwise). A value that is not a
 * number is left out first: an idle process's event-loop-lag mean is NaN, which JSON carries over
 * IPC as null, and either would turn the average of every process into NaN or a false 0.
 */
export async function aggregateMetrics(processes: readonly ProcessMetrics[]): Promise<string> {
  const numeric = processes.map((metrics) =>
    metrics.map((metric) => ({ ...metric, values: metric.values.filter((sample) => typeof sample.value === 'number' && !Number.isNaN(sample.value)) })),
  );
  return AggregatorRegistry.aggregate(numeric as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
}
