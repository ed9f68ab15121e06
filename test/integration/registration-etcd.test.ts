import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../src/discovery/instance.ts';
import { EtcdRegistration } from '../../src/registration/registration-etcd.ts';
import { startEtcd, waitFor, type EtcdCluster } from '../harness/index.ts';

const TTL_MS = 5_000;
const INSTANCE: Instance = { id: 'user-1', service: 'user', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {} };

describe('EtcdRegistration against a real etcd', () => {
  let etcd: EtcdCluster;
  let reader: Etcd3;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    reader = new Etcd3({ hosts: etcd.endpoints });
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });
  afterAll(async () => {
    reader?.close();
    await etcd?.close();
  });

  it('registers under a prefix of / at /<service>/<id>, where the gateway lists it', async () => {
    const registration = new EtcdRegistration({ endpoints: etcd.endpoints, prefix: '/', ttlMs: TTL_MS });
    cleanup.push(() => registration.close());
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the registration under / to be confirmed' });
    // The gateway's etcd provider lists the prefix / as keys starting with "/".
    expect(await reader.getAll().prefix('/').keys()).toEqual(['/user/user-1']);
    await registration.deregister();
    expect(await reader.get('/user/user-1').string()).toBeNull();
  });
});
