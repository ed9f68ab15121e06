import { afterEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { sendRequest, startBackend, startGateway, startLocalRedis, waitFor, type BackendProcess, type GatewayProcess, type LocalRedis } from '../harness/index.ts';

interface Counts {
  readonly requests: number;
  readonly errors: number;
}
interface Stats {
  readonly services: Record<string, { readonly total: Counts }>;
  readonly routes: Record<string, { readonly total: Counts }>;
  readonly instances: Record<string, Record<string, { readonly total: Counts }>>;
}

/**
 * A policy: redis limit's own refusals (429 over the limit, 503 while its Redis is away) are the
 * client's and the gateway's, never the upstream's: a real gateway, redis-server and backend, and a
 * service whose breaker and outlier detection would trip on two failures.
 */
describe('a redis rate limit refusing requests against a real redis-server and gateway', () => {
  let redis: LocalRedis | undefined;
  let backend: BackendProcess | undefined;
  let gateway: GatewayProcess | undefined;

  afterEach(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
    await redis?.close();
    [gateway, backend, redis] = [undefined, undefined, undefined];
  });

  it('counts no 429 rate-limited and no 503 rate-limit-unavailable against the service: not in its flow errors, its instance, its breaker, its outlier detection or its upstream errors', async () => {
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
    for (let sent = 0; sent < 4; sent += 1) statuses.push((await sendRequest(port, '/limited')).status);
    await redis.stop();
    for (let sent = 0; sent < 6; sent += 1) statuses.push((await sendRequest(port, '/limited')).status);
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
