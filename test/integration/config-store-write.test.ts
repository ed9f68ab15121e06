// The admin write API of a real gateway against a real etcd and a real ZooKeeper: what lands in the
// store is read back with independent clients (etcd3, node-zookeeper-client), not through the gateway.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getData } from '../../src/zookeeper/index.ts';
import { mkdirp, setData } from '../../src/zookeeper/zookeeper-writes.ts';
import type { AdminEvent } from '../../gateway/admin/index.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import type { SseConnection } from '../harness/sse-client.ts';
import { connectZooKeeperClient, logOf, makeTempDir, runSwitchboard, startBackend, startEtcd, startGateway, startZooKeeper, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const TOKEN = 'config-store-write-integration-token';
const ROOT = '/switchboard-write';

/** Reads a key or znode straight from the store: its text, or undefined when absent. */
type StoreReader = (key: string) => Promise<string | undefined>;

interface StoreUnderTest {
  readonly url: string;
  readonly read: StoreReader;
  /** Writes a key or znode straight to the store, around the API (as etcdctl or zkCli would). */
  write(key: string, text: string): Promise<void>;
  close(): Promise<void>;
}

async function etcdStore(): Promise<StoreUnderTest> {
  const etcd: EtcdCluster = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  return {
    url: `etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${ROOT}`,
    read: async (key) => (await client.get(key).string()) ?? undefined,
    write: async (key, text) => void (await client.put(key).value(text)),
    close: once(async () => {
      client.close();
      await etcd.close();
    }),
  };
}

async function zooKeeperStore(): Promise<StoreUnderTest> {
  const zk: ZooKeeperCluster = await startZooKeeper();
  const client: Client = await connectZooKeeperClient(zk.connectString);
  return {
    url: `zk://${zk.connectString}${ROOT}`,
    read: async (path) => (await getData(client, path).catch(() => undefined))?.data?.toString('utf8'),
    write: async (path, text) => {
      await mkdirp(client, path);
      await setData(client, path, Buffer.from(text), -1);
    },
    close: once(async () => {
      client.close();
      await zk.close();
    }),
  };
}

/** `close` that runs once however often it is called: a test stops the store before afterAll does. */
function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= close());
}

/** PUT (or DELETE) one object with the token and extra headers. */
function send(admin: AdminClient, method: 'PUT' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return admin.get(path, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(signal ? { signal } : {}) });
}

