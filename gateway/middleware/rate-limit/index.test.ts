import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConsumerConfig, RateLimitSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { sendGatewayError } from '../../proxy/error-response.ts';
import { rateLimit, rateLimitChanges, type Limiter } from './index.ts';
import { setLivePeerCount } from '../../config-store/peer-count.ts';
import { retire } from '../middleware-retire.ts';

const SETTINGS: RateLimitSettings = { average: 1, periodMs: 10_000, burst: 2, key: { from: 'client-ip' }, ipv6Subnet: 64, policy: 'local', onRedisError: 'local', statusOnRedisError: 503, delay: undefined, quota: undefined };
const PASS = { allowed: true, refusedBy: undefined, limit: 1, remaining: 0, resetMs: 0, retryAfterMs: 0, delayMs: 0 } as const;

describe('rateLimit', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('answers 429 in the gateway error shape with Retry-After and the X-RateLimit headers once the burst is spent', async () => {
    const clock = { ms: 0 };
    server = await serveMiddleware([rateLimit(SETTINGS, { now: () => clock.ms })]);
    const passed = [await server.send('/'), await server.send('/')];
    expect(passed.map((response) => [response.status, response.headers['x-ratelimit-limit'], response.headers['x-ratelimit-remaining']])).toEqual([
      [200, '2', '1'],
      [200, '2', '0'],
    ]);
    clock.ms = 2_500; // a quarter of a token: 7.5 s to the next, 17.5 s to a full bucket
    const refused = await server.send('/');
    expect(refused.status).toBe(429);
    expect(refused.headers).toMatchObject({ 'retry-after': '8', 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '18', 'content-type': 'application/json' });
    // IETF fields (draft-ietf-httpapi-ratelimit-headers-11): a bucket of 2 refills in 20 s; 0 left, full in 17.5 s.
    expect(refused.headers).toMatchObject({ 'ratelimit-policy': '"default";q=2;w=20', ratelimit: '"default";r=0;t=18' });
    expect(passed[1]!.headers).toMatchObject({ 'ratelimit-policy': '"default";q=2;w=20', ratelimit: '"default";r=0;t=20' });
    const body = JSON.parse(refused.body.toString()) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'rate-limited', status: 429 });
    expect(Object.keys(body).sort()).toEqual(['error', 'message', 'requestId', 'status']);
    // The fake upstream was never called for the refused request, and the outcome names the class.
    expect(server.contexts[2]!.outcome).toMatchObject({ status: 429, errorClass: 'rate-limited', attempts: 0 });
  });

  it("puts the limit headers on the gateway's own answers too (here a 502 after the limiter let the request through)", async () => {
    server = await serveMiddleware([rateLimit(SETTINGS, { now: () => 0 })], async (context) => sendGatewayError(context, 'connect-refused'));
    const answer = await server.send('/');
    expect(answer.status).toBe(502);
    expect(answer.headers).toMatchObject({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '1', ratelimit: '"default";r=1;t=10' });
  });

  it.each([
    ['client-ip', { from: 'client-ip' }, [{}, {}], [true, false]],
    ['header:x-api-key, one bucket per value', { from: 'header', name: 'x-api-key' }, [{ 'x-api-key': 'a' }, { 'x-api-key': 'b' }], [true, true]],
    ['header:x-api-key, the same value', { from: 'header', name: 'x-api-key' }, [{ 'x-api-key': 'a' }, { 'x-api-key': 'a' }], [true, false]],
    ['claim:tenant, one bucket per value', { from: 'claim', name: 'tenant' }, [{ 'x-claims': '{"tenant":"a"}' }, { 'x-claims': '{"tenant":"b"}' }], [true, true]],
    ['claim:tenant, the same value', { from: 'claim', name: 'tenant' }, [{ 'x-claims': '{"tenant":"a","sub":"1"}' }, { 'x-claims': '{"tenant":"a","sub":"2"}' }], [true, false]],
  ] as const)('keys buckets by %s', async (_name, key, headers, allowed) => {
    // Stands in for jwtAuth: the x-claims header holds the verified claims.
    const claims: Middleware = async (context, next) => {
      const text = context.request.headers['x-claims'];
      if (typeof text === 'string') context.set('jwtClaims', JSON.parse(text) as Record<string, unknown>);
      await next();
    };
    server = await serveMiddleware([claims, rateLimit({ ...SETTINGS, burst: 1, key }, { now: () => 0 })]);
    const statuses = [];
    for (const requestHeaders of headers) statuses.push((await server.send('/', { headers: requestHeaders })).status);
    expect(statuses).toEqual(allowed.map((ok) => (ok ? 200 : 429)));
  });

  it('keys by route and service from the context the router filled in', async () => {
    const seen: string[] = [];
    const limiter: Limiter = { take: (key) => (seen.push(key), PASS) };
    const routed: Middleware = async (context, next) => {
      context.routeName = 'orders-route';
      context.service = 'orders';
      await next();
    };
    server = await serveMiddleware([routed, rateLimit({ ...SETTINGS, key: { from: 'route' } }, { limiter }), rateLimit({ ...SETTINGS, key: { from: 'service' } }, { limiter })]);
    await server.send('/');
    expect(seen).toEqual(['orders-route', 'orders']);
  });

  it('keys a long header value by its digest: buckets stay small whatever clients send, and distinct values keep distinct buckets', async () => {
    const seen: string[] = [];
    const limiter: Limiter = { take: (key) => (seen.push(key), PASS) };
    server = await serveMiddleware([rateLimit({ ...SETTINGS, key: { from: 'header', name: 'x-api-key' } }, { limiter })]);
    const long = 'k'.repeat(8_000);
    for (const value of [`${long}a`, `${long}b`, `${long}a`, 'short']) await server.send('/', { headers: { 'x-api-key': value } });
    expect(seen.map((key) => key.length <= 64)).toEqual([true, true, true, true]);
    expect([seen[0] !== seen[1], seen[0] === seen[2], seen[3]]).toEqual([true, true, 'short']);
  });

  it.each([
    ['two addresses of one IPv6 /64 share a bucket', 64, ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff'], [200, 429]],
    ['two IPv6 /64s of one /56 have a bucket each', 64, ['2001:db8:1:2::1', '2001:db8:1:3::1'], [200, 200]],
    ['with ipv6Subnet: 56 the /56 shares one', 56, ['2001:db8:1:2::1', '2001:DB8:1:3::1'], [200, 429]],
    ['with ipv6Subnet: 128 each IPv6 address has its own', 128, ['2001:db8:1:2::1', '2001:db8:1:2::2'], [200, 200]],
    ['IPv4 addresses of one /24 stay apart', 64, ['192.0.2.1', '192.0.2.2'], [200, 200]],
    ['IPv4-mapped addresses stay apart too, and share the bucket of their IPv4 form', 64, ['::ffff:192.0.2.1', '::ffff:192.0.2.2', '192.0.2.1'], [200, 200, 429]],
  ] as const)('keys client-ip by IPv6 network: %s', async (_name, ipv6Subnet, clients, expected) => {
    // Stands in for the forwarding step: x-client is the address it decided on.
    const client: Middleware = async (context, next) => {
      context.clientIp = String(context.request.headers['x-client']);
      await next();
    };
    server = await serveMiddleware([client, rateLimit({ ...SETTINGS, burst: 1, ipv6Subnet }, { now: () => 0 })]);
    const statuses = [];
    for (const address of clients) statuses.push((await server.send('/', { headers: { 'x-client': address } })).status);
    expect(statuses).toEqual(expected);
    // The grouping is the limit's own: the context keeps the client's address for logs and IP lists.
    expect(server.contexts.map((context) => context.clientIp)).toEqual(clients);
  });

  it('waits for an asynchronous limiter (the shape a shared limiter will have)', async () => {
    const limiter: Limiter = { take: async () => ({ ...PASS, allowed: false, refusedBy: 'rate', limit: 5, resetMs: 900, retryAfterMs: 100 }) };
    server = await serveMiddleware([rateLimit(SETTINGS, { limiter })]);
    const response = await server.send('/');
    expect([response.status, response.headers['retry-after'], response.headers['x-ratelimit-reset']]).toEqual([429, '1', '1']);
  });
});

