export { createZooKeeperProvider, normalizeRoot, DEFAULT_ZOOKEEPER_ROOT } from './provider-zookeeper.ts';
export type { ZooKeeperProviderOptions } from './provider-zookeeper.ts';
