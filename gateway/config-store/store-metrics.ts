import { Counter, Gauge, Histogram } from 'prom-client';
import { metricsRegistry } from '../../src/metrics.ts';

/** Store objects refused by the latest applied listing, per kind (0 once fixed). */
export const configStoreRefusedObjects = new Gauge({
  name: 'switchboard_config_store_refused_objects',
  help: 'Config store objects refused (invalid, or a route referencing a missing object) in the latest listing, per kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

/** Keys under the store's root that are neither objects nor peers, in the latest listing (0 once removed). */
export const configStoreIgnoredKeys = new Gauge({
  name: 'switchboard_config_store_ignored_keys',
  help: 'Keys under the config store root that are neither objects (<root>/<kind>/<name>) nor peers, ignored, in the latest listing.',
  registers: [metricsRegistry],
});

/** The revision of the store listing in force (etcd revision or ZooKeeper zxid). */
export const configStoreRevision = new Gauge({
  name: 'switchboard_config_store_revision',
  help: 'The config store revision (etcd revision, ZooKeeper zxid) of the configuration in force.',
  registers: [metricsRegistry],
});

/** Store sessions rebuilt: compaction, broken or stalled stream, new ZooKeeper session, reconnect. */
export const configStoreResyncsTotal = new Counter({
  name: 'switchboard_config_store_resyncs_total',
  help: 'Config store re-lists after a compaction, a broken or stalled stream, a new ZooKeeper session or a reconnect.',
  labelNames: ['reason'] as const,
  registers: [metricsRegistry],
});

/**
 * From the moment a store change reached this gateway (its watch event, or the listing's answer)
 * to the merged configuration applied here. The store keeps no write time for etcd keys and the
 * writer's clock is another host's, so the write-to-event leg is not included: compare the
 * revisions peers report to see which gateway lags.
 */
export const configPropagationSeconds = new Histogram({
  name: 'switchboard_config_propagation_seconds',
  help: 'Seconds from a config store change reaching this gateway (watch event) to the merged configuration applied.',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [metricsRegistry],
});