describe('rateLimit keyed by consumer', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it("gives a consumer with its own limit its own bucket size, others the middleware's, and anonymous requests one shared bucket", async () => {
    const consumer = (name: string, burst?: number): ConsumerConfig => ({ name, keyHashes: [], passwordHashes: [], jwt: [], labels: {}, rateLimit: burst === undefined ? undefined : { average: 1, periodMs: 10_000, burst } });
    const consumers = new Map([['gold', consumer('gold', 3)], ['plain', consumer('plain')]]);
    // Stands in for keyAuth: the x-who header names the consumer.
    const identify: Middleware = async (context, next) => {
      const found = consumers.get(String(context.request.headers['x-who']));
      if (found) context.set('consumer', found);
      await next();
    };
    server = await serveMiddleware([identify, rateLimit({ ...SETTINGS, burst: 1, key: { from: 'consumer' } }, { now: () => 0 })]);
    const statuses = async (who: string | undefined, count: number) => {
      const seen: number[] = [];
      for (let index = 0; index < count; index += 1) seen.push((await server.send('/', { headers: who ? { 'x-who': who } : {} })).status);
      return seen;
    };
    expect(await statuses('gold', 4)).toEqual([200, 200, 200, 429]);
    expect(await statuses('plain', 2)).toEqual([200, 429]);
    expect(await statuses(undefined, 2)).toEqual([200, 429]);
  });
});

