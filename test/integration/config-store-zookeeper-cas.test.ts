import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStoreUrl, type StoreLocation } from '../../gateway/config-store/store-layout.ts';
import { ZooKeeperStoreWriter } from '../../gateway/config-store/store-writer-zookeeper.ts';
import { StoreConflictError } from '../../gateway/config-store/store-writer.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../harness/index.ts';

type ZooKeeperLocation = Extract<StoreLocation, { kind: 'zookeeper' }>;

/**
 * Two writers on a real ZooKeeper, the race made deterministic by the writer's `beforeCompare` seam:
 * the second writer acts after the first has read what its `If-Match` compares and before it commits.
 * ZooKeeper compares versions only, and an object deleted and created again is at version 0 again.
 */
describe('ZooKeeper config store writer: If-Match against an object changed between its read and its write', () => {
  let zk: ZooKeeperCluster;
  let roots = 0;
  const writers: ZooKeeperStoreWriter[] = [];

  beforeAll(async () => {
    zk = await startZooKeeper();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(writers.map((writer) => writer.close()));
    await zk?.close();
  }, 30_000);

  /** Two writers on a fresh root: `racing` runs `race` (once) at its first compare; `other` is the second writer. */
  const pair = (race: (other: ZooKeeperStoreWriter) => Promise<void>) => {
    roots += 1;
    const location = parseStoreUrl(`zk://${zk.connectString}/cas-${roots}`) as ZooKeeperLocation;
    const other = new ZooKeeperStoreWriter(location);
    let raced = 0;
    const racing = new ZooKeeperStoreWriter(location, undefined, {
      beforeCompare: async () => {
        raced += 1;
        if (raced === 1) await race(other);
      },
    });
    writers.push(other, racing);
    return { other, racing, raced: () => raced };
  };

  const v1 = { path: '/v1', service: 'orders' };
  const v2 = { path: '/v2', service: 'orders' };

  it('refuses a PUT whose object was deleted and created again meanwhile, and keeps the new object', async () => {
    const { other, racing, raced } = pair(async (writer) => {
      await writer.delete('routes', 'orders');
      await writer.put('routes', 'orders', v2, { ifNoneMatch: true });
    });
    const first = await other.put('routes', 'orders', v1, { ifNoneMatch: true });
    await expect(racing.put('routes', 'orders', { path: '/stale', service: 'orders' }, { ifMatch: first.revision })).rejects.toBeInstanceOf(StoreConflictError);
    expect(raced()).toBeGreaterThan(0);
    expect((await other.get('routes', 'orders'))?.value).toEqual(v2);
  });

  it('refuses a DELETE whose object was deleted and created again meanwhile, and keeps the new object', async () => {
    const { other, racing, raced } = pair(async (writer) => {
      await writer.delete('routes', 'orders');
      await writer.put('routes', 'orders', v2, { ifNoneMatch: true });
    });
    const first = await other.put('routes', 'orders', v1, { ifNoneMatch: true });
    await expect(racing.delete('routes', 'orders', { ifMatch: first.revision })).rejects.toBeInstanceOf(StoreConflictError);
    expect(raced()).toBeGreaterThan(0);
    expect((await other.get('routes', 'orders'))?.value).toEqual(v2);
  });

  it('writes when only another object of the kind was created and deleted meanwhile (read again), with the revision an If-Match then takes', async () => {
    const { other, racing, raced } = pair(async (writer) => {
      await writer.put('routes', 'beside', v2, { ifNoneMatch: true });
      await writer.delete('routes', 'beside');
    });
    const first = await other.put('routes', 'orders', v1, { ifNoneMatch: true });
    const written = await racing.put('routes', 'orders', v2, { ifMatch: first.revision });
    expect(raced()).toBe(2);
    const stored = await other.get('routes', 'orders');
    expect(stored).toEqual({ value: v2, revision: written.revision });
    await other.delete('routes', 'orders', { ifMatch: written.revision });
    expect(await other.get('routes', 'orders')).toBeUndefined();
  });
});

describe('ZooKeeper config store writer: two writers with the same If-Match', () => {
  let zk: ZooKeeperCluster;
  beforeAll(async () => {
    zk = await startZooKeeper();
  }, 60_000);
  afterAll(async () => {
    await zk?.close();
  }, 30_000);

  it('lets one win and refuses the other', async () => {
    const location = parseStoreUrl(`zk://${zk.connectString}/same`) as ZooKeeperLocation;
    const [a, b] = [new ZooKeeperStoreWriter(location), new ZooKeeperStoreWriter(location)];
    try {
      const first = await a.put('services', 'order', { balancer: 'random' }, { ifNoneMatch: true });
      const outcomes = await Promise.allSettled([a.put('services', 'order', { balancer: 'least-conn' }, { ifMatch: first.revision }), b.put('services', 'order', { balancer: 'p2c' }, { ifMatch: first.revision })]);
      expect(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? 'ok' : (outcome.reason as Error).constructor.name)).sort()).toEqual(['StoreConflictError', 'ok']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
