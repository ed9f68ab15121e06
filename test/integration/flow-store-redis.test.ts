import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../src/metrics.ts';
import { createRedisConnection } from '../../gateway/redis/redis-connection.ts';
import { FlowStats, RedisFlowStore, SwitchableFlowStore } from '../../gateway/telemetry/index.ts';
import { silenceableRelay, startLocalRedis, waitFor, type LocalRedis } from '../harness/index.ts';

const TIMEOUT_MS = 500;
/** Far from any bucket boundary of the test's own clock: 12:00:30 UTC of some day, so minute, hour and day buckets hold it. */
const SECOND = Math.floor(Date.UTC(2026, 0, 15, 12, 0, 30) / 1_000);

/** A connected client; with `enableOfflineQueue: false` a call before the connection is up fails at once. */
async function client(redis: LocalRedis): Promise<Redis> {
  const each = new Redis({ host: redis.host, port: redis.port, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  await new Promise<void>((resolve, reject) => {
    each.once('ready', () => resolve());
    each.once('error', reject);
  });
  return each;
}
const failures = async (operation: string) => (await metricsRegistry.getSingleMetric('switchboard_flow_store_failures_total')!.get()).values.find((value) => value.labels.operation === operation)?.value ?? 0;

describe('the Redis flow store against a real redis-server', () => {
  let redis: LocalRedis;
  const clients: Redis[] = [];

  beforeAll(async () => {
    redis = await startLocalRedis();
  });

  afterAll(async () => {
    for (const each of clients) each.disconnect();
    await redis?.close();
  });

  async function gateway(prefix: string): Promise<{ flow: FlowStats; store: RedisFlowStore; client: Redis }> {
    const each = await client(redis);
    clients.push(each);
    // No timer flushes here: the test calls flush() so that it knows what has been sent.
    const store = new RedisFlowStore(each, { prefix, flushMs: 3_600_000, timeoutMs: TIMEOUT_MS });
    return { flow: new FlowStats({ store }), store, client: each };
  }

  it('sums the counts of two gateways that flush into one Redis, per minute, hour and day, with TTLs', async () => {
    const one = await gateway('{test:sum}');
    const two = await gateway('{test:sum}');
    one.flow.of('service', 'user').record(0, 100, 1_000);
    one.flow.of('service', 'user').record(1, 0, 10);
    one.flow.instance('user', '10.0.0.1:80').record(0, 0, 0);
    one.flow.roll(SECOND);
    two.flow.of('service', 'user').record(0, 50, 500);
    two.flow.of('consumer', 'alice').record(0, 0, 5);
    two.flow.roll(SECOND);
    two.flow.of('service', 'user').record(0, 0, 1);
    two.flow.roll(SECOND + 1);
    await Promise.all([one.store.flush(), two.store.flush()]);

    for (const store of [one.store, two.store]) {
      const totals = await store.totals(SECOND);
      const user = totals.get('service\u001fuser')!;
      for (const bucket of [user.minute, user.hour, user.day]) expect(bucket).toEqual({ requests: 4, errors: 1, bytesIn: 150, bytesOut: 1_511 });
      expect(totals.get('consumer\u001falice')!.day.requests).toBe(1);
      expect(totals.get('instance\u001fuser\u001f10.0.0.1:80')!.hour.requests).toBe(1);
    }
    // The next minute is a new hash: its minute totals start from zero while the hour's hold everything.
    const nextMinute = (await one.store.totals(SECOND + 60)).get('service\u001fuser')!;
    expect(nextMinute.minute.requests).toBe(0);
    expect(nextMinute.hour.requests).toBe(4);
    const verify = await client(redis);
    clients.push(verify);
    const keys = (await verify.keys('{test:sum}:*')).sort();
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(await verify.ttl(key)).toBeGreaterThan(0);
  });

  it('never waits longer than its timeout for a stopped Redis, counts the failure, and sends again once it is back', async () => {
    const one = await gateway('{test:outage}');
    await one.store.totals(SECOND);
    const before = await failures('flush');
    let cut = false;
    one.client.once('close', () => (cut = true));
    redis.pause();
    try {
      one.flow.of('service', 'user').record(0, 0, 0);
      one.flow.roll(SECOND);
      const started = performance.now();
      await one.store.flush();
      // Bounded by the store's timeout (plus scheduling), not by Redis coming back.
      expect(performance.now() - started).toBeLessThan(TIMEOUT_MS * 6);
      expect(await failures('flush')).toBe(before + 1);
      await expect(one.store.totals(SECOND)).rejects.toThrow();
    } finally {
      redis.resume();
    }
    one.flow.of('service', 'user').record(0, 0, 0);
    one.flow.of('service', 'user').record(0, 0, 0);
    one.flow.roll(SECOND + 1);
    await one.store.flush();
    // The batch sent during the outage may land late (it was written before Redis stopped) or be lost; the later one arrives.
    const user = (await one.store.totals(SECOND)).get('service\u001fuser')!;
    expect(user.hour.requests).toBeGreaterThanOrEqual(2);
    expect(user.hour.requests).toBeLessThanOrEqual(3);
    // A Redis that answers late (its replies came once it resumed) keeps its connection: others share it.
    expect(cut).toBe(false);
  });

  it('hands the counts not sent yet to the store that replaces it on a reload that moves Redis: they land in the new one, not the old one', async () => {
    const old = await gateway('{test:old}');
    const next = await gateway('{test:new}');
    const store = new SwitchableFlowStore(old.store);
    const flow = new FlowStats({ store });
    flow.of('service', 'user').record(0, 0, 0);
    flow.roll(SECOND);
    await store.use(next.store);
    flow.of('service', 'user').record(0, 0, 0);
    flow.roll(SECOND + 1);
    await next.store.flush();
    expect((await store.totals(SECOND)).get('service\u001fuser')?.minute.requests).toBe(2);
    expect((await old.store.totals(SECOND)).size).toBe(0);
  });

  // A connection as main.ts makes it, whose command timeout is shorter than the store's (ioredis' timeout comes first) or longer (the store's does).
  it.each([200, 5_000])('reconnects when its connection goes silent without a reset, so that its counts reach Redis again without a rate limit probing it (command timeout %i ms)', async (commandTimeoutMs) => {
    const relay = await silenceableRelay(redis.port);
    const connection = createRedisConnection({ target: { kind: 'url', url: `redis://127.0.0.1:${relay.port}` }, password: undefined, timeoutMs: commandTimeoutMs, keyPrefix: '', gateways: 1 });
    const store = new RedisFlowStore(connection, { prefix: `{test:silent-${commandTimeoutMs}}`, flushMs: 3_600_000, timeoutMs: TIMEOUT_MS });
    const flow = new FlowStats({ store });
    try {
      await waitFor(() => connection.status === 'ready' || undefined, { timeoutMs: 5_000, message: 'the first connection' });
      await store.totals(SECOND);
      relay.silence();
      const before = await failures('read');
      await expect(store.totals(SECOND)).rejects.toThrow();
      expect(await failures('read')).toBe(before + 1);
      // Each try sends one more request; until the connection is new again they are lost.
      await waitFor(
        async () => {
          flow.of('service', 'user').record(0, 0, 0);
          flow.roll(SECOND);
          await store.flush();
          return (await store.totals(SECOND).catch(() => undefined))?.get('service\u001fuser')?.minute.requests || undefined;
        },
        { timeoutMs: 10_000, intervalMs: 200, message: 'counts over a new connection' },
      );
    } finally {
      await flow.stop().catch(() => undefined);
      connection.disconnect();
      relay.server.close();
    }
  });
});