describe('rateLimit with workers (share)', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  // The bug this fixes: the worker divided the middleware's settings but not a consumer's own
  // rateLimit, so with N workers a consumer got N times its limit.
  it("gives one of two workers half of every bucket: the middleware's and each consumer's own", async () => {
    const gold: ConsumerConfig = { name: 'gold', keyHashes: [], passwordHashes: [], jwt: [], labels: {}, rateLimit: { average: 1, periodMs: 10_000, burst: 4 } };
    const identify: Middleware = async (context, next) => {
      if (context.request.headers['x-who'] === 'gold') context.set('consumer', gold);
      await next();
    };
    server = await serveMiddleware([identify, rateLimit({ ...SETTINGS, burst: 6, key: { from: 'consumer' } }, { now: () => 0, share: 1 / 2 })]);
    const statuses = async (who: string | undefined, count: number) => {
      const seen: number[] = [];
      for (let index = 0; index < count; index += 1) seen.push((await server.send('/', { headers: who ? { 'x-who': who } : {} })).status);
      return seen;
    };
    expect(await statuses('gold', 3)).toEqual([200, 200, 429]);
    expect(await statuses(undefined, 4)).toEqual([200, 200, 200, 429]);
  });

  // Each worker took its share rounded down: a burst of 5 over 2 workers let 4 through, a quota of 3 over 2 only 2.
  it.each([
    ['a burst of 5 over 2 workers', { burst: 5 }, 2, [3, 2]],
    ['a burst of 7 over 3 workers', { burst: 7 }, 3, [3, 2, 2]],
    ['a quota of 3 over 2 workers', { burst: 100, quota: { limit: 3, per: 'day' } }, 2, [2, 1]],
    ['a quota of 6 over 4 workers', { burst: 100, quota: { limit: 6, per: 'day' } }, 4, [2, 2, 1, 1]],
    ['a burst of 1 over 2 workers (each keeps one token)', { burst: 1 }, 2, [1, 1]],
  ] as const)('deals out %s by worker slot, so that together they let through what the file says', async (_name, shape, workers, expected) => {
    const settings: RateLimitSettings = { ...SETTINGS, average: 1, periodMs: 86_400_000, key: { from: 'route' }, ...shape };
    const passed: number[] = [];
    for (let worker = 0; worker < workers; worker += 1) {
      server = await serveMiddleware([rateLimit(settings, { now: () => 0, wallClock: () => Date.UTC(2026, 0, 1, 12), share: 1 / workers, worker })]);
      let count = 0;
      for (let index = 0; index < 8; index += 1) if ((await server.send('/')).status === 200) count += 1;
      passed.push(count);
      await server.close();
    }
    expect(passed).toEqual(expected);
  });

  it("states each bucket's own refill time in RateLimit-Policy: a consumer's own rate, not the middleware's, and a worker's share refills as fast as the whole", async () => {
    const gold: ConsumerConfig = { name: 'gold', keyHashes: [], passwordHashes: [], jwt: [], labels: {}, rateLimit: { average: 100, periodMs: 1_000, burst: 100 } };
    const identify: Middleware = async (context, next) => {
      if (context.request.headers['x-who'] === 'gold') context.set('consumer', gold);
      await next();
    };
    // The middleware: 10 per second into a bucket of 100, so 10 s to refill; half of it per worker.
    server = await serveMiddleware([identify, rateLimit({ ...SETTINGS, average: 10, periodMs: 1_000, burst: 100, key: { from: 'consumer' } }, { now: () => 0, share: 1 / 2 })]);
    const policies = [(await server.send('/', { headers: { 'x-who': 'gold' } })).headers['ratelimit-policy'], (await server.send('/')).headers['ratelimit-policy']];
    expect(policies).toEqual(['"default";q=50;w=1', '"default";q=50;w=10']);
  });
});

