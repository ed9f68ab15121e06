import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisSettings } from '../../gateway/config/types.ts';
import { createRedisConnection, reconnectIfSilent, untilFirstReady } from '../../gateway/redis/redis-connection.ts';
import { startLocalRedisCluster, waitFor, type LocalRedis } from '../harness/index.ts';

/** Keys that spread over every node of a three-node cluster (checked in `beforeAll`). */
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'];
const KEY_PREFIX = 'test:';

/** How the shared connection copes with one node of a real Redis Cluster that stops answering. */
describe('a redis cluster connection with one node that does not answer', () => {
  let nodes: LocalRedis[];
  let connection: Cluster;

  beforeAll(async () => {
    nodes = await startLocalRedisCluster(3);
    const settings: RedisSettings = { target: { kind: 'cluster', nodes: [{ host: nodes[0]!.host, port: nodes[0]!.port }] }, password: undefined, timeoutMs: 300, keyPrefix: KEY_PREFIX, gateways: 1 };
    connection = createRedisConnection(settings) as Cluster;
    await untilFirstReady(connection);
    await Promise.all(KEYS.map((key) => connection.set(key, '1')));
    for (const node of nodes) {
      const admin = new Redis({ host: node.host, port: node.port });
      expect(await admin.dbsize(), `keys on the node at port ${node.port}`).toBeGreaterThan(0);
      admin.disconnect();
    }
  });
  afterAll(async () => {
    connection?.disconnect();
    await Promise.all((nodes ?? []).map((node) => node.close()));
  });

  /** Reads every key once, as the limits sharing the connection would, handing each failure to `reconnectIfSilent` as they do. */
  const readAll = () =>
    Promise.all(
      KEYS.map((key) =>
        connection.get(key).then(
          () => true,
          (error: unknown) => {
            reconnectIfSilent(connection, error);
            return false;
          },
        ),
      ),
    );
  const nodeAt = (port: number) => connection.nodes().find((node) => node.options.port === port);

  it('keeps a node that only answers late (CLIENT PAUSE), and cuts one that goes silent alone while the others keep theirs', async () => {
    const [first, late, third] = [nodeAt(nodes[0]!.port)!, nodeAt(nodes[1]!.port)!, nodeAt(nodes[2]!.port)!];
    const admin = new Redis({ host: nodes[1]!.host, port: nodes[1]!.port });
    try {
      // Paused for less than SILENT_CONNECTION_MS: its replies come late, then all at once.
      await admin.call('CLIENT', 'PAUSE', '1000', 'ALL');
      const pausedUntil = Date.now() + 1_500;
      // An observation window past the pause, reading all along (reads of the paused node's keys time
      // out meanwhile): the node must not be cut in it, and serves its keys on the same connection after.
      await waitFor(
        async () => {
          await readAll();
          return Date.now() > pausedUntil;
        },
        { timeoutMs: 10_000, message: 'the pause is over' },
      );
      expect(nodeAt(nodes[1]!.port)).toBe(late);
      expect(await readAll()).toEqual(KEYS.map(() => true));
      expect(nodeAt(nodes[1]!.port)).toBe(late);
    } finally {
      admin.disconnect();
    }

    nodes[1]!.pause();
    try {
      // Reads go on until the silent node is cut: they owe it the replies its silence is judged by.
      await waitFor(
        async () => {
          await readAll();
          return late.status === 'end';
        },
        { timeoutMs: 20_000, message: 'the silent node cut' },
      );
      expect([nodeAt(nodes[0]!.port), nodeAt(nodes[2]!.port)]).toEqual([first, third]);
      expect([first.status, third.status]).toEqual(['ready', 'ready']);
    } finally {
      nodes[1]!.resume();
    }
    // A new connection to the node serves it once it answers again.
    await waitFor(async () => (await readAll()).every(Boolean) || undefined, { timeoutMs: 10_000, message: 'every key read again' });
  });
});
