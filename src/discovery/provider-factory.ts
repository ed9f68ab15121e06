import type { ConnectionCredentials } from '../connection-credentials.ts';
import { componentLogger } from '../logger.ts';
import { parseRegistryUrl, type RegistryLocation } from '../registry-url.ts';
import { DeferredProvider } from './deferred-provider.ts';
import { FileProvider } from './file/index.ts';
import type { DiscoveryProvider } from './provider.ts';
import { registryIdentity, registryProviderName } from './provider-name.ts';
import { SnapshotFallbackProvider } from './snapshot-fallback-provider.ts';

/** A registry provider's snapshot file (see `SnapshotFallbackProvider`). */
export interface ProviderSnapshotFile {
  readonly path: string;
  /** How long a start waits for the registry's first listing before serving the file's sets. */
  readonly waitMs?: number;
}

/**
 * Builds the provider for a registry URL (`zk://…`, `etcd://…`, `file:…`) or a parsed location,
 * with `credentials` (TLS files, user/password) for an etcd registry, a ZooKeeper one's digest user and password; not started. The ZooKeeper and etcd implementations are imported on `start()` (see `DeferredProvider`),
 * so a configuration that names neither never loads their clients. With `snapshot`, a ZooKeeper or etcd
 * provider keeps its last known sets in that file and serves them when a start cannot list the registry.
 */
export function createProvider(registry: string | RegistryLocation, credentials?: ConnectionCredentials, snapshot?: ProviderSnapshotFile): DiscoveryProvider {
  const location = typeof registry === 'string' ? parseRegistryUrl(registry) : registry;
  const provider = createRegistryProvider(location, credentials);
  if (snapshot === undefined || location.kind === 'file') return provider;
  const log = componentLogger(`provider-${location.kind}`, { provider: provider.name });
  return new SnapshotFallbackProvider(provider, { path: snapshot.path, registry: registryIdentity(location), log, ...(snapshot.waitMs === undefined ? {} : { waitMs: snapshot.waitMs }) });
}

function createRegistryProvider(location: RegistryLocation, credentials: ConnectionCredentials | undefined): DiscoveryProvider {
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