describe('rateLimit with delay and quota', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('holds a request whose token is due within maxWait and refuses one due later', async () => {
    const clock = { ms: 0 };
    // 10 tokens/s: the 2nd request's token is due in 100 ms (within 150 ms), the 3rd's in 200 ms (not).
    const settings = { ...SETTINGS, average: 10, periodMs: 1_000, burst: 1, delay: { maxWaitMs: 150 } };
    server = await serveMiddleware([rateLimit(settings, { now: () => clock.ms })]);
    expect((await server.send('/')).status).toBe(200);
    const started = performance.now();
    expect((await server.send('/')).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    const refused = await server.send('/');
    expect([refused.status, refused.headers['retry-after']]).toEqual([429, '1']);
  });

  it('refuses with quota-exceeded once the daily count is used up, and counts again the next day', async () => {
    const wall = { ms: Date.UTC(2026, 0, 1, 23, 0) };
    const settings = { ...SETTINGS, average: 100, burst: 100, quota: { limit: 2, per: 'day' as const } };
    server = await serveMiddleware([rateLimit(settings, { now: () => 0, wallClock: () => wall.ms })]);
    const first = await server.send('/');
    expect(first.headers).toMatchObject({ 'ratelimit-policy': '"default";q=100;w=10, "daily";q=2;w=86400', ratelimit: '"default";r=99;t=1, "daily";r=1;t=3600' });
    expect((await server.send('/')).status).toBe(200);
    const refused = await server.send('/');
    expect([refused.status, refused.headers['retry-after'], JSON.parse(refused.body.toString()).error]).toEqual([429, '3600', 'quota-exceeded']);
    wall.ms = Date.UTC(2026, 0, 2, 0, 0, 1);
    expect((await server.send('/')).status).toBe(200);
  });
});

