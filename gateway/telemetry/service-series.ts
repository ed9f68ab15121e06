import type { Registry } from 'prom-client';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger } from '../../src/logger.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { forgetTcpServiceCells } from './tcp-metrics.ts';

/** The part of prom-client's metrics (and of the cell metrics) that a sweep of one service uses. */
interface ServiceLabelledMetric {
  readonly name: string;
  readonly labelNames?: readonly string[];
  get(): Promise<{ values: readonly { labels: Readonly<Record<string, string | number>> }[] }> | { values: readonly { labels: Readonly<Record<string, string | number>> }[] };
  remove?(labels: Record<string, string | number>): void;
  removeMatching?(label: string, value: string): void;
}

/** Labels prom-client adds to a histogram's or a summary's samples, which its `remove` does not take. */
const SAMPLE_LABELS = new Set(['le', 'quantile']);

/**
 * Removes from `registry` every series whose `service` label is `service`, so that a forgotten
 * service leaves no series behind in `/metrics` (a name that churns would otherwise grow the
 * scrape without end). Series recreated later (the service listed again) start from zero, as a
 * new series does. The cell metrics' series, and the cells tcp entry points keep per service, go
 * before this returns, in the same turn as the callers drop the cells they keep (`RequestMetrics.forget`):
 * a request or connection in between would make cells that a later step detaches, which then never
 * count again. Never rejects: a metric that fails is logged and the others are swept.
 */
export async function forgetServiceSeries(service: string, registry: Registry = metricsRegistry): Promise<void> {
  const metrics = (registry.getMetricsAsArray() as unknown as ServiceLabelledMetric[]).filter((metric) => metric.labelNames?.includes('service'));
  for (const metric of metrics) {
    if (metric.removeMatching) guarded(metric, service, () => metric.removeMatching!('service', service));
  }
  if (registry === metricsRegistry) forgetTcpServiceCells(service);
  for (const metric of metrics) {
    if (metric.removeMatching) continue;
    try {
      const { values } = await metric.get();
      const seen = new Set<string>();
      for (const { labels } of values) {
        if (labels.service !== service) continue;
        const own = Object.fromEntries(Object.entries(labels).filter(([name]) => !SAMPLE_LABELS.has(name)));
        const key = JSON.stringify(own);
        if (seen.has(key)) continue;
        seen.add(key);
        metric.remove?.(own);
      }
    } catch (error) {
      warn(metric, service, error);
    }
  }
}

function guarded(metric: ServiceLabelledMetric, service: string, remove: () => void): void {
  try {
    remove();
  } catch (error) {
    warn(metric, service, error);
  }
}

function warn(metric: ServiceLabelledMetric, service: string, error: unknown): void {
  componentLogger('metrics').warn({ metric: metric.name, service, err: errorMessage(error) }, 'could not remove the series of a forgotten service');
}
