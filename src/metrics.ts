import { Counter, Gauge, Registry } from 'prom-client';

/** The registry every core metric lives in; the gateway serves it at `/metrics`. */
export const metricsRegistry = new Registry();

/** Registry entries skipped because their payload failed validation. */
export const invalidInstancesTotal = new Counter({
  name: 'switchboard_registry_invalid_entries_total',
  help: 'Registry entries skipped because their payload failed validation, or (etcd) their key sits below an instance key.',
  labelNames: ['provider', 'service'] as const,
  registers: [metricsRegistry],
});

/** Watch notifications received from a registry. */
export const registryEventsTotal = new Counter({
  name: 'switchboard_registry_events_total',
  help: 'Watch notifications received from a registry.',
  labelNames: ['provider', 'kind'] as const,
  registers: [metricsRegistry],
});

/** Per-service snapshots emitted by providers, before deduplication and throttling. */
export const providerSnapshotsTotal = new Counter({
  name: 'switchboard_provider_snapshots_total',
  help: 'Per-service snapshots emitted by providers, before deduplication and throttling.',
  labelNames: ['provider'] as const,
  registers: [metricsRegistry],
});

/** While a provider serves the sets of its snapshot file (its registry unreachable at start): when that file was written. */
export const providerSnapshotSaved = new Gauge({
  name: 'switchboard_provider_snapshot_saved_timestamp_seconds',
  help: 'While a provider serves the instance sets of its snapshot file because its registry could not be listed at start: when the file was written (unix seconds); absent otherwise.',
  labelNames: ['provider'] as const,
  registers: [metricsRegistry],
});

/** 1 while a provider serves its last good set because its registry is unreachable. */
export const providerStale = new Gauge({
  name: 'switchboard_provider_stale',
  help: '1 while a provider serves its last good instance set because its registry is unreachable.',
  labelNames: ['provider'] as const,
  registers: [metricsRegistry],
});

/** Sessions or watch streams rebuilt after expiry, compaction or a broken stream. */
export const providerResyncsTotal = new Counter({
  name: 'switchboard_provider_resyncs_total',
  help: 'Full re-reads after session expiry, compaction or a broken watch stream.',
  labelNames: ['provider', 'reason'] as const,
  registers: [metricsRegistry],
});
