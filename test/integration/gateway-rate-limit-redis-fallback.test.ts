import { request as httpRequest } from 'node:http';
import grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { echoClient, unary } from '../harness/grpc.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { logOf, startBackend, startGateway, startLocalRedis, waitFor, type BackendProcess, type GatewayProcess, type LocalRedis } from '../harness/index.ts';

const DAY_MS = 86_400_000;

/** One answer's status and the rate-limit headers a client paces itself by. */
interface Limited {
  readonly status: number;
  readonly error: string | undefined;
  readonly limit: string | undefined;
  readonly remaining: string | undefined;
  readonly policy: string | undefined;
  readonly state: string | undefined;
  readonly retryAfter: string | undefined;
  /** Whether any `X-RateLimit-*` or IETF `RateLimit*` field came. */
  readonly anyLimitHeader: boolean;
}

/** GET `path` with `headers`; the answer's status, error code (of a gateway error) and limit headers. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Limited> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        const { headers: received } = response;
        const error = (response.statusCode ?? 0) >= 400 ? (JSON.parse(body) as { error: string }).error : undefined;
        const one = (name: string) => received[name] as string | undefined;
        const anyLimitHeader = Object.keys(received).some((name) => name.startsWith('x-ratelimit') || name.startsWith('ratelimit'));
        resolve({ status: response.statusCode ?? 0, error, limit: one('x-ratelimit-limit'), remaining: one('x-ratelimit-remaining'), policy: one('ratelimit-policy'), state: one('ratelimit'), retryAfter: one('retry-after'), anyLimitHeader });
      });
    });
    outgoing.setTimeout(15_000, () => outgoing.destroy(new Error('timed out')));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Of `/api/stats`, what the blame test reads. */
interface Counts {
  readonly requests: number;
  readonly errors: number;
}
interface Stats {
  readonly services: Record<string, { readonly total: Counts }>;
  readonly routes: Record<string, { readonly total: Counts }>;
  readonly instances: Record<string, Record<string, { readonly total: Counts }>>;
}

