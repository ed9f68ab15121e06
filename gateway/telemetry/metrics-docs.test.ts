import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../src/metrics.ts';
import { RetiredWorkerMetrics } from '../cluster/cluster-metrics.ts';
import { WorkerSupervisor } from '../cluster/cluster-supervisor.ts';
import { configIdentity, WorkerConfigs } from '../cluster/cluster-worker-configs.ts';

const ROOT = join(import.meta.dirname, '../..');
const OWN = 'switchboard_';
/** A metric name in quotes: how a metric's definition (and only code, never a comment) names it. */
const QUOTED_NAME = /['"](switchboard_[a-z0-9_]+)['"]/g;

/** Metric name → its label names, sorted. */
type MetricLabels = Record<string, string[]>;

/** The program sources (no tests) under src/ and gateway/ that name a metric in quotes, with the names they name. */
function metricSources(): Map<string, string[]> {
  const sources = new Map<string, string[]>();
  for (const folder of ['src', 'gateway']) {
    for (const file of readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
      const path = join(ROOT, folder, file);
      const names = [...readFileSync(path, 'utf8').matchAll(QUOTED_NAME)].map((match) => match[1]!);
      if (names.length > 0) sources.set(path, names);
    }
  }
  return sources;
}

/** The rows of the `GET /metrics` table in docs/admin-api.md: name → label names; a name written twice fails. */
function documentedMetrics(): MetricLabels {
  const text = readFileSync(join(ROOT, 'docs/admin-api.md'), 'utf8');
  const section = text.split(/^## `GET \/metrics`$/m)[1]?.split(/^## /m)[0] ?? '';
  const rows: MetricLabels = {};
  for (const [, name, labels] of section.matchAll(/^\|\s*`([^`]+)`\s*\|([^|]*)\|/gm)) {
    expect(rows, `${name} has two rows`).not.toHaveProperty([name!]);
    rows[name!] = [...labels!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!).sort();
  }
  return rows;
}

/** The `switchboard_*` metrics in the registry `/metrics` serves, with their label names. */
async function registeredMetrics(sources: Map<string, string[]>): Promise<MetricLabels> {
  // Loading every module that defines a metric registers it, wherever it lives (a new file too).
  for (const path of sources.keys()) await import(path);
  // switchboard_workers_listening, switchboard_workers_config_behind and switchboard_workers_not_answering
  // are registered by the first worker supervisor and the first primary's WorkerConfigs and RetiredWorkerMetrics only, so that a one-process gateway never
  // reports a 0 that reads as an outage; constructing them forks nothing.
  new WorkerSupervisor(1, { attach: () => () => undefined, message: () => undefined, exited: () => undefined, failedToStart: () => undefined }, pino({ level: 'silent' }));
  new WorkerConfigs(1, configIdentity(1, ''));
  new RetiredWorkerMetrics();
  const registered: MetricLabels = {};
  for (const metric of metricsRegistry.getMetricsAsArray()) {
    // prom-client's metrics and the cell metrics both keep the label names they were declared with.
    const { name, labelNames = [] } = metric as unknown as { name: string; labelNames?: readonly string[] };
    if (name.startsWith(OWN)) registered[name] = [...labelNames].sort();
  }
  return registered;
}

describe('docs/admin-api.md GET /metrics', () => {
  let sources: Map<string, string[]>;
  let documented: MetricLabels;
  let registered: MetricLabels;
  beforeAll(async () => {
    sources = metricSources();
    documented = documentedMetrics();
    registered = await registeredMetrics(sources);
  });

  it('finds the metrics: every name the sources define is registered once its module is loaded', () => {
    expect(Object.keys(registered).length).toBeGreaterThan(40);
    const named = new Set([...sources.values()].flat());
    expect([...named].filter((name) => !(name in registered)).sort()).toEqual([]);
  });

  it('has a row for every metric the gateway registers, with the labels it carries', () => {
    const rows = Object.fromEntries(Object.keys(registered).map((name) => [name, documented[name] ?? 'no row']));
    expect(rows).toEqual(registered);
  });

  it('names no switchboard_ metric the gateway does not register', () => {
    expect(Object.keys(documented).filter((name) => !(name in registered))).toEqual([]);
  });
});
