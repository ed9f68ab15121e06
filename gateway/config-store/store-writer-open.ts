import type { StoreLocation } from './store-layout.ts';
import type { StoreWriter } from './store-writer.ts';

/**
 * A writer for `location` (etcd or ZooKeeper); it opens no connection until its first call. Each
 * writer is loaded on demand, so a gateway that never writes never loads a registry client for it.
 */
export async function openStoreWriter(location: StoreLocation): Promise<StoreWriter> {
  if (location.kind === 'etcd') return new (await import('./store-writer-etcd.ts')).EtcdStoreWriter(location);
  return new (await import('./store-writer-zookeeper.ts')).ZooKeeperStoreWriter(location);
}
