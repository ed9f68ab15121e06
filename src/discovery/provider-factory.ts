import { parseRegistryUrl, type RegistryLocation } from '../registry-url.ts';
import { FileProvider } from './file/index.ts';
import { createEtcdProvider } from './etcd/index.ts';
import type { DiscoveryProvider } from './provider.ts';
import { createZooKeeperProvider } from './zookeeper/index.ts';

/** Builds the provider for a registry URL (`zk://…`, `etcd://…`, `file:…`) or a parsed location; not started. */
export function createProvider(registry: string | RegistryLocation): DiscoveryProvider {
  const location = typeof registry === 'string' ? parseRegistryUrl(registry) : registry;
  switch (location.kind) {
    case 'zookeeper':
      return createZooKeeperProvider({ connectString: location.connectString, root: location.root, ...(location.layout ? { layout: location.layout } : {}) });
    case 'etcd':
      return createEtcdProvider({ endpoints: location.endpoints, prefix: location.prefix, ...(location.layout ? { layout: location.layout } : {}) });
    case 'file':
      return new FileProvider({ path: location.path });
  }
}
