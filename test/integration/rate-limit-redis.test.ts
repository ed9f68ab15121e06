import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimitChange } from '../../gateway/admin/event-types.ts';
import type { RateLimitSettings, RedisSettings } from '../../gateway/config/types.ts';
import { serveMiddleware, type MiddlewareServer } from '../../gateway/middleware/middleware-testing.ts';
import { rateLimit, rateLimitChanges } from '../../gateway/middleware/rate-limit/index.ts';
import { createRedisConnection, releaseSharedRedisAfter, sharedRedis, type RedisConnection } from '../../gateway/redis/redis-connection.ts';
import { silenceableRelay, startLocalRedis, waitFor, type LocalRedis } from '../harness/index.ts';

const quiet = { warn: () => undefined, info: () => undefined } as never;
const DAY_MS = 86_400_000;

/** A Redis TIME answer in ms, as the rate limit's scripts read it. */
function msOfTime([seconds, micros]: readonly (string | number)[]): number {
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

/** A TCP relay to `port` that connects each client `delayMs` after it arrived (a Redis far away, or slow to accept). */
async function slowRelay(port: number, delayMs: number): Promise<{ server: Server; port: number }> {
  const server = createServer((client) => {
    client.pause();
    client.on('error', () => undefined);
    setTimeout(() => {
      const upstream = createConnection({ host: '127.0.0.1', port }, () => {
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** How a `policy: redis` limit copes with a Redis that is there but does not serve it as it should. */
describe('policy: redis rate limit against a real redis-server that misbehaves', () => {
  let redis: LocalRedis;
  let admin: Redis;
  let server: MiddlewareServer | undefined;
  const connections: RedisConnection[] = [];
  const changes: RateLimitChange[] = [];
  const subscription = rateLimitChanges.subscribe((change) => changes.push(change));

  beforeAll(async () => {
    redis = await startLocalRedis();
    admin = new Redis({ host: redis.host, port: redis.port });
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    for (const connection of connections.splice(0)) connection.disconnect();
    changes.length = 0;
  });
  afterAll(async () => {
    subscription.unsubscribe();
    admin?.disconnect();
    await redis?.close();
  });

  /** A limit of `name` on its own connection to `url`, falling back by `onRedisError`, served by a fake upstream; `ready` waits for the connection first. */
  async function serveLimit(name: string, url: string, onRedisError: RateLimitSettings['onRedisError'], ready = true): Promise<MiddlewareServer> {
    const settings: RedisSettings = { target: { kind: 'url', url }, password: undefined, timeoutMs: 1_000, keyPrefix: `test-${name}:`, gateways: 1 };
    const connection = createRedisConnection(settings);
    connections.push(connection);
    if (ready) await new Promise((resolve) => connection.once('ready', resolve));
    const limit: RateLimitSettings = { average: 1_000, periodMs: 1_000, burst: 1_000, key: { from: 'route' }, ipv6Subnet: 64, policy: 'redis', onRedisError, statusOnRedisError: 503, delay: undefined, quota: undefined };
    server = await serveMiddleware([rateLimit(limit, { name, redisSettings: settings, redis: () => connection, log: quiet })]);
    return server;
  }
  /** Redis' clock in ms, the one its scripts count quota windows by. */
  async function redisNowMs(): Promise<number> {
    return msOfTime(await admin.time());
  }
  const typesOf = (name: string) => changes.filter((change) => change.data.middleware === name).map((change) => change.type);

  it('stays in fallback, without a recovery every probe, while Redis answers PING but refuses writes (maxmemory), and returns once it takes them', async () => {
    const limited = await serveLimit('oom', redis.url, 'deny');
    expect((await limited.send('/')).status).toBe(200);
    await admin.config('SET', 'maxmemory', '1');
    try {
      expect((await limited.send('/')).status).toBe(503);
      // Several probe intervals (500 ms each), with requests throughout: one fallback, no false recovery.
      const until = performance.now() + 2_000;
      while (performance.now() < until) {
        expect((await limited.send('/')).status).toBe(503);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(typesOf('oom')).toEqual(['rate-limit-fallback']);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await waitFor(() => typesOf('oom').includes('rate-limit-recovered') || undefined, { timeoutMs: 10_000, message: 'rate-limit-recovered once Redis takes writes' });
    expect((await limited.send('/')).status).toBe(200);
  });

  it('waits for the connection being made (within the timeout) instead of starting in fallback: the first requests of a fresh gateway pass', async () => {
    const relay = await slowRelay(redis.port, 300);
    try {
      const limited = await serveLimit('fresh', `redis://127.0.0.1:${relay.port}`, 'deny', false);
      expect((await Promise.all([limited.send('/'), limited.send('/')])).map((answer) => answer.status)).toEqual([200, 200]);
      expect(typesOf('fresh')).toEqual([]);
    } finally {
      relay.server.close();
    }
  });

  it('keeps the previous configuration\'s connection through the drain time after a reload moved Redis, then closes it', async () => {
    const before: RedisSettings = { target: { kind: 'url', url: redis.url }, password: undefined, timeoutMs: 500, keyPrefix: 'test-moved-a:', gateways: 1 };
    const after: RedisSettings = { ...before, keyPrefix: 'test-moved-b:' };
    const limit: RateLimitSettings = { average: 1_000, periodMs: 1_000, burst: 1_000, key: { from: 'route' }, ipv6Subnet: 64, policy: 'redis', onRedisError: 'deny', statusOnRedisError: 503, delay: undefined, quota: undefined };
    // The limit of the previous configuration, on the shared connection as the gateway builds it.
    const old = await serveMiddleware([rateLimit(limit, { name: 'moved', redisSettings: before, log: quiet })]);
    server = old;
    expect((await old.send('/')).status).toBe(200);
    const connection = sharedRedis(before);
    // A reload moved redis: the requests still running under the old chain keep being served by Redis.
    releaseSharedRedisAfter(after, 1_000);
    expect((await old.send('/')).status).toBe(200);
    expect(typesOf('moved')).toEqual([]);
    await waitFor(() => connection.status === 'end' || undefined, { timeoutMs: 10_000, message: 'the old connection closed after the drain time' });
    connections.push(sharedRedis(after));
  });

  it('keeps a connection that only answers late (CLIENT PAUSE): the other limits sharing it are not cut off', async () => {
    const settings: RedisSettings = { target: { kind: 'url', url: redis.url }, password: undefined, timeoutMs: 100, keyPrefix: 'test-shared:', gateways: 1 };
    const connection = createRedisConnection(settings);
    connections.push(connection);
    await new Promise((resolve) => connection.once('ready', resolve));
    let cut = false;
    connection.on('close', () => (cut = true));
    const limit: RateLimitSettings = { average: 1_000, periodMs: 1_000, burst: 1_000, key: { from: 'route' }, ipv6Subnet: 64, policy: 'redis', onRedisError: 'deny', statusOnRedisError: 503, delay: undefined, quota: undefined };
    const slow = await serveMiddleware([rateLimit(limit, { name: 'slow', redisSettings: settings, redis: () => connection, log: quiet })]);
    server = slow;
    expect((await slow.send('/')).status).toBe(200);
    // Redis stalls for 700 ms: this limit's request and its probes time out at 100 ms, their replies come late.
    await admin.call('CLIENT', 'PAUSE', '700', 'ALL');
    expect((await slow.send('/')).status).toBe(503);
    await waitFor(() => typesOf('slow').includes('rate-limit-recovered') || undefined, { timeoutMs: 10_000, message: 'rate-limit-recovered once Redis answers again' });
    // Cut on the first timeout, every other user of the connection would have failed until it reconnected.
    expect(cut).toBe(false);
    expect(connection.status).toBe('ready');
  });

  it('lets no more through across a fallback and Redis\' return than the shared bucket would: the local bucket starts at Redis\' last level, and Redis is charged for what it let through', async () => {
    const settings: RedisSettings = { target: { kind: 'url', url: redis.url }, password: undefined, timeoutMs: 100, keyPrefix: 'test-blip:', gateways: 1 };
    const connection = createRedisConnection(settings);
    connections.push(connection);
    await new Promise((resolve) => connection.once('ready', resolve));
    // 40 at once, 10 a second: a full-bucket fallback would let about 40 more through, and Redis refilled meanwhile as many again.
    const limit: RateLimitSettings = { average: 10, periodMs: 1_000, burst: 40, key: { from: 'route' }, ipv6Subnet: 64, policy: 'redis', onRedisError: 'local', statusOnRedisError: 503, delay: undefined, quota: undefined };
    const limited = await serveMiddleware([rateLimit(limit, { name: 'blip', redisSettings: settings, redis: () => connection, log: quiet })]);
    server = limited;
    let allowed = 0;
    const send = async (): Promise<void> => {
      if ((await limited.send('/')).status === 200) allowed += 1;
    };
    const start = performance.now();
    // The bucket drained to about 10 tokens, then Redis stalls (shorter than the 2 s that would cut the connection).
    for (let sent = 0; sent < 30; sent += 1) await send();
    await admin.call('CLIENT', 'PAUSE', '1200', 'ALL');
    while (!typesOf('blip').includes('rate-limit-recovered')) {
      await send();
      if (performance.now() - start > 10_000) throw new Error('no rate-limit-recovered within 10 s');
    }
    // Past the return, a flood goes on against the shared bucket, charged for the fallback's requests.
    const recovered = performance.now();
    while (performance.now() - recovered < 500) await send();
    const elapsedMs = performance.now() - start;
    expect(typesOf('blip')).toEqual(['rate-limit-fallback', 'rate-limit-recovered']);
    // A token bucket lets through at most burst + rate × time; one token of slack for the clocks (the gateway's and Redis').
    expect(allowed).toBeLessThanOrEqual(Math.floor(40 + (10 * elapsedMs) / 1_000) + 1);
    // And it did let through what the shared bucket held: the fallback is not a refusal.
    expect(allowed).toBeGreaterThanOrEqual(40);
  });

  it('charges Redis\' quota, not only its bucket, for what the local fallback let through: the quota counts them past Redis\' return', async () => {
    const settings: RedisSettings = { target: { kind: 'url', url: redis.url }, password: undefined, timeoutMs: 1_000, keyPrefix: 'test-quota-charge:', gateways: 1 };
    const connection = createRedisConnection(settings);
    connections.push(connection);
    await new Promise((resolve) => connection.once('ready', resolve));
    // A day that turns during the test would start the count again: begin in the next one if this one is about to end.
    const dayLeftMs = async () => DAY_MS - ((await redisNowMs()) % DAY_MS);
    if ((await dayLeftMs()) < 60_000) await waitFor(async () => (await dayLeftMs()) > 60_000 || undefined, { timeoutMs: 70_000, message: 'the next UTC day on Redis\' clock' });
    const limit: RateLimitSettings = { average: 1_000, periodMs: 1_000, burst: 1_000, key: { from: 'route' }, ipv6Subnet: 64, policy: 'redis', onRedisError: 'local', statusOnRedisError: 503, delay: undefined, quota: { limit: 10, per: 'day' } };
    const limited = await serveMiddleware([rateLimit(limit, { name: 'quota-charge', redisSettings: settings, redis: () => connection, log: quiet })]);
    server = limited;
    const statusesOf = async (count: number): Promise<number[]> => {
      const statuses: number[] = [];
      for (let sent = 0; sent < count; sent += 1) statuses.push((await limited.send('/')).status);
      return statuses;
    };
    expect(await statusesOf(3)).toEqual([200, 200, 200]);
    const [quotaKey, ...others] = await admin.keys('test-quota-charge:rq:*');
    expect(others).toEqual([]);
    expect(await admin.hget(quotaKey!, 'n')).toBe('3');
    // Redis refuses writes: the limit decides by its local bucket and quota (10 of its own), which let these 6 through.
    await admin.config('SET', 'maxmemory', '1');
    try {
      expect(await statusesOf(6)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(typesOf('quota-charge')).toEqual(['rate-limit-fallback']);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await waitFor(() => typesOf('quota-charge').includes('rate-limit-recovered') || undefined, { timeoutMs: 10_000, message: 'rate-limit-recovered once Redis takes writes' });
    // The charge, sent as Redis is back, counts the 6 in the day's window, which the key outlives by a second.
    await waitFor(async () => (await admin.hget(quotaKey!, 'n')) === '9' || undefined, { timeoutMs: 5_000, message: 'the quota charged for the fallback\'s 6 requests' });
    const [[, time], [, ttlMs], [, window]] = (await admin.multi().time().pttl(quotaKey!).hget(quotaKey!, 'w').exec()) as [[null, [string, string]], [null, number], [null, string]];
    const nowMs = msOfTime(time);
    expect(window).toBe(String(Math.floor(nowMs / DAY_MS)));
    // A second past the window's end, give or take a ms of rounding, plus what a busy machine may put between the script's TIME and its PEXPIRE.
    const expiresInMs = DAY_MS - (nowMs % DAY_MS) + 1_000;
    expect(ttlMs).toBeGreaterThanOrEqual(expiresInMs - 2);
    expect(ttlMs).toBeLessThan(expiresInMs + 500);
    // So the quota has one request left, not seven.
    expect(await statusesOf(2)).toEqual([200, 429]);
    expect(JSON.parse((await limited.send('/')).body.toString())).toMatchObject({ error: 'quota-exceeded' });
  });

  it('names a connection closed with its command in flight as such, not as ioredis\' "max retries per request" error', async () => {
    const limited = await serveLimit('dropped', redis.url, 'deny');
    expect((await limited.send('/')).status).toBe(200);
    // Scripts wait while writes are paused; the admin's own CLIENT commands do not.
    await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      const answer = limited.send('/');
      await waitFor(async () => ((await admin.call('CLIENT', 'LIST')) as string).includes('cmd=evalsha') || undefined, { timeoutMs: 5_000, message: 'the limit\'s script waiting in Redis' });
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal');
      expect((await answer).status).toBe(503);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
    const fallback = changes.find((change) => change.type === 'rate-limit-fallback' && change.data.middleware === 'dropped');
    expect(fallback?.type === 'rate-limit-fallback' && fallback.data.reason).toMatch(/^connection to redis lost with the command in flight/);
  });

  it('reconnects when its connection goes silent without a reset, instead of waiting for the kernel to give up (minutes)', async () => {
    const relay = await silenceableRelay(redis.port);
    try {
      const limited = await serveLimit('silent', `redis://127.0.0.1:${relay.port}`, 'deny');
      expect((await limited.send('/')).status).toBe(200);
      relay.silence();
      expect((await limited.send('/')).status).toBe(503);
      // Probes time out for SILENT_CONNECTION_MS (2 s) without a byte from Redis, then the connection
      // is cut; the new one goes through the relay as usual.
      await waitFor(() => typesOf('silent').includes('rate-limit-recovered') || undefined, { timeoutMs: 20_000, message: 'rate-limit-recovered over a new connection' });
      expect((await limited.send('/')).status).toBe(200);
    } finally {
      relay.server.close();
    }
  });
});
