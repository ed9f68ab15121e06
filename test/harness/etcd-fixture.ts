import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import { etcdClient } from './etcd-client.ts';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { startBackend, type BackendProcess } from './programs.ts';

/** One etcd, a writer on it and a backend, shared by the tests of one file; filled in before all its tests. */
export interface EtcdWithBackend {
  etcd: EtcdCluster;
  /** Every unary call bounded (`etcdClient`). */
  writer: Etcd3;
  backend: BackendProcess;
  /** A key root no other test of the file was given, `/<rootPrefix>-<pid>-<n>`: each test starts from an empty one. */
  freshRoot(): string;
}

/**
 * Starts etcd, a writer on it and a backend named `backendName` before all tests of the file or
 * describe block it is called in, and stops them after all; read them from a test or a later hook.
 */
export function etcdWithBackend(backendName: string, rootPrefix: string): EtcdWithBackend {
  let roots = 0;
  const fixture = { freshRoot: () => `/${rootPrefix}-${process.pid}-${(roots += 1)}` } as EtcdWithBackend;
  beforeAll(async () => {
    fixture.etcd = await startEtcd();
    fixture.writer = etcdClient(fixture.etcd.endpoints);
    fixture.backend = await startBackend({ name: backendName });
  });
  afterAll(async () => {
    fixture.writer?.close();
    await fixture.backend?.process.stop();
    await fixture.etcd?.close();
  });
  return fixture;
}
