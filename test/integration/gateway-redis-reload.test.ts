import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, startBackend, startGateway, startLocalRedis, waitFor, type BackendProcess, type GatewayProcess, type LocalRedis } from '../harness/index.ts';

/** The test's own connections name themselves so, and are left out when the gateway's are counted. */
const TEST_CLIENT = 'switchboard-test';

/** A gateway config on `redisUrl` with one `policy: redis` limit on `/limited`, and `extra` routes. */
function configOf(redisUrl: string, backendPort: number, workers: number, extra = ''): string {
  return `
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
workers: ${workers}
redis: { url: "${redisUrl}", timeout: 500ms, keyPrefix: "test:" }
shutdown: { drainTimeout: 1s }
services:
  api: { instances: [127.0.0.1:${backendPort}] }
middlewares:
  shared: { rateLimit: { average: 1000, period: 1s, burst: 1000, key: route, policy: redis, onRedisError: allow } }
routes:
  - { path: /limited, service: api, middlewares: [shared] }
${extra}`;
}

/** The ids of the gateway's connections to `redis` (every client but the test's own). */
async function gatewayClients(redis: Redis): Promise<string[]> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.includes(' name=') && !line.includes(` name=${TEST_CLIENT} `))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)![1]!)
    .sort();
}

/** The keys of `redis` that a flow store (`…flow}:minute:…`) and a rate limit (`test:rl:…`) wrote. */
async function writtenBy(redis: Redis): Promise<{ flow: boolean; limit: boolean }> {
  const keys = await redis.keys('*');
  return { flow: keys.some((key) => key.includes('flow}:minute:')), limit: keys.some((key) => key.startsWith('test:rl:')) };
}

