import { createHash } from 'node:crypto';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient } from '../harness/zookeeper-client.ts';
import { logOf, startBackend, startGateway, startTcpProxy, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type TcpProxy, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const ADMIN_PASSWORD = 'admin-secret-provider-partial-3c91';
const ROOT = '/services-partial';

type Acl = InstanceType<typeof zookeeper.ACL>;

interface RegistryRow {
  readonly url: string | null;
  readonly state: string;
  readonly reason: string | null;
}

/**
 * A ZooKeeper registry of which one service's node the gateway may not read (an operator's ACL)
 * while the others read: the others are served, `/api/registries` names the refused node and why
 * for as long as it is refused (before and after the registry was first read whole), and says
 * nothing once it reads. One-shot watches: a recursive watch does not report a node the client may
 * not read (CVE-2024-23944), so the gateway would not learn of a service created refused.
 */
describe('a ZooKeeper registry with one service the gateway may not read', () => {
  let zk: ZooKeeperCluster;
  let admin: Client;
  let backend: BackendProcess;
  let gateway: GatewayProcess | undefined;
  /** Between the gateway and ZooKeeper, to cut its connection. */
  let proxy: TcpProxy;
  let adminUrl: string;
  const world: Acl[] = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  const adminOnly: Acl[] = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', `admin:${createHash('sha1').update(`admin:${ADMIN_PASSWORD}`).digest('base64')}`))];

  const call = (run: (done: (error: unknown) => void) => void) => new Promise<void>((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
  const create = (path: string, data: Buffer, acls = world) => call((done) => admin.create(path, data, acls, zookeeper.CreateMode.PERSISTENT, done));
  const setAcl = (path: string, acls: Acl[]) => call((done) => admin.setACL(path, acls, -1, done));
  /** Creates `<ROOT>/<service>` with `acls` and one instance (the backend) under it. */
  const register = async (service: string, acls: Acl[]) => {
    await create(`${ROOT}/${service}`, Buffer.alloc(0), acls);
    await create(`${ROOT}/${service}/one`, Buffer.from(JSON.stringify({ host: '127.0.0.1', port: backend.port })));
  };

  async function row(): Promise<RegistryRow | undefined> {
    const { registries } = (await (await fetch(`${adminUrl}/api/registries`)).json()) as { registries: RegistryRow[] };
    return registries.find((registry) => registry.url?.includes(ROOT));
  }

  async function status(path: string): Promise<number | string> {
    return (await fetch(`${gateway!.url}${path}`).catch((error: Error) => ({ status: error.message }))).status;
  }

  async function converge<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    return waitFor(check, { timeoutMs: CONVERGENCE_MS, message: what }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await row())}\n${gateway ? (await logOf(gateway.process)).slice(-4_000) : ''}`);
    });
  }

  beforeAll(async () => {
    [zk, backend] = await Promise.all([startZooKeeper(), startBackend({ name: 'zk-provider-partial' })]);
    admin = await connectZooKeeperClient(zk.connectString);
    admin.addAuthInfo('digest', Buffer.from(`admin:${ADMIN_PASSWORD}`));
    await create(ROOT, Buffer.alloc(0));
    await register('open', world);
    await register('locked', adminOnly);
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(zk.connectString.split(',')[0]!.split(':')[1]) });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
registries:
  - url: "zk://${proxy.address}${ROOT}?watch=one-shot"
routes:
  - { path: /open, service: open }
  - { path: /locked, service: locked }
  - { path: /later, service: later }
`);
    adminUrl = `http://127.0.0.1:${gateway.adminPort}`;
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await proxy?.close();
    admin?.close();
    await backend?.process.stop();
    await zk?.close();
  }, 60_000);

  it('serves the readable services, names the refused one until it reads, then says nothing is wrong', async () => {
    await converge('the readable service to be routed', async () => (await status('/open')) === 200);
    const refused = await converge('/api/registries to name the refused service', async () => {
      const current = await row();
      return current?.reason?.includes(`${ROOT}/locked`) ? current : undefined;
    });
    expect(refused.reason).toContain('NO_AUTH');
    // Still refused after more of the registry was read (a new readable service).
    await register('later', world);
    await converge('the new readable service to be routed', async () => (await status('/later')) === 200);
    expect((await row())?.reason, 'the locked service is still unreadable').toContain(`${ROOT}/locked`);
    await setAcl(`${ROOT}/locked`, world);
    await converge('the formerly refused service to be routed', async () => (await status('/locked')) === 200);
    await converge('/api/registries to say nothing is wrong', async () => ((await row())?.reason === null ? true : undefined));
    expect((await row())?.state).toBe('connected');
  });

  it('names a service created refused once the registry had been read whole, and clears it once it reads', async () => {
    await register('late-locked', adminOnly);
    const refused = await converge('/api/registries to name the service created refused', async () => {
      const current = await row();
      return current?.reason?.includes(`${ROOT}/late-locked`) ? current : undefined;
    });
    expect(refused.reason).toContain('NO_AUTH');
    expect(await status('/open')).toBe(200);
    await setAcl(`${ROOT}/late-locked`, world);
    await converge('/api/registries to say nothing is wrong', async () => ((await row())?.reason === null ? true : undefined));
    // Warned about once, not at every retry (the status kept naming it meanwhile).
    const warnings = (await logOf(gateway!.process)).split('\n').filter((line) => line.includes(`"path":"${ROOT}/late-locked"`) && line.includes('"level":40'));
    expect(warnings).toHaveLength(1);
  });

  it('names a refused service again, connected, once it is back from a lost connection, instead of staying stale', async () => {
    await register('blip-locked', adminOnly);
    await converge('/api/registries to name the refused service', async () => ((await row())?.reason?.includes(`${ROOT}/blip-locked`) ? true : undefined));
    proxy.cut();
    await converge('the registry to be stale while cut off', async () => ((await row())?.state === 'stale' ? true : undefined));
    proxy.restore();
    // Every other service reads again: the registry is connected, and still names the refused node.
    const back = await converge('the registry to be connected again, naming the refused service', async () => {
      const current = await row();
      return current?.state === 'connected' ? current : undefined;
    });
    expect(back.reason).toContain(`${ROOT}/blip-locked`);
    expect(await status('/open')).toBe(200);

    // The root itself refused across a lost connection: nothing can be listed (stale, the last sets
    // kept), and the reason is the refusal, not the connection that is back.
    await setAcl(ROOT, adminOnly);
    proxy.cut();
    await converge('the registry to be stale while cut off', async () => ((await row())?.state === 'stale' ? true : undefined));
    proxy.restore();
    // The root's refusal, first or after the service's (the same session goes on retrying it).
    const namesRoot = new RegExp(`${ROOT} \\(getChildren ${ROOT}: NO_AUTH\\)|\\(and 1 more unreadable node\\)$`);
    await converge('the reason to name the refused root', async () => ((await row())?.reason?.match(namesRoot) ? true : undefined));
    expect(await row()).toMatchObject({ state: 'stale' });
    expect(await status('/open')).toBe(200);
  });
});
