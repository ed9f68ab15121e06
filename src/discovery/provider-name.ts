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

/**
 * What tells two registry locations apart: equal for locations that read the same nodes of the
 * same registry, however their URLs list its hosts. Unlike `registryProviderName`, which keeps
 * the hosts as written (it is what users see), the host list here is a set: order, repeats and
 * the case of host names do not matter (`zk://A:2181,b:2181` and `zk://b:2181,a:2181` are one
 * ensemble, and running both would mix up their statuses and instance sets under two names).
 */
export function registryIdentity(location: RegistryLocation): string {
  const hostSet = (hosts: readonly string[]): string => [...new Set(hosts.map((host) => host.toLowerCase()))].sort().join(',');
  switch (location.kind) {
    case 'zookeeper':
      return `zk:${hostSet(location.connectString.split(','))}${normalizeRoot(location.root)}`;
    case 'etcd':
      return `etcd:${hostSet(location.endpoints)}${normalizePrefix(location.prefix)}`;
    case 'file':
      return registryProviderName(location);
  }
}
