import type { StoreLocation } from './store-layout.ts';
import type { StoreWriter } from './store-writer.ts';
import { EtcdStoreWriter } from './store-writer-etcd.ts';
import { ZooKeeperStoreWriter } from './store-writer-zookeeper.ts';

/** A writer for `location` (etcd or ZooKeeper); it opens no connection until its first call. */
export function openStoreWriter(location: StoreLocation): StoreWriter {
  return location.kind === 'etcd' ? new EtcdStoreWriter(location) : new ZooKeeperStoreWriter(location);
}