describe.each([
  ['etcd', etcdStore],
  ['ZooKeeper', zooKeeperStore],
])('the admin write API on %s', (_name, startStore) => {
  let store: StoreUnderTest;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let stream: SseConnection;

  beforeAll(async () => {
    store = await startStore();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: ${store.url}
`);
    const adminPort = gateway.adminPort;
    admin = adminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
    stream = await admin.events('0');
  });

  afterAll(async () => {
    stream?.close();
    await gateway?.process.stop();
    await store?.close();
  });

  it('stores a PUT route as exactly its JSON, answers GET with it and its ETag, and DELETE removes the key', async () => {
    const route = { path: '/orders', service: 'order', timeouts: { headers: '2s' } };
    const put = await send(admin, 'PUT', '/api/routes/orders', route);
    expect(put.status).toBe(201);
    const etag = put.headers.get('etag');
    expect(etag).toMatch(/^"[0-9.]+"$/);
    // What the file would hold at routes[], with the id as its name, durations as written.
    expect(JSON.parse((await store.read(`${ROOT}/routes/orders`))!)).toEqual({ name: 'orders', ...route });

    const get = await admin.get('/api/routes/orders');
    expect(get.status).toBe(200);
    expect(get.headers.get('etag')).toBe(etag);
    expect(await get.json()).toEqual({ kind: 'routes', name: 'orders', revision: etag!.slice(1, -1), value: { name: 'orders', ...route } });

    const replaced = await send(admin, 'PUT', '/api/routes/orders', { ...route, path: '/orders/v2' });
    expect(replaced.status).toBe(200);
    expect(replaced.headers.get('etag')).not.toBe(etag);

    const listing = (await (await admin.get('/api/store')).json()) as { objects: { kind: string; name: string; revision: string }[] };
    expect(listing.objects).toContainEqual(expect.objectContaining({ kind: 'routes', name: 'orders', revision: replaced.headers.get('etag')!.slice(1, -1) }));

    expect((await send(admin, 'DELETE', '/api/routes/orders')).status).toBe(200);
    expect(await store.read(`${ROOT}/routes/orders`)).toBeUndefined();
    expect((await admin.get('/api/routes/orders')).status).toBe(404);
    expect((await send(admin, 'DELETE', '/api/routes/orders')).status).toBe(404);
  });

  it('lets one of two writers with the same If-Match win and answers the other 412 with the current revision', async () => {
    const created = await send(admin, 'PUT', '/api/services/order', { balancer: 'round-robin' }, { 'if-none-match': '*' });
    expect(created.status).toBe(201);
    const etag = created.headers.get('etag')!;
    const [first, second] = await Promise.all([
      send(admin, 'PUT', '/api/services/order', { balancer: 'least-connections' }, { 'if-match': etag }),
      send(admin, 'PUT', '/api/services/order', { balancer: 'random' }, { 'if-match': etag }),
    ]);
    expect([first.status, second.status].sort()).toEqual([200, 412]);
    const [winner, loser] = first.status === 200 ? [first, second] : [second, first];
    const refused = (await loser.json()) as { code: string; revision: string };
    expect(refused.code).toBe('SB_CONFIG_STORE_CONFLICT');
    expect(`"${refused.revision}"`).toBe(winner.headers.get('etag'));
    // The store holds the winner's value, not the loser's.
    const winnerValue = ((await winner.json()) as { value: unknown }).value;
    expect(JSON.parse((await store.read(`${ROOT}/services/order`))!)).toEqual(winnerValue);

    const again = await send(admin, 'PUT', '/api/services/order', { balancer: 'random' }, { 'if-none-match': '*' });
    expect(again.status).toBe(412);
    expect(JSON.parse((await store.read(`${ROOT}/services/order`))!)).toEqual(winnerValue);
    // Both conditions: the object must exist (If-Match) and must not (If-None-Match), so never a write.
    const both = await send(admin, 'PUT', '/api/services/order', { balancer: 'random' }, { 'if-match': winner.headers.get('etag')!, 'if-none-match': '*' });
    expect([both.status, ((await both.json()) as { revision: string }).revision]).toEqual([412, winner.headers.get('etag')!.slice(1, -1)]);
    expect(JSON.parse((await store.read(`${ROOT}/services/order`))!)).toEqual(winnerValue);
    // A stale ETag cannot delete either.
    expect((await send(admin, 'DELETE', '/api/services/order', undefined, { 'if-match': etag })).status).toBe(412);
    expect(await store.read(`${ROOT}/services/order`)).toBeDefined();
  });

  it('refuses an invalid route with 400, the key path and the reason, and writes nothing', async () => {
    const response = await send(admin, 'PUT', '/api/routes/broken', { path: 'no-leading-slash', service: 'order' });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { code: string; issues: { path: string; reason: string }[] };
    expect(body.code).toBe('SB_CONFIG_OBJECT_INVALID');
    expect(body.issues).toEqual([expect.objectContaining({ path: 'routes[broken].path', reason: expect.stringMatching(/\//) as unknown })]);
    expect(await store.read(`${ROOT}/routes/broken`)).toBeUndefined();
  });

  it('answers 401 to a write without the token and writes nothing', async () => {
    const response = await fetch(`${admin.url}/api/routes/anonymous`, { method: 'PUT', body: JSON.stringify({ path: '/a', service: 'a' }) });
    expect(response.status).toBe(401);
    expect(await store.read(`${ROOT}/routes/anonymous`)).toBeUndefined();
  });

  it('reports each write on /api/events with the client address and never the value', async () => {
    const consumer = { keys: [`sha256:${'ab'.repeat(32)}`] };
    expect((await send(admin, 'PUT', '/api/consumers/alice', consumer)).status).toBe(201);
    const event = await waitFor(
      () => stream.messages.filter((message) => message.event === 'config-written').map((message) => JSON.parse(message.data) as AdminEvent).find((candidate) => candidate.type === 'config-written' && candidate.data.name === 'alice'),
      { timeoutMs: 10_000, message: 'a config-written event for consumers/alice' },
    );
    expect(event.data).toMatchObject({ action: 'put', kind: 'consumers', name: 'alice', client: expect.stringMatching(/127\.0\.0\.1/) as unknown });
    expect(JSON.stringify(event)).not.toContain('abab');
    // Read back, the key digests are redacted; sent again as read, the write is refused and the store keeps the real ones.
    const read = (await (await admin.get('/api/consumers/alice')).json()) as { value: unknown };
    expect(read.value).toEqual({ keys: ['[redacted]'] });
    const again = await send(admin, 'PUT', '/api/consumers/alice', read.value);
    expect([again.status, ((await again.json()) as { code: string }).code]).toEqual([400, 'SB_ADMIN_REDACTED_VALUE']);
    expect(JSON.parse((await store.read(`${ROOT}/consumers/alice`))!)).toEqual(consumer);
  });

  it('writes nothing on a dry run with or without preconditions, and refuses a dryRun it does not take rather than write or delete', async () => {
    const route = { path: '/dry', service: 'dry' };
    const judged = await send(admin, 'PUT', '/api/routes/dry?dryRun=true', route);
    expect([judged.status, await judged.json()]).toEqual([200, expect.objectContaining({ kind: 'routes', name: 'dry', dryRun: true, unchanged: false })]);
    expect(await store.read(`${ROOT}/routes/dry`)).toBeUndefined();
    const put = await send(admin, 'PUT', '/api/routes/dry', route);
    expect(put.status).toBe(201);
    for (const headers of [{}, { 'if-match': put.headers.get('etag')! }, { 'if-match': '*' }, { 'if-none-match': '*' }] as Record<string, string>[]) {
      const answer = await send(admin, 'PUT', '/api/routes/dry?dryRun=true', { ...route, path: '/dry/v2' }, headers);
      expect([headers, answer.status]).toEqual([headers, 200]);
    }
    // What a curl user or a Kubernetes habit may send: a write it was not, refused rather than stored.
    for (const query of ['dryRun', 'dryRun=1', 'dryRun=All', 'dryrun=true', 'dry-run=true']) {
      const answer = await send(admin, 'PUT', `/api/routes/dry?${query}`, { ...route, path: '/dry/v3' });
      expect([query, answer.status, ((await answer.json()) as { code: string }).code]).toEqual([query, 400, 'SB_ADMIN_QUERY']);
    }
    // DELETE judges nothing: a dry run of it would delete.
    expect((await send(admin, 'DELETE', '/api/routes/dry?dryRun=true')).status).toBe(400);
    expect(JSON.parse((await store.read(`${ROOT}/routes/dry`))!)).toEqual({ name: 'dry', ...route });
    expect((await send(admin, 'DELETE', '/api/routes/dry')).status).toBe(200);
  });

  it('judges a write over an object written around the API that is not JSON as the write goes: taken, and the write replaces it', async () => {
    await store.write(`${ROOT}/routes/garbled`, 'not json {');
    const route = { path: '/garbled', service: 'garbled' };
    const judged = await send(admin, 'PUT', '/api/routes/garbled?dryRun=true', route);
    expect([judged.status, await judged.json()]).toEqual([200, expect.objectContaining({ dryRun: true, unchanged: false })]);
    expect(await store.read(`${ROOT}/routes/garbled`)).toBe('not json {');
    expect((await send(admin, 'PUT', '/api/routes/garbled', route)).status).toBe(200);
    expect(JSON.parse((await store.read(`${ROOT}/routes/garbled`))!)).toEqual({ name: 'garbled', ...route });
    expect((await send(admin, 'DELETE', '/api/routes/garbled')).status).toBe(200);
  });

  // Last: it stops the store.
  it('answers 503 within its deadline when the store is down, and still exits promptly on SIGTERM', async () => {
    expect((await send(admin, 'PUT', '/api/routes/before-outage', { path: '/b', service: 'b' })).status).toBe(201);
    await store.close();
    // The store call's deadline is 5 s; a request hanging past 15 s (a loaded machine's margin) fails the test.
    const response = await send(admin, 'PUT', '/api/routes/during-outage', { path: '/d', service: 'd' }, {}, AbortSignal.timeout(15_000));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ code: 'SB_CONFIG_STORE_UNAVAILABLE' });
    const exit = await gateway.process.stop(15_000);
    // Stopped by its own SIGTERM handling (exit 0), not by the harness's SIGKILL after the grace.
    expect(exit).toMatchObject({ code: 0, signal: null });
  });
});

describe('the admin write API refuses what it cannot do safely', () => {
  let etcd: StoreUnderTest;
  let open: GatewayProcess;
  let storeless: GatewayProcess;
  let openAdmin: string;
  let storelessAdmin: AdminClient;

  beforeAll(async () => {
    // Each start assigns its own result, so afterAll stops whatever started when the other failed.
    await Promise.all([
      (async () => {
        etcd = await etcdStore();
        // An admin listener without a token (allowed on loopback): it may read, never write.
        open = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
configStore: ${etcd.url}
`);
      })(),
      // The storeless gateway needs nothing of the store: it starts beside it.
      (async () => {
        storeless = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
`);
      })(),
    ]);
    openAdmin = `http://127.0.0.1:${open.adminPort}`;
    storelessAdmin = adminClient(`http://127.0.0.1:${storeless.adminPort}`, TOKEN);
  });

  afterAll(async () => {
    await Promise.all([open?.process.stop(), storeless?.process.stop()]);
    await etcd?.close();
  });

  it('answers writes 403 when the admin listener has no token, and still answers reads', async () => {
    const response = await fetch(`${openAdmin}/api/routes/x`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/x', service: 'x' }) });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: 'SB_ADMIN_WRITE_NEEDS_TOKEN', message: expect.stringContaining('token') as unknown });
    expect(await etcd.read(`${ROOT}/routes/x`)).toBeUndefined();
    expect((await fetch(`${openAdmin}/api/store`)).status).toBe(200);
  });

  it('still lets switchboard config diff compare a stored object holding a secret, though its dry run is a write this listener refuses', async () => {
    const hash = '$2y$10$N9kT7OtxKOj7yIBfnMbV/.o8zrf6vuMoa1m1RjIdffQhdPN6NAXPW';
    await etcd.write(`${ROOT}/consumers/ops`, JSON.stringify({ passwords: [hash] }));
    const file = join(await makeTempDir('sb-config-diff-'), 'ops.yaml');
    await writeFile(file, `consumers:\n  ops: { passwords: ["${hash}"] }\n`);
    const diff = await runSwitchboard(['config', 'diff', '-f', file, '--admin', openAdmin], { SWITCHBOARD_ADMIN_TOKEN: '' });
    // It cannot tell the secret is the same (the listing redacts it): shown as changed, and said why.
    expect({ status: diff.status, stdout: diff.stdout }).toEqual({ status: 1, stdout: expect.stringContaining('~ consumers/ops') as unknown });
    expect(diff.stderr).toContain('consumers/ops: its secrets were not compared');
  });

  it('answers writes 409 SB_CONFIG_STORE_NONE when no configStore is configured', async () => {
    const response = await send(storelessAdmin, 'PUT', '/api/routes/x', { path: '/x', service: 'x' });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: 'SB_CONFIG_STORE_NONE' });
  });
});

