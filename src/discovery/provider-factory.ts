import type { ConnectionCredentials } from '../connection-credentials.ts';
import { componentLogger } from '../logger.ts';
import { parseRegistryUrl, type RegistryLocation } from '../registry-url.ts';
import { DeferredProvider } from './deferred-provider.ts';
import { FileProvider } from './file/index.ts';
import type { DiscoveryProvider } from './provider.ts';
import { registryProviderName } from './provider-name.ts';

/**
 * Builds the provider for a registry URL (`zk://…`, `etcd://…`, `file:…`) or a parsed location,
 * with `credentials` (TLS files, user/password) for an etcd registry, a ZooKeeper one's digest user and password; not started. The ZooKeeper and etcd implementations are imported on `start()` (see `DeferredProvider`),
 * so a configuration that names neither never loads their clients.
 */
export function createProvider(registry: string | RegistryLocation, credentials?: ConnectionCredentials): DiscoveryProvider {
  const location = typeof registry === 'string' ? parseRegistryUrl(registry) : registry;
  const layout = location.kind !== 'file' && location.layout ? { layout: location.layout } : {};
  switch (location.kind) {
    case 'zookeeper': {
      // The name each implementation would derive by default, given to it explicitly so both agree.
      const name = registryProviderName(location);
      return new DeferredProvider(
        name,
        async () =>
          (await import('./zookeeper/index.ts')).createZooKeeperProvider({
            name,
            connectString: location.connectString,
            root: location.root,
            ...layout,
            ...(location.watch === undefined ? {} : { recursiveWatch: location.watch === 'recursive' }),
            ...(credentials === undefined ? {} : { credentials }),
          }),
        componentLogger('provider-zookeeper', { provider: name }),
      );
    }
    case 'etcd': {
      const name = registryProviderName(location);
      return new DeferredProvider(
        name,
        async () => (await import('./etcd/index.ts')).createEtcdProvider({ name, endpoints: location.endpoints, prefix: location.prefix, ...layout, ...(credentials === undefined ? {} : { credentials }) }),
        componentLogger('provider-etcd', { provider: name }),
      );
    }
    case 'file':
      return new FileProvider({ path: location.path });
  }
}
