import type { StoreLocation } from './store-layout.ts';
import { STORE_CALL_TIMEOUT_MS, type StoreWriter } from './store-writer.ts';

/**
 * A writer for `location` (etcd or ZooKeeper) whose calls end within `timeoutMs` (the store's
 * `timeout`, as for reads); it opens no connection until its first call. Each writer is loaded on
 * demand, so a gateway that never writes never loads a registry client for it.
 */
export async function openStoreWriter(location: StoreLocation & { readonly timeoutMs?: number }): Promise<StoreWriter> {
  const timeoutMs = location.timeoutMs ?? STORE_CALL_TIMEOUT_MS;
  if (location.kind === 'etcd') return new (await import('./store-writer-etcd.ts')).EtcdStoreWriter(location, timeoutMs);
  return new (await import('./store-writer-zookeeper.ts')).ZooKeeperStoreWriter(location, timeoutMs);
}