describe('the admin write API of a gateway with workers', () => {
  let etcd: StoreUnderTest;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    etcd = await etcdStore();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
workers: 2
configStore: ${etcd.url}
`);
    const adminPort = gateway.adminPort;
    admin = adminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await etcd?.close();
  });

  it('writes once, from the primary that runs the admin listener', async () => {
    const put = await send(admin, 'PUT', '/api/middlewares/limit', { rateLimit: { average: 10 } }, { 'if-none-match': '*' });
    expect(put.status).toBe(201);
    expect(JSON.parse((await etcd.read(`${ROOT}/middlewares/limit`))!)).toEqual({ rateLimit: { average: 10 } });
    const listing = (await (await admin.get('/api/store')).json()) as { objects: unknown[] };
    expect(listing.objects).toEqual([{ kind: 'middlewares', name: 'limit', revision: put.headers.get('etag')!.slice(1, -1), value: { rateLimit: { average: 10 } } }]);
  });
});

describe('a route written through the admin API, read back by the gateway that watches the store', () => {
  let etcd: StoreUnderTest;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await Promise.all([(async () => (etcd = await etcdStore()))(), (async () => (backend = await startBackend({ name: 'echo' })))()]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: ${etcd.url}
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`);
    const adminPort = gateway.adminPort;
    admin = adminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('routes a PUT route and stops routing it after DELETE', async () => {
    const status = async () => (await fetch(`${gateway.url}/written/x`)).status;
    expect(await status()).toBe(404);
    expect((await send(admin, 'PUT', '/api/routes/written', { path: '/written', service: 'echo', stripPrefix: true })).status).toBe(201);
    await waitFor(async () => (await status()) === 200, { timeoutMs: 10_000, message: 'the written route to serve' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    expect((await send(admin, 'DELETE', '/api/routes/written')).status).toBe(200);
    await waitFor(async () => (await status()) === 404, { timeoutMs: 10_000, message: 'the deleted route to answer 404' });
  });

  // Last in this block: it reloads the gateway's file.
  it('writes to the store it reads when a reload points configStore elsewhere or drops it (restart-only), so a PUT route is routed', async () => {
    const adminListen = new URL(admin.url).host;
    const fileWith = (store: string) => `
listen: 127.0.0.1:{{port}}
admin: { listen: ${adminListen}, token: ${TOKEN} }
accessLog: false
${store}
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`;
    const configStoreUrl = async () => ((await (await admin.get('/api/config')).json()) as { configStore?: { url: string } | null }).configStore?.url ?? 'none';
    const routed = async (name: string) => {
      const status = async () => (await fetch(`${gateway.url}/${name}/x`)).status;
      await waitFor(async () => (await status()) === 200, { timeoutMs: 10_000, message: `the route ${name} written after the reload to serve` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
      });
    };

    const elsewhere = etcd.url.replace(ROOT, '/switchboard-elsewhere');
    await gateway.writeConfig(fileWith(`configStore: ${elsewhere}`));
    await waitFor(async () => (await configStoreUrl()) === elsewhere, { timeoutMs: 10_000, message: 'the reload naming another store to apply' });
    expect((await send(admin, 'PUT', '/api/routes/moved', { path: '/moved', service: 'echo', stripPrefix: true })).status).toBe(201);
    expect(await etcd.read(`${ROOT}/routes/moved`)).toBeDefined();
    expect(await etcd.read('/switchboard-elsewhere/routes/moved')).toBeUndefined();
    await routed('moved');

    await gateway.writeConfig(fileWith(''));
    await waitFor(async () => (await configStoreUrl()) === 'none', { timeoutMs: 10_000, message: 'the reload without configStore to apply' });
    expect((await send(admin, 'PUT', '/api/routes/kept', { path: '/kept', service: 'echo', stripPrefix: true })).status).toBe(201);
    await routed('kept');
  });
});
