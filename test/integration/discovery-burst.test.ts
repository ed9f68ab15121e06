import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProvider, DiscoveryAggregator, encodeInstance, type ServiceConf } from '../../src/discovery/index.ts';
import { create, mkdirp } from '../../src/zookeeper/zookeeper-writes.ts';
import { connectZooKeeperClient, startEtcd, startZooKeeper, waitFor, type EtcdCluster, type ZooKeeperCluster } from '../harness/index.ts';

const BURST = 500;

const payload = (index: number) =>
  encodeInstance({ id: `i${index}`, service: 'burst', host: '127.0.0.1', port: 20_000 + index, weight: 1, protocol: 'http', metadata: {} });

/** Watches one service's LoadBalanceConf, the stream balancers rebuild from, and counts what it delivers. */
function observe(aggregator: DiscoveryAggregator): { confs: ServiceConf[] } {
  const confs: ServiceConf[] = [];
  aggregator.service('burst').conf$.subscribe((conf) => confs.push(conf));
  return { confs };
}

async function expectFewExactUpdates(aggregator: DiscoveryAggregator, confs: ServiceConf[]): Promise<void> {
  await waitFor(() => confs.at(-1)?.instances.length === BURST, { timeoutMs: 20_000, message: `all ${BURST} instances in the LoadBalanceConf` });
  const ports = confs.at(-1)!.instances.map((instance) => instance.port).sort((a, b) => a - b);
  expect(ports).toEqual(Array.from({ length: BURST }, (_, index) => 20_000 + index));
  // One rebuild per throttle window, not one per registration.
  expect(confs.length).toBeLessThan(15);
  expect(aggregator.service('burst').current()?.version).toBe(confs.length);
}

describe('a burst of 500 registrations reaches the balancers as a few exact updates', () => {
  let zk: ZooKeeperCluster;
  let etcd: EtcdCluster;

  beforeAll(async () => {
    [zk, etcd] = await Promise.all([startZooKeeper(), startEtcd()]);
  });
  afterAll(async () => {
    await Promise.all([zk?.close(), etcd?.close()]);
  });

  it('from ZooKeeper ephemeral znodes', async () => {
    const aggregator = new DiscoveryAggregator([createProvider(`zk://${zk.connectString}/services`)]);
    const { confs } = observe(aggregator);
    aggregator.start();
    const writer = await connectZooKeeperClient(zk.connectString);
    try {
      await mkdirp(writer, '/services/burst');
      await Promise.all(Array.from({ length: BURST }, (_, index) => create(writer, `/services/burst/i${index}`, Buffer.from(payload(index)), zookeeper.CreateMode.EPHEMERAL)));
      await expectFewExactUpdates(aggregator, confs);
    } finally {
      writer.close();
      await aggregator.close();
    }
  });

  it('from leased etcd keys', async () => {
    const aggregator = new DiscoveryAggregator([createProvider(`etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`)]);
    const { confs } = observe(aggregator);
    aggregator.start();
    const writer = new Etcd3({ hosts: etcd.endpoints });
    try {
      const lease = writer.lease(30);
      await Promise.all(Array.from({ length: BURST }, (_, index) => lease.put(`/services/burst/i${index}`).value(payload(index))));
      await expectFewExactUpdates(aggregator, confs);
      await lease.revoke();
    } finally {
      writer.close();
      await aggregator.close();
    }
  });
});