/** A policy: redis limit in a real gateway whose fallback bucket is half the limit (`redis.gateways: 2`), over a real redis-server the tests stop. */
describe('redis rate limit in fallback (onRedisError: local, allow, deny) against a real redis-server and gateway', () => {
  let redis: LocalRedis | undefined;
  let backend: BackendProcess | undefined;
  let gateway: GatewayProcess | undefined;

  afterEach(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
    await redis?.close();
    [gateway, backend, redis] = [undefined, undefined, undefined];
  });

  /** With `grpc`, the listener speaks h2c too, and gRPC calls of `test.Echo` go through the limit. */
  async function start(rateLimit: string, accessLog = false, grpc = false): Promise<GatewayProcess> {
    [redis, backend] = await Promise.all([startLocalRedis(), startBackend({ name: 'api' })]);
    gateway = await startGateway(`
${grpc ? 'entryPoints: { web: { listen: "127.0.0.1:{{port}}", h2c: true } }' : 'listen: 127.0.0.1:{{port}}'}
admin: 127.0.0.1:{{adminPort}}
accessLog: ${accessLog}
redis: { url: "${redis.url}/0", timeout: 1s, keyPrefix: "test:", gateways: 2 }
services:
  api: { instances: [127.0.0.1:${backend.port}] }
middlewares:
  limited: { rateLimit: ${rateLimit} }
routes:
  - { path: /limited, service: api, middlewares: [limited] }
${grpc ? '  - { grpcService: test.Echo, service: api, middlewares: [limited] }' : ''}
`);
    return gateway;
  }

  it("describes the bucket that decides: the local one's limit, remaining and refill time while Redis is away, the shared one's again once it is back", async () => {
    // 3 at once, 1 a second; the fallback's half of it is 1 at 0.5 a second, which fills in 2 s, not 3.
    const { port } = await start('{ average: 1, period: 1s, burst: 3, key: route, policy: redis, onRedisError: local }');
    const shared = await get(port, '/limited');
    expect([shared.status, shared.limit, shared.remaining, shared.policy, shared.state]).toEqual([200, '3', '2', '"default";q=3;w=3', '"default";r=2;t=1']);
    await redis!.stop();
    // Seeded with Redis' level (2 of 3), the local bucket holds under a token: refused, or passed as it refilled meanwhile.
    const local = await get(port, '/limited');
    expect([local.limit, local.remaining, local.policy]).toEqual(['1', '0', '"default";q=1;w=2']);
    expect(local.state).toMatch(/^"default";r=0;t=[12]$/);
    await redis!.restart();
    const back = await waitFor(async () => {
      const answer = await get(port, '/limited');
      return answer.limit === '3' ? answer : undefined;
    }, { timeoutMs: 10_000, message: 'the shared bucket\'s headers once Redis is back' });
    expect([back.limit, back.policy]).toEqual(['3', '"default";q=3;w=3']);
  });

  it("keeps a key's daily quota where Redis last counted it: a key over its quota in Redis stays over it in the fallback, one half through it has its share of what is left", async () => {
    // A day that turns during the test starts every count again: begin in the next one if this one is about to end.
    if (DAY_MS - (Date.now() % DAY_MS) < 60_000) await waitFor(() => DAY_MS - (Date.now() % DAY_MS) > 60_000 || undefined, { timeoutMs: 70_000, message: 'the next UTC day' });
    const { port } = await start('{ average: 1000, burst: 1000, key: "header:x-app", policy: redis, onRedisError: local, quota: { limit: 4, per: day } }');
    const statusesOf = async (app: string, count: number): Promise<(number | string)[]> => {
      const answers: (number | string)[] = [];
      for (let sent = 0; sent < count; sent += 1) {
        const answer = await get(port, '/limited', { 'x-app': app });
        answers.push(answer.error ?? answer.status);
      }
      return answers;
    };
    // In Redis: app a uses its whole quota of 4, app b half of it.
    expect(await statusesOf('a', 5)).toEqual([200, 200, 200, 200, 'quota-exceeded']);
    expect(await statusesOf('b', 2)).toEqual([200, 200]);
    await redis!.stop();
    // The fallback's quota is 2 a key (4 over 2 gateways): a has none left of it, b half (1), c, never counted, all of it.
    expect(await statusesOf('a', 2)).toEqual(['quota-exceeded', 'quota-exceeded']);
    expect(await statusesOf('b', 2)).toEqual([200, 'quota-exceeded']);
    expect(await statusesOf('c', 3)).toEqual([200, 200, 'quota-exceeded']);
    expect((await get(port, '/limited', { 'x-app': 'a' })).state).toMatch(/^"daily";r=0;t=\d+$/);
  });

  it('with onRedisError: allow lets requests through with no limit header while Redis is away (none counted them), and the shared figures again once it is back', async () => {
    const { port } = await start('{ average: 1, period: 10s, burst: 2, key: route, policy: redis, onRedisError: allow }');
    const counted = await get(port, '/limited');
    expect([counted.status, counted.limit, counted.remaining]).toEqual([200, '2', '1']);
    await redis!.stop();
    // Past the burst: all through, none with an X-RateLimit-Remaining that nothing counts down.
    for (let sent = 0; sent < 4; sent += 1) {
      const open = await get(port, '/limited');
      expect([open.status, open.anyLimitHeader]).toEqual([200, false]);
    }
    await redis!.restart();
    const back = await waitFor(async () => {
      const answer = await get(port, '/limited');
      return answer.anyLimitHeader ? answer : undefined;
    }, { timeoutMs: 10_000, message: 'the shared bucket deciding once Redis is back' });
    // The restarted Redis (no persistence) counts from a full bucket.
    expect([back.status, back.limit, back.remaining]).toEqual([200, '2', '1']);
  });

  it('with statusOnRedisError answers that status in place of the 503, still rate-limit-unavailable with Retry-After and no limit header', async () => {
    const { port } = await start('{ average: 1, period: 10s, burst: 1, key: route, policy: redis, onRedisError: deny, statusOnRedisError: 500 }');
    expect((await get(port, '/limited')).status).toBe(200);
    await redis!.stop();
    const refused = await get(port, '/limited');
    expect([refused.status, refused.error, refused.retryAfter, refused.anyLimitHeader]).toEqual([500, 'rate-limit-unavailable', '1', false]);
  });

  it('with statusOnRedisError: 504 answers a gRPC caller UNAVAILABLE, as the 503: its store is unavailable, and the caller\'s deadline did not pass', async () => {
    const { port } = await start('{ average: 1, period: 10s, burst: 1, key: route, policy: redis, onRedisError: deny, statusOnRedisError: 504 }', false, true);
    expect((await get(port, '/limited')).status).toBe(200);
    await redis!.stop();
    expect((await get(port, '/limited')).status).toBe(504);
    const client = echoClient(`127.0.0.1:${port}`);
    try {
      const outcome = await unary(client, 'Echo', 'hello');
      expect(outcome.code).toBe(grpc.status.UNAVAILABLE);
      expect(outcome.details).toMatch(/^the rate limit cannot count requests now/);
    } finally {
      client.close();
    }
  });

  it("with onRedisError: deny answers 503 rate-limit-unavailable while Redis is away, with Retry-After and no limit header claiming a count never read; logged so, and counted again once it is back", async () => {
    const { port } = await start('{ average: 1, period: 10s, burst: 1, key: route, policy: redis, onRedisError: deny }', true);
    expect((await get(port, '/limited')).status).toBe(200);
    const over = await get(port, '/limited');
    expect([over.status, over.error, over.remaining, over.retryAfter]).toEqual([429, 'rate-limited', '0', '10']);
    await redis!.stop();
    const refused = await get(port, '/limited');
    expect([refused.status, refused.error, refused.retryAfter, refused.anyLimitHeader]).toEqual([503, 'rate-limit-unavailable', '1', false]);
    const line = await waitFor(async () => (await logOf(gateway!.process)).split('\n').find((text) => text.includes('"status":503')), { message: 'the access log line of the refusal' });
    expect(JSON.parse(line)).toMatchObject({ status: 503, errorClass: 'rate-limit-unavailable', attempts: 0 });
    await redis!.restart();
    const back = await waitFor(async () => {
      const answer = await get(port, '/limited');
      return answer.status !== 503 ? answer : undefined;
    }, { timeoutMs: 10_000, message: 'the shared bucket deciding once Redis is back' });
    // The restarted Redis (no persistence) counts from a full bucket.
    expect([back.status, back.limit, back.remaining]).toEqual([200, '1', '0']);
    const overAgain = await get(port, '/limited');
    expect([overAgain.status, overAgain.error]).toEqual([429, 'rate-limited']);
  });

  it('counts no 429 rate-limited and no 503 rate-limit-unavailable against the service: not in its flow errors, its instance, its breaker, its outlier detection or its upstream errors', async () => {
    // A service whose breaker and outlier detection would trip on two failures.
    [redis, backend] = await Promise.all([startLocalRedis(), startBackend({ name: 'api' })]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
redis: { url: "${redis.url}/0", timeout: 1s, keyPrefix: "test:" }
services:
  api:
    instances: [127.0.0.1:${backend.port}]
    healthCheck: false
    outlierDetection: { consecutiveErrors: 2 }
    circuitBreaker: { requestVolumeThreshold: 2, errorPercentThreshold: 50, sleepWindow: 60s }
middlewares:
  limited: { rateLimit: { average: 1, period: 60s, burst: 1, key: route, policy: redis, onRedisError: deny } }
routes:
  - { name: limited, path: /limited, service: api, middlewares: [limited] }
`);
    const { port } = gateway;
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const statuses: number[] = [];
    for (let sent = 0; sent < 4; sent += 1) statuses.push((await get(port, '/limited')).status);
    await redis.stop();
    for (let sent = 0; sent < 6; sent += 1) statuses.push((await get(port, '/limited')).status);
    expect(statuses).toEqual([200, 429, 429, 429, 503, 503, 503, 503, 503, 503]);

    const stats = await waitFor(async () => {
      const read = (await (await admin.get('/api/stats')).json()) as Stats;
      return read.services.api?.total.requests === 10 ? read : undefined;
    }, { timeoutMs: 10_000, message: 'the flow statistics to hold the 10 requests' });
    expect([stats.services.api!.total.errors, stats.routes.limited!.total.errors]).toEqual([0, 0]);
    expect(stats.instances.api![`127.0.0.1:${backend.port}`]!.total).toMatchObject({ requests: 1, errors: 0 });

    const instance = (await admin.services()).find((service) => service.name === 'api')!.instances[0]!;
    expect([instance.requests, instance.errors, instance.health.ejectedUntil]).toEqual([1, 0, null]);
    const breakers = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string; state: string; failures: number }[] }[] };
    expect(breakers.workers[0]!.breakers.find((breaker) => breaker.service === 'api')).toMatchObject({ state: 'closed', failures: 0 });

    const metrics = await admin.metrics();
    expect(metrics.get('switchboard_upstream_errors_total')?.samples.filter((sample) => sample.labels.service === 'api') ?? []).toEqual([]);
    // What the clients got is still counted as they got it.
    expect(sampleValue(metrics, 'switchboard_requests_total', { route: 'limited', service: 'api', status: '4xx' })).toBe(3);
    expect(sampleValue(metrics, 'switchboard_requests_total', { route: 'limited', service: 'api', status: '5xx' })).toBe(6);
    expect(sampleValue(metrics, 'switchboard_rate_limit_fallback_total', { middleware: 'limited', mode: 'deny' })).toBe(6);
  });
});