describe('rateLimit with policy redis while Redis is away', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  /** A connection whose every command fails, as ioredis fails them with the offline queue off. */
  const downRedis = () => {
    const fake: Record<string, unknown> = {
      defineCommand: (name: string) => (fake[name] = () => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"))),
      ping: () => Promise.reject(new Error('Command timed out')),
    };
    return fake as never;
  };
  const REDIS = { target: { kind: 'url', url: 'redis://127.0.0.1:1' }, password: undefined, timeoutMs: 100, keyPrefix: 't:', gateways: 2 } as const;

  it.each([
    ['local: a bucket of burst / gateways / workers', 'local', [200, 200, 429]],
    ['deny: every request refused, as uncounted (503)', 'deny', [503, 503, 503]],
    ['allow: every request through', 'allow', [200, 200, 200]],
  ] as const)('falls back by onRedisError %s', async (_name, onRedisError, expected) => {
    const settings = { ...SETTINGS, burst: 8, policy: 'redis', onRedisError } as const;
    // 8 / 2 gateways / 2 workers = 2 tokens for this worker.
    server = await serveMiddleware([rateLimit(settings, { now: () => 0, share: 1 / 2, redisSettings: REDIS, redis: downRedis, name: 'shared' })]);
    const seen: number[] = [];
    for (let index = 0; index < 3; index += 1) seen.push((await server.send('/')).status);
    expect(seen).toEqual(expected);
  });

  it.each(['allow', 'deny'] as const)('with onRedisError: %s sends no limit header: no bucket counted the request', async (onRedisError) => {
    const settings = { ...SETTINGS, burst: 8, policy: 'redis', onRedisError } as const;
    server = await serveMiddleware([rateLimit(settings, { now: () => 0, redisSettings: REDIS, redis: downRedis, name: `uncounted-${onRedisError}` })]);
    const { headers } = await server.send('/');
    expect(Object.keys(headers).filter((name) => /^(x-)?ratelimit/.test(name))).toEqual([]);
  });

  it("switches once for the whole limit, not once per consumer's own bucket: one log line, one event, and no more Redis calls", async () => {
    let calls = 0;
    const counting = () => {
      const fake: Record<string, unknown> = {
        defineCommand: (name: string) => (fake[name] = () => (calls += 1, Promise.reject(new Error('Command timed out')))),
      };
      return fake as never;
    };
    const consumers = ['a', 'b', 'c'].map((name): ConsumerConfig => ({ name, keyHashes: [], passwordHashes: [], jwt: [], labels: {}, rateLimit: { average: 1, periodMs: 1_000, burst: 5 } }));
    const identify: Middleware = async (context, next) => {
      const found = consumers.find((consumer) => consumer.name === context.request.headers['x-who']);
      if (found) context.set('consumer', found);
      await next();
    };
    const log = { warn: vi.fn(), info: vi.fn() };
    const changes: string[] = [];
    const subscription = rateLimitChanges.subscribe((change) => change.data.middleware === 'per-app' && changes.push(change.type));
    try {
      const settings = { ...SETTINGS, burst: 8, key: { from: 'consumer' }, policy: 'redis', onRedisError: 'allow' } as const;
      server = await serveMiddleware([identify, rateLimit(settings, { redisSettings: REDIS, redis: counting, name: 'per-app', log: log as never })]);
      for (const who of ['a', 'b', 'c', 'a']) expect((await server.send('/', { headers: { 'x-who': who } })).status).toBe(200);
      expect([calls, log.warn.mock.calls.length, changes]).toEqual([1, 1, ['rate-limit-fallback']]);
    } finally {
      subscription.unsubscribe();
    }
  });

  it('once replaced by a reload during an outage, leaves the recovery to its successor: one recovery for the outage', async () => {
    const redis = { up: false, probes: 0 };
    const recovering = () => {
      const fake: Record<string, unknown> = {
        defineCommand: (name: string) =>
          (fake[name] = (...args: unknown[]) => {
            if (String(args[0]).startsWith('rl-probe:')) redis.probes += 1;
            return redis.up ? Promise.resolve([1, '0', '0', 0, 0]) : Promise.reject(new Error('Command timed out'));
          }),
        status: 'ready',
      };
      return fake as never;
    };
    const changes: string[] = [];
    const subscription = rateLimitChanges.subscribe((change) => change.data.middleware === 'replaced' && changes.push(change.type));
    try {
      const settings = { ...SETTINGS, burst: 8, policy: 'redis', onRedisError: 'allow' } as const;
      const options = { redisSettings: REDIS, redis: recovering, name: 'replaced', log: { warn: vi.fn(), info: vi.fn() } as never };
      const first = rateLimit(settings, options);
      server = await serveMiddleware([first]);
      expect((await server.send('/')).status).toBe(200);
      retire(first);
      await server.close();
      server = await serveMiddleware([rateLimit({ ...settings, burst: 9 }, options)]);
      expect((await server.send('/')).status).toBe(200);
      expect(changes).toEqual(['rate-limit-fallback', 'rate-limit-fallback']);
      redis.up = true;
      const probesAtReturn = redis.probes;
      // Each limit probes until one probe succeeds; both have once two probes came after Redis' return.
      await vi.waitFor(() => expect(redis.probes).toBeGreaterThanOrEqual(probesAtReturn + 2), { timeout: 5_000, interval: 20 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(changes).toEqual(['rate-limit-fallback', 'rate-limit-fallback', 'rate-limit-recovered']);
    } finally {
      subscription.unsubscribe();
    }
  });

  it('sizes the local fallback by the live peer count of the config store instead of redis.gateways', async () => {
    const settings = { ...SETTINGS, burst: 8, policy: 'redis', onRedisError: 'local' } as const;
    // 4 peers listed (redis.gateways says 2): 8 / 4 = 2 tokens; then one peer is left: all 8.
    setLivePeerCount(4);
    try {
      server = await serveMiddleware([rateLimit(settings, { now: () => 0, redisSettings: REDIS, redis: downRedis, name: 'peers' })]);
      const statuses = async (count: number) => {
        const seen: number[] = [];
        for (let index = 0; index < count; index += 1) seen.push((await server.send('/')).status);
        return seen;
      };
      expect(await statuses(3)).toEqual([200, 200, 429]);
      setLivePeerCount(1);
      expect((await statuses(9)).filter((status) => status === 200)).toHaveLength(8);
    } finally {
      setLivePeerCount(undefined);
    }
  });
});
