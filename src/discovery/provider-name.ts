import { resolve } from 'node:path';
import type { RegistryLocation } from '../registry-url.ts';
import { normalizePrefix } from './etcd/etcd-key.ts';
import { normalizeRoot } from './zookeeper/zookeeper-root.ts';

/**
 * The name of the provider a registry location runs as (`zk:host:port/root`, `etcd:endpoints/prefix`,
 * `file:/absolute/path`): what the admin API, the log and the metrics call it. Two locations with
 * one name read the same nodes; the name leaves out the layout, `service=` and `watch=`.
 */
export function registryProviderName(location: RegistryLocation): string {
  switch (location.kind) {
    case 'zookeeper':
      return `zk:${location.connectString}${normalizeRoot(location.root)}`;
    case 'etcd':
      return `etcd:${location.endpoints.join(',')}${normalizePrefix(location.prefix)}`;
    case 'file':
      return `file:${resolve(location.path)}`;
  }
}
