export type { Instance, InstanceProtocol } from './instance.ts';
export { INSTANCE_PROTOCOLS, instanceAddress, sameInstance, sameInstances, sortInstances } from './instance.ts';
export { decodeInstance, encodeInstance, MAX_INSTANCE_WEIGHT } from './instance-codec.ts';
export type { DecodeResult, RawInstance } from './instance-codec.ts';
export type { DiscoveryProvider, InvalidEntry, ProviderSnapshot, ProviderState, ProviderStatus } from './provider.ts';
export { MAX_INVALID_ENTRIES_LISTED } from './provider.ts';
export { ProviderStore } from './provider-store.ts';
export { DiscoveryAggregator, DEFAULT_THROTTLE_MS } from './discovery-aggregator.ts';
export type { DiscoveryAggregatorOptions } from './discovery-aggregator.ts';
export { DEFAULT_FORGET_AFTER_MS, type ForgettingOptions } from './service-forgetting.ts';
export type { ProtectionChange } from './removal-protection.ts';
export { unconnectedRegistriesIn, type UnconnectedRegistries } from './unconnected-registries.ts';
export { LoadBalanceConf } from './load-balance-conf.ts';
export type { HeldInstance, ServiceConf } from './load-balance-conf.ts';
export { DEFAULT_PROTECTION_HOLD_MS, DEFAULT_PROTECTION_THRESHOLD_PERCENT, RemovalProtection } from './removal-protection.ts';
export type { RemovalProtectionOptions } from './removal-protection.ts';
export { StaticProvider } from './static/index.ts';
export { FileProvider, parseInstanceList } from './file/index.ts';
export type { FileProviderOptions } from './file/index.ts';
export type { ZooKeeperProviderOptions } from './zookeeper/index.ts';
export type { EtcdProviderOptions } from './etcd/index.ts';
// The ZooKeeper and etcd factories are not re-exported: importing this index must not load their clients
// (createProvider imports them on demand; import them from ./zookeeper/index.ts or ./etcd/index.ts directly).
export { createProvider } from './provider-factory.ts';
export { registryProviderName } from './provider-name.ts';
export { DeferredProvider } from './deferred-provider.ts';
export { defaultRegistrySnapshotPath, readRegistrySnapshot, writeRegistrySnapshot, type RegistrySnapshot } from './registry-snapshot-file.ts';
export { DEFAULT_SNAPSHOT_WAIT_MS, SnapshotFallbackProvider, type SnapshotFallbackOptions } from './snapshot-fallback-provider.ts';
