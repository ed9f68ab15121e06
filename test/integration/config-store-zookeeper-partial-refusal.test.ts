import { createHash } from 'node:crypto';
import { join } from 'node:path';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient } from '../harness/zookeeper-client.ts';
import { logOf, makeTempDir, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const ADMIN_PASSWORD = 'admin-secret-partial-7b20';
const ROOT = '/zsb-partial';

type Acl = InstanceType<typeof zookeeper.ACL>;

/**
 * A ZooKeeper config store of which one kind's node stops being readable by the gateway (an
 * operator's setAcl) while the other kinds still read: `/api/config` keeps saying why until that
 * kind reads again, also across listings of the other kinds, then clears. One-shot watches: the
 * kind's child watch tells the gateway of an object it may not read (a recursive watch's event on
 * that object's own path is not reported to a client without READ there, CVE-2024-23944).
 */
describe('a ZooKeeper config store with one kind the gateway may not read', () => {
  let zk: ZooKeeperCluster;
  let admin: Client;
  let backend: BackendProcess;
  let gateway: GatewayProcess | undefined;
  let adminUrl: string;
  const world: Acl[] = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  const adminOnly: Acl[] = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', `admin:${createHash('sha1').update(`admin:${ADMIN_PASSWORD}`).digest('base64')}`))];

  /** Runs one node-zookeeper-client call; resolves when it succeeded. */
  const call = (run: (done: (error: unknown) => void) => void) => new Promise<void>((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
  const create = (path: string, data: unknown, acls = world) => call((done) => admin.create(path, Buffer.from(JSON.stringify(data)), acls, zookeeper.CreateMode.PERSISTENT, done));
  const setAcl = (path: string, acls: Acl[]) => call((done) => admin.setACL(path, acls, -1, done));
  const remove = (path: string) => call((done) => admin.remove(path, -1, done));

  async function store(): Promise<{ source: string; revision: string | null; reason: string | null }> {
    return ((await (await fetch(`${adminUrl}/api/config`)).json()) as { store: { source: string; revision: string | null; reason: string | null } }).store;
  }

  async function status(path: string): Promise<number | string> {
    return (await fetch(`${gateway!.url}${path}`).catch((error: Error) => ({ status: error.message }))).status;
  }

  async function converge<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    return waitFor(check, { timeoutMs: CONVERGENCE_MS, message: what }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await store())}\n${gateway ? (await logOf(gateway.process)).slice(-4_000) : ''}`);
    });
  }

  beforeAll(async () => {
    let dir: string;
    [zk, backend, dir] = await Promise.all([startZooKeeper(), startBackend({ name: 'zk-partial' }), makeTempDir('sb-zk-partial-')]);
    admin = await connectZooKeeperClient(zk.connectString);
    admin.addAuthInfo('digest', Buffer.from(`admin:${ADMIN_PASSWORD}`));
    await call((done) => admin.create(ROOT, Buffer.alloc(0), world, zookeeper.CreateMode.PERSISTENT, done));
    await call((done) => admin.create(`${ROOT}/routes`, Buffer.alloc(0), world, zookeeper.CreateMode.PERSISTENT, done));
    await call((done) => admin.create(`${ROOT}/services`, Buffer.alloc(0), world, zookeeper.CreateMode.PERSISTENT, done));
    await create(`${ROOT}/routes/first`, { path: '/first', service: 'echo' });
    await create(`${ROOT}/services/echo`, { instances: [`127.0.0.1:${backend.port}`] });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
configStore:
  url: "zk://${zk.connectString}${ROOT}?watch=one-shot"
  timeout: 1s
  snapshot: ${join(dir, 'snapshot.json')}
routes:
  - { name: file-route, path: /file, service: echo }
`);
    adminUrl = `http://127.0.0.1:${gateway.adminPort}`;
    await converge('the stored route to be routed', async () => (await status('/first')) === 200);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    admin?.close();
    await backend?.process.stop();
    await zk?.close();
  }, 60_000);

  it('keeps the reason while the routes cannot be read and other kinds are, and clears it once they are read', async () => {
    // A route the admin alone may read: the routes cannot be read whole.
    await create(`${ROOT}/routes/second`, { path: '/second', service: 'echo' }, adminOnly);
    const refused = await converge('/api/config to say the routes cannot be read', async () => {
      const current = await store();
      return current.reason?.includes(`${ROOT}/routes/second`) ? current : undefined;
    });
    expect(refused.reason).toContain('NO_AUTH');
    // Another kind changes and is applied: a new revision in force, from a listing without the routes read.
    await create(`${ROOT}/services/other`, { instances: [`127.0.0.1:${backend.port}`] });
    const later = await converge('the new service to be applied', async () => {
      const current = await store();
      return current.revision !== refused.revision ? current : undefined;
    });
    expect(later.reason, 'the routes are still unreadable').toContain(`${ROOT}/routes/second`);
    expect(await status('/first')).toBe(200);
    // Readable again: the routes are read on the next retry and the reason clears.
    await setAcl(`${ROOT}/routes/second`, world);
    await converge('the new route to be routed', async () => (await status('/second')) === 200);
    await converge('/api/config to say nothing is wrong', async () => ((await store()).reason === null ? true : undefined));
  });

  it('clears the reason once the unreadable kind\'s node is deleted, as there is nothing left to read', async () => {
    await create(`${ROOT}/middlewares`, {}, adminOnly);
    await converge('/api/config to say the middlewares cannot be read', async () => ((await store()).reason?.includes(`${ROOT}/middlewares`) ? true : undefined));
    await remove(`${ROOT}/middlewares`);
    await converge('/api/config to say nothing is wrong', async () => ((await store()).reason === null ? true : undefined));
  });
});