describe.each([1, 2])('a reload that moves redis: (workers: %i)', (workers) => {
  let first: LocalRedis;
  let second: LocalRedis;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  const clients: Redis[] = [];

  const client = async (redis: LocalRedis): Promise<Redis> => {
    const each = new Redis({ host: redis.host, port: redis.port, connectionName: TEST_CLIENT });
    clients.push(each);
    await each.ping();
    return each;
  };
  /** Requests `/limited` until `done` holds (each one adds to the limit and to the flow statistics). */
  const trafficUntil = <T>(done: () => Promise<T>, message: string) =>
    waitFor(
      async () => {
        const answer = await fetch(`${gateway.url}/limited`);
        expect(answer.status).toBe(200);
        return done();
      },
      { timeoutMs: 15_000, intervalMs: 250, message },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${(await logOf(gateway.process)).slice(-3_000)}`);
    });

  beforeAll(async () => {
    [first, second, backend] = await Promise.all([startLocalRedis('redis-first'), startLocalRedis('redis-second'), startBackend({ name: 'api' })]);
    gateway = await startGateway(configOf(first.url, backend.port, workers));
  });
  afterAll(async () => {
    for (const each of clients) each.disconnect();
    await gateway?.process.stop();
    await backend?.process.kill();
    await Promise.all([first?.close(), second?.close()]);
  });

  it('keeps its connections on a reload that leaves redis: alone, then moves the flow statistics and the limit to the new Redis and closes the old connections', async () => {
    const [one, two] = await Promise.all([client(first), client(second)]);
    await trafficUntil(async () => ((await writtenBy(one)).flow && (await writtenBy(one)).limit) || undefined, 'flow statistics and the limit in the first Redis');
    // One shared connection per process: a single process's (flow statistics and limit), or with
    // workers the primary's (flow statistics) and each worker's (its limit). A worker still starting
    // opens its own later (seen once under load), so the snapshot waits for all of them.
    const processes = workers > 1 ? workers + 1 : 1;
    await waitFor(async () => (await gatewayClients(one)).length === processes || undefined, { timeoutMs: 15_000, message: `${processes} gateway connections on the first Redis` }).catch(async (error: Error) => {
      throw new Error(`${error.message}: ${(await gatewayClients(one)).join(', ')}`);
    });
    const before = await gatewayClients(one);

    // Another route, the same redis: the reload reconnects nothing.
    await gateway.writeConfig(configOf(first.url, backend.port, workers, '  - { path: /other, service: api }'));
    await waitFor(async () => (await fetch(`${gateway.url}/other`)).status === 200 || undefined, { timeoutMs: 15_000, message: 'the reload with /other applied' });
    await trafficUntil(async () => true, 'a request after the reload');
    expect(await gatewayClients(one)).toEqual(before);

    await gateway.writeConfig(configOf(second.url, backend.port, workers, '  - { path: /other, service: api }'));
    await trafficUntil(async () => {
      const written = await writtenBy(two);
      return (written.flow && written.limit) || undefined;
    }, 'flow statistics and the limit in the second Redis');
    // Every process of the gateway closes its connections to the first Redis, after the drain timeout (1 s).
    await waitFor(async () => (await gatewayClients(one)).length === 0 || undefined, { timeoutMs: 10_000, message: 'no gateway connection left on the first Redis' }).catch(async (error: Error) => {
      throw new Error(`${error.message}: ${(await gatewayClients(one)).join(', ')}`);
    });
    expect((await gatewayClients(two)).length).toBeGreaterThan(0);
  });
});

describe('a reload that changes a policy: redis limit', () => {
  let redis: LocalRedis;
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  /** One limit with an hourly quota of `quota` on `/quota`, and `marker` as a route to tell that the text is applied. */
  const configOf = (quota: number, average: number, marker: string) => `
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
redis: { url: "${redis.url}", timeout: 500ms, keyPrefix: "test:" }
services:
  api: { instances: [127.0.0.1:${backend.port}] }
middlewares:
  hourly: { rateLimit: { average: ${average}, key: route, policy: redis, onRedisError: allow, quota: { limit: ${quota}, per: hour } } }
routes:
  - { path: /quota, service: api, middlewares: [hourly] }
  - { path: /${marker}, service: api }
`;
  /** Status and what is left of the quota (the `RateLimit` header's `hourly` item) after one request to `/quota`. */
  const take = async () => {
    const answer = await fetch(`${gateway.url}/quota`);
    await answer.text();
    return `${answer.status} ${/"hourly";r=\d+/.exec(answer.headers.get('ratelimit') ?? '')?.[0]}`;
  };
  const applied = (marker: string) => waitFor(async () => (await fetch(`${gateway.url}/${marker}`)).status === 200 || undefined, { timeoutMs: 15_000, message: `the text with /${marker} applied` });

  beforeAll(async () => {
    [redis, backend] = await Promise.all([startLocalRedis(), startBackend({ name: 'api' })]);
    gateway = await startGateway(configOf(3, 1000, 'first'));
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
    await redis?.close();
  });

  it('goes on from the quota count Redis holds (the edit hands no key a fresh quota), and a raised quota lets through only the difference', async () => {
    // The hour must not turn within the test (its counts would start again): at most a minute's wait.
    await waitFor(() => Date.now() % 3_600_000 < 3_540_000 || undefined, { timeoutMs: 70_000, intervalMs: 1_000, message: 'a clock hour with a minute left' });
    try {
      expect([await take(), await take(), await take(), await take()]).toEqual(['200 "hourly";r=2', '200 "hourly";r=1', '200 "hourly";r=0', '429 "hourly";r=0']);
      // The rate changed, the quota not: still used up.
      await gateway.writeConfig(configOf(3, 500, 'second'));
      await applied('second');
      expect(await take()).toBe('429 "hourly";r=0');
      // A quota raised to 5 gives two more, not five.
      await gateway.writeConfig(configOf(5, 500, 'third'));
      await applied('third');
      expect([await take(), await take(), await take()]).toEqual(['200 "hourly";r=1', '200 "hourly";r=0', '429 "hourly";r=0']);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${(await logOf(gateway.process)).slice(-3_000)}`, { cause: error });
    }
  }, 120_000);
});
