import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient } from '../harness/zookeeper-client.ts';
import { asLogged, logOf, makeTempDir, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const PASSWORDS = { admin: 'admin-secret-5e1a', gateway: 'gateway-secret-c83f' } as const;

/** ZooKeeper's digest id of `user` (DigestAuthenticationProvider): `user:base64(sha1(user:password))`. */
function digestId(user: keyof typeof PASSWORDS): string {
  return `${user}:${createHash('sha1').update(`${user}:${PASSWORDS[user]}`).digest('base64')}`;
}

/**
 * A gateway whose ZooKeeper digest user lacks a permission: the log lines and `/api/registries`
 * name the connect string, the user, the node and the permission to grant (with the zkCli
 * `setAcl`), not a bare `getChildren /x: NO_AUTH`, and the gateway keeps serving its file routes.
 */
describe('ZooKeeper refusing the gateway user a permission', () => {
  let zk: ZooKeeperCluster;
  let admin: Client;
  let backend: BackendProcess;
  let dir: string;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    [zk, backend, dir] = await Promise.all([startZooKeeper(), startBackend({ name: 'zk-refusal' }), makeTempDir('sb-zk-refusal-')]);
    await writeFile(join(dir, 'gateway.password'), `${PASSWORDS.gateway}\n`);
    admin = await connectZooKeeperClient(zk.connectString);
    admin.addAuthInfo('digest', Buffer.from(`admin:${PASSWORDS.admin}`));
    const acl = (permission: number, user: keyof typeof PASSWORDS) => new zookeeper.ACL(permission, new zookeeper.Id('digest', digestId(user)));
    const { ALL, READ } = zookeeper.Permission;
    const create = (path: string, acls: InstanceType<typeof zookeeper.ACL>[]) =>
      new Promise<void>((resolve, reject) => admin.create(path, Buffer.alloc(0), acls, zookeeper.CreateMode.PERSISTENT, (error) => (error ? reject(error) : resolve())));
    // The store's root may be listed but nothing created under it (no peers node); the other roots not even listed.
    await create('/zsb', [acl(ALL, 'admin'), acl(READ, 'gateway')]);
    await create('/zsb-locked', [acl(ALL, 'admin')]);
    await create('/services-locked', [acl(ALL, 'admin')]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.process.stop()));
    admin?.close();
    await backend?.process.stop();
    await zk?.close();
  }, 60_000);

  /** Starts a gateway on the store root `root` and the registry root `/services-locked`; resolves it and its admin URL. */
  async function start(root: string, peerId: string): Promise<{ gateway: GatewayProcess; adminUrl: string }> {
    const auth = `auth: { username: gateway, passwordFile: ${join(dir, 'gateway.password')} }`;
    const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
configStore:
  url: "zk://${zk.connectString}${root}"
  timeout: 1s
  snapshot: ${join(dir, `${peerId}-snapshot.json`)}
  ${auth}
peers: { id: ${peerId} }
registries:
  - url: zk://${zk.connectString}/services-locked
    ${auth}
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
    gateways.push(gateway);
    return { gateway, adminUrl: `http://127.0.0.1:${gateway.adminPort}` };
  }

  const logged = (gateway: GatewayProcess, text: string) =>
    waitFor(async () => (await logOf(gateway.process)).includes(asLogged(text)), { timeoutMs: CONVERGENCE_MS, message: `the log to say: ${text}` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${(await logOf(gateway.process)).slice(-4_000)}`);
    });

  it('names the user and the CREATE to grant when the peer entry cannot be created, and READ with setAcl in /api/registries for a registry root it may not list', async () => {
    const { gateway, adminUrl } = await start('/zsb', 'gw-a');
    const refused = `ZooKeeper ${zk.connectString} refused digest user "gateway" the`;
    await logged(gateway, `${refused} CREATE permission on the deepest existing node of /zsb/peers (mkdirp /zsb/peers: NO_AUTH)`);
    await logged(gateway, `setAcl <that node> <those entries>,digest:gateway:<base64 sha1 of gateway:password>:c)`);
    // Reported as a refusal, not as an outage, by the peer entry's registration.
    await logged(gateway, 'registry refused the registration; asking again every 10 s until it is granted');

    const row = await waitFor(
      async () => {
        const { registries } = (await (await fetch(`${adminUrl}/api/registries`)).json()) as { registries: { url: string | null; state: string; reason: string | null }[] };
        return registries.find((registry) => registry.url === `zk://${zk.connectString}/services-locked` && registry.reason?.includes('NO_AUTH'));
      },
      { timeoutMs: CONVERGENCE_MS, message: 'the registry to report why it cannot list' },
    );
    expect(row.state).toBe('connecting');
    expect(row.reason).toBe(
      `${refused} READ permission on /services-locked (getChildren /services-locked: NO_AUTH): grant it there, keeping the node's other ACL entries (zkCli: getAcl /services-locked, then setAcl /services-locked <those entries>,digest:gateway:<base64 sha1 of gateway:password>:r)`,
    );
    // The file's routes still serve; nothing of the password shows.
    expect((await fetch(`${gateway.url}/file`)).status).toBe(200);
    expect(await logOf(gateway.process)).not.toContain(PASSWORDS.gateway);
  });

  it('names the user and the READ to grant when the config store root cannot be listed, in the log and in /api/config', async () => {
    const { gateway, adminUrl } = await start('/zsb-locked', 'gw-b');
    const refusal = `ZooKeeper ${zk.connectString} refused digest user "gateway" the READ permission on /zsb-locked (getChildren /zsb-locked: NO_AUTH)`;
    await logged(gateway, refusal);
    await logged(gateway, `setAcl /zsb-locked <those entries>,digest:gateway:<base64 sha1 of gateway:password>:r)`);
    const store = await waitFor(
      async () => {
        const { store } = (await (await fetch(`${adminUrl}/api/config`)).json()) as { store: { source: string; reason: string | null } };
        return store.reason?.includes('NO_AUTH') ? store : undefined;
      },
      { timeoutMs: CONVERGENCE_MS, message: '/api/config to say why the store is not read' },
    );
    expect(store.source).toBe('none');
    expect(store.reason).toContain(`${refusal}: grant it there`);
    expect((await fetch(`${gateway.url}/file`)).status).toBe(200);
  });
});
