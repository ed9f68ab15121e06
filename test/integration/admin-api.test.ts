import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminEvent } from '../../gateway/admin/index.ts';
import type { ServiceView } from '../../gateway/admin/service-view.ts';
import zookeeper from 'node-zookeeper-client';
import { exists } from '../../src/zookeeper/index.ts';
import { create, remove } from '../../src/zookeeper/zookeeper-writes.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { openEventStream, type SseConnection } from '../harness/sse-client.ts';
import { startAgentBackend, connectZooKeeperClient, logOf, startGateway, startZooKeeper, waitFor, type GatewayProcess, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

const TOKEN = 'admin-api-integration-token';
/** The agents probe by TCP, so a failing /healthz is seen by the gateway's own active check only. */
const AGENT_FLAGS = ['--health', 'tcp', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '4s'];
/**
 * The promise of the issue is that the admin API shows a change within one second; the tests allow 2 s
 * more for a loaded 2-core CI machine, where another file's JVMs and gateways run beside this one and
 * this process's own polling stalls too (1 s failed there). Still far short of what a wrong gateway
 * takes: without a working ZooKeeper watch it never learns of a change (it re-lists only on a new
 * session), an active check on the default 10 s interval instead of the configured 100 ms misses a
 * flip, and a view cached until the next registry change never moves.
 */
const WITHIN_MS = 1_000 + 2_000;

describe('admin API of a real gateway beside ZooKeeper, agents and backends', () => {
  let zk: ZooKeeperCluster;
  let reader: Client;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let stream: SseConnection;
  const agents = new Map<string, { agent: ManagedProcess; port: number }>();

  async function register(id: string, weight: number): Promise<{ agent: ManagedProcess; port: number }> {
    const started = await startAgentBackend({ registry: `zk://${zk.connectString}/services`, service: 'user', id, weight, flags: ['--metadata', 'zone=test', ...AGENT_FLAGS] });
    agents.set(id, started);
    return started;
  }

  /** Polls ZooKeeper itself, so "visible" is the moment a registry client could first see the change. */
  async function visibleInZooKeeper(id: string, present: boolean): Promise<number> {
    await waitFor(async () => ((await exists(reader, `/services/user/${id}`)) !== null) === present, { timeoutMs: 15_000, intervalMs: 5, message: `${id} ${present ? 'registered' : 'deregistered'} in ZooKeeper` });
    return Date.now();
  }

  /** The events of `type` received so far, parsed. */
  function received(type: AdminEvent['type']): AdminEvent[] {
    return stream.messages.filter((message) => message.event === type).map((message) => JSON.parse(message.data) as AdminEvent);
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    reader = await connectZooKeeperClient(zk.connectString);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
registries: [zk://${zk.connectString}/services]
services:
  user:
    healthCheck: { path: /healthz, interval: 100ms, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 1 }
    removalGrace: 0
routes:
  - { name: user, path: /api/user, service: user, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
    // From the first event on (Last-Event-ID 0 replays what the gateway buffered before this client came).
    stream = await admin.events('0');
    await register('steady', 1);
    await waitFor(async () => (await admin.instance('user', 'steady'))?.health.state === 'healthy', { timeoutMs: 20_000, message: 'the steady instance healthy' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    stream?.close();
    await gateway?.process.stop();
    await Promise.all([...agents.values()].map(({ agent }) => agent.stop()));
    reader?.close();
    await zk?.close();
  });

  it('answers GET /api/services with 304 to its own ETag while nothing changed, and with 200 and a new ETag once an instance changed', async () => {
    const first = await admin.get('/api/services');
    const etag = first.headers.get('etag');
    expect([first.status, first.headers.get('cache-control')]).toEqual([200, 'private, no-cache']);
    expect(etag).toMatch(/^"[\w-]+"$/);
    const steadyOf = (body: { services: ServiceView[] }) => body.services.find((service) => service.name === 'user')!.instances.find((instance) => instance.id === 'steady')!;
    const requestsBefore = steadyOf((await first.json()) as { services: ServiceView[] }).requests;
    for (let round = 0; round < 3; round += 1) {
      const unchanged = await admin.get('/api/services', { headers: { 'if-none-match': etag! } });
      expect([unchanged.status, unchanged.headers.get('etag'), await unchanged.text()]).toEqual([304, etag, '']);
    }
    // Any of several tags, weak or strong, matches (RFC 9110 §13.1.2).
    expect((await admin.get('/api/services', { headers: { 'if-none-match': `"other", W/${etag!}` } })).status).toBe(304);
    expect((await fetch(`${gateway.url}/api/user/etag`)).status).toBe(200);
    // The instance's counters move when the proxied exchange ends, just after the client has its answer.
    const changed = await waitFor(async () => {
      const response = await admin.get('/api/services', { headers: { 'if-none-match': etag! } });
      return response.status === 304 ? undefined : response;
    }, { timeoutMs: WITHIN_MS, intervalMs: 10, message: '/api/services changed after a proxied request' });
    const newEtag = changed.headers.get('etag');
    expect(changed.status).toBe(200);
    expect(newEtag).toMatch(/^"[\w-]+"$/);
    expect(newEtag).not.toBe(etag);
    expect(steadyOf((await changed.json()) as { services: ServiceView[] }).requests).toBe(requestsBefore + 1);
    expect((await admin.get('/api/services', { headers: { 'if-none-match': newEtag! } })).status).toBe(304);
  });

  it('shows a registration within one second of it being visible in ZooKeeper, and streams instance-added', async () => {
    await register('a', 2);
    const visibleAt = await visibleInZooKeeper('a', true);
    const shown = await waitFor(() => admin.instance('user', 'a'), { timeoutMs: WITHIN_MS, intervalMs: 10, message: 'a in /api/services' });
    expect(Date.now() - visibleAt).toBeLessThan(WITHIN_MS);
    expect(shown).toMatchObject({ host: '127.0.0.1', port: agents.get('a')!.port, weight: 2, metadata: { zone: 'test' }, source: `zk:${zk.connectString}/services`, inRegistry: true });
    const added = await waitFor(() => received('instance-added').find((event) => event.type === 'instance-added' && event.data.instance.id === 'a'), { timeoutMs: WITHIN_MS, message: 'the instance-added event' });
    expect(added).toMatchObject({ type: 'instance-added', data: { service: 'user', instance: { id: 'a', weight: 2, source: `zk:${zk.connectString}/services` } } });
    await waitFor(async () => (await admin.instance('user', 'a'))?.health.state === 'healthy', { timeoutMs: WITHIN_MS, message: 'a confirmed healthy by its first check' });
  });

  it('shows a health flip within one second of the backend failing its check, and back', async () => {
    const { port } = agents.get('a')!;
    const flip = async (path: string, state: string, reason: string) => {
      await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST' });
      const flippedAt = Date.now();
      const shown = await waitFor(async () => {
        const instance = await admin.instance('user', 'a');
        return instance?.health.state === state ? instance : undefined;
      }, { timeoutMs: WITHIN_MS, intervalMs: 10, message: `a ${state} in /api/services` });
      expect(Date.now() - flippedAt).toBeLessThan(WITHIN_MS);
      expect(shown.health.reason).toBe(reason);
      await waitFor(() => received('health-changed').some((event) => event.type === 'health-changed' && event.data.id === 'a' && event.data.to.state === state), { timeoutMs: WITHIN_MS, message: `the health-changed event to ${state}` });
    };
    await flip('/health/fail', 'unhealthy', 'check-failing');
    expect((await admin.instance('user', 'a'))?.routable).toBe(false);
    await flip('/health/ok', 'healthy', 'check-passing');
    // The agent probes by TCP: the instance stayed registered throughout.
    expect(await exists(reader, '/services/user/a')).not.toBeNull();
  });

  it('drops a deregistered instance within one second of its znode disappearing, and streams instance-removed', async () => {
    const { agent } = agents.get('a')!;
    process.kill(agent.pid!, 'SIGTERM');
    const goneAt = await visibleInZooKeeper('a', false);
    await waitFor(async () => (await admin.instance('user', 'a')) === undefined, { timeoutMs: WITHIN_MS, intervalMs: 10, message: 'a gone from /api/services' });
    expect(Date.now() - goneAt).toBeLessThan(WITHIN_MS);
    await waitFor(() => received('instance-removed').some((event) => event.type === 'instance-removed' && event.data.id === 'a' && event.data.reason === 'left-registry'), { timeoutMs: WITHIN_MS, message: 'the instance-removed event' });
    expect((await admin.services()).find((service) => service.name === 'user')?.instances.map((instance) => instance.id)).toEqual(['steady']);
  });

  it('lists an entry whose payload names another service as invalid, with its key, reason and since, and routes nothing to it', async () => {
    const key = '/services/user/intruder';
    await create(reader, key, Buffer.from(JSON.stringify({ service: 'orders', host: '127.0.0.1', port: 1 })), zookeeper.CreateMode.EPHEMERAL);
    try {
      const listed = await waitFor(
        async () => {
          const user = (await admin.services()).find((service) => service.name === 'user');
          return user?.providers[0]?.invalidEntries.find((entry) => entry.key === key);
        },
        { timeoutMs: 5_000, message: 'the intruder listed among the invalid entries' },
      );
      expect(listed.reason).toMatch(/payload names service "orders" but the entry is under "user"/);
      expect(Date.parse(listed.since)).toBeGreaterThan(Date.now() - 10_000);
      expect(await admin.instance('user', 'intruder')).toBeUndefined();
    } finally {
      await remove(reader, key, -1);
    }
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'user')?.providers[0]?.invalid === 0, { timeoutMs: 5_000, message: 'no invalid entry left' });
  });

  it('serves /metrics as valid Prometheus text whose counters move with traffic', async () => {
    const series = { route: 'user', service: 'user', status: '2xx' };
    const before = await admin.metrics();
    const requestsBefore = sampleValue(before, 'switchboard_requests_total', series) ?? 0;
    const durationsBefore = sampleValue(before, 'switchboard_request_duration_seconds_count', { route: 'user', service: 'user' }) ?? 0;
    for (let index = 0; index < 20; index += 1) expect((await fetch(`${gateway.url}/api/user/hello`)).status).toBe(200);
    const after = await admin.metrics();
    expect(sampleValue(after, 'switchboard_requests_total', series)).toBe(requestsBefore + 20);
    expect(sampleValue(after, 'switchboard_request_duration_seconds_count', { route: 'user', service: 'user' })).toBe(durationsBefore + 20);
    expect(sampleValue(after, 'switchboard_instances', { service: 'user', state: 'total' })).toBe(1);
    expect(sampleValue(after, 'switchboard_instances', { service: 'user', state: 'healthy' })).toBe(1);
    expect(sampleValue(after, 'switchboard_provider_stale', { provider: `zk:${zk.connectString}/services` })).toBe(0);
    expect(after.get('switchboard_registry_events_total')?.samples.length).toBeGreaterThan(0);
    expect((await admin.instance('user', 'steady'))?.requests).toBeGreaterThanOrEqual(20);
  });

  it('shows the registry connected with its revision, the routes, and the configuration without the token', async () => {
    const { registries } = (await (await admin.get('/api/registries')).json()) as { registries: Array<Record<string, unknown>> };
    expect(registries[0]).toMatchObject({ name: `zk:${zk.connectString}/services`, kind: 'zookeeper', state: 'connected', staleSince: null, services: 1 });
    expect(registries[0]!.revision).toMatch(/^\d+$/);
    expect(await (await admin.get('/api/routes')).json()).toMatchObject({ routes: [{ order: 0, name: 'user', service: 'user' }] });
    const config = await (await admin.get('/api/config')).text();
    expect(config).not.toContain(TOKEN);
    expect(received('provider-status').some((event) => event.type === 'provider-status' && event.data.state === 'connected')).toBe(true);
  });

  it('replays to a stream reopened with ?lastEventId= what it missed, and tells one resuming from an id of no run it knows to resync first', async () => {
    const ids = stream.messages.map((message) => Number(message.id));
    const lastSeen = ids.at(-1)!;
    expect(lastSeen).toBeGreaterThan(2);
    // A page opening a new EventSource names where it was in the query (it cannot send Last-Event-ID).
    const reopened = await openEventStream(`${admin.url}/api/events?token=${TOKEN}&lastEventId=${lastSeen - 2}`);
    const resumedFar = await admin.events(String(lastSeen + 1_000));
    try {
      await waitFor(() => reopened.messages.length >= 2 && resumedFar.messages.length >= ids.length + 1, { timeoutMs: WITHIN_MS, message: 'the replays' });
      expect(reopened.messages.slice(0, 2).map((message) => Number(message.id))).toEqual([lastSeen - 1, lastSeen]);
      expect(reopened.messages.map((message) => message.event)).not.toContain('resync');
      // An id this run never issued: from an earlier run, so what the client holds is stale.
      const [resync, ...replayed] = resumedFar.messages;
      expect(resync).toMatchObject({ event: 'resync', id: '' });
      expect(JSON.parse(resync!.data)).toMatchObject({ type: 'resync', data: { lastEventId: lastSeen + 1_000, oldestId: ids[0] } });
      expect(replayed.slice(0, ids.length).map((message) => Number(message.id))).toEqual(ids);
    } finally {
      reopened.close();
      resumedFar.close();
    }
  });

  it('refuses a missing or wrong token with 401, an unknown path with 404 and a write with 405, as JSON', async () => {
    const bare = adminClient(admin.url);
    for (const path of ['/api/services', '/api/events', '/metrics', '/api/config']) expect((await bare.get(path)).status, path).toBe(401);
    expect((await adminClient(admin.url, 'not-the-admin-token').get('/api/services')).status).toBe(401);
    const missing = await admin.get('/api/missing');
    expect([missing.status, await missing.json()]).toEqual([404, { error: 'not-found', status: 404, message: 'no admin endpoint at /api/missing' }]);
    const write = await admin.get('/api/services', { method: 'POST' });
    expect([write.status, write.headers.get('allow'), ((await write.json()) as { status: number }).status]).toEqual([405, 'GET, HEAD', 405]);
  });
});
