import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zookeeper, { type ACL, type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient } from '../harness/zookeeper-client.ts';
import { logOf, makeTempDir, startAgent, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const PASSWORDS = { admin: 'admin-secret-91c2', agent: 'agent-secret-4d7e', gateway: 'gateway-secret-0b5a' } as const;

/** ZooKeeper's digest id of `user` (DigestAuthenticationProvider): `user:base64(sha1(user:password))`. */
function digestId(user: keyof typeof PASSWORDS): string {
  return `${user}:${createHash('sha1').update(`${user}:${PASSWORDS[user]}`).digest('base64')}`;
}

/** A node-zookeeper-client call as a promise (the library's callbacks take its Exception, or null). */
function call<T>(start: (done: (error: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error as Error) : resolve(value as T))));
}

/** The error code name a ZooKeeper call failed with (`NO_AUTH`…), or `ok`. */
async function outcome(start: (done: (error: unknown) => void) => void): Promise<string> {
  try {
    await call(start);
    return 'ok';
  } catch (error) {
    return (error as { name?: string }).name ?? String(error);
  }
}

/**
 * ZooKeeper digest authentication: a root only the agent's user may write and only the gateway's
 * user (and the agent's) may list, as an operator locks a shared ensemble down.
 */
describe('ZooKeeper digest authentication: the agent writes and the gateway reads a locked-down root', () => {
  let zk: ZooKeeperCluster;
  let admin: Client;
  let anonymous: Client;
  let backend: BackendProcess;
  let dir: string;
  const agents: ManagedProcess[] = [];
  let gateway: GatewayProcess | undefined;

  const agentArgs = (id: string, extra: string[] = []) => ['--registry', `zk://${zk.connectString}/secure`, '--service', 'user', '--id', id, '--port', String(backend.port), '--health', 'tcp', '--interval', '200ms', '--rise', '1', ...extra];

  beforeAll(async () => {
    [zk, backend, dir] = await Promise.all([startZooKeeper(), startBackend({ name: 'zk-auth' }), makeTempDir('sb-zk-auth-')]);
    for (const user of Object.keys(PASSWORDS) as (keyof typeof PASSWORDS)[]) await writeFile(join(dir, `${user}.password`), `${PASSWORDS[user]}\n`);
    await writeFile(join(dir, 'wrong.password'), 'not-the-password\n');
    admin = await connectZooKeeperClient(zk.connectString);
    admin.addAuthInfo('digest', Buffer.from(`admin:${PASSWORDS.admin}`));
    anonymous = await connectZooKeeperClient(zk.connectString);
    const acl = (permission: number, id: string) => new zookeeper.ACL(permission, new zookeeper.Id('digest', id));
    const { ALL, READ } = zookeeper.Permission;
    await call<string>((done) => admin.create('/secure', Buffer.alloc(0), [acl(ALL, digestId('admin')), acl(ALL, digestId('agent')), acl(READ, digestId('gateway'))], zookeeper.CreateMode.PERSISTENT, done));
    expect(await outcome((done) => anonymous.getChildren('/secure', done))).toBe('NO_AUTH');
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(agents.map((agent) => agent.stop()));
    admin?.close();
    anonymous?.close();
    await backend?.process.stop();
    await zk?.close();
  }, 60_000);

  it('refuses the agent without credentials (NO_AUTH in its log), and registers it with them: its node can be changed only by its user, read by anyone', async () => {
    const unauthenticated = await startAgent(agentArgs('user-1'));
    agents.push(unauthenticated);
    await waitFor(async () => (await logOf(unauthenticated)).includes('NO_AUTH'), { timeoutMs: CONVERGENCE_MS, message: 'the agent without credentials to log NO_AUTH' });
    expect(await outcome((done) => admin.exists('/secure/user', done))).toBe('ok');
    expect(await call((done) => admin.exists('/secure/user', done))).toBeNull();
    await unauthenticated.stop();

    agents.push(await startAgent(agentArgs('user-1', ['--zk-username', 'agent', '--zk-password-file', join(dir, 'agent.password')])));
    await waitFor(async () => (await call<unknown>((done) => admin.exists('/secure/user/user-1', done))) !== null, { timeoutMs: CONVERGENCE_MS, message: 'the authenticated agent to register' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(agents.at(-1)!)}`);
    });
    for (const path of ['/secure/user', '/secure/user/user-1']) {
      const acls = await call<ACL[]>((done) => admin.getACL(path, (error, value) => done(error, value)));
      // ZooKeeper shows a digest id's hash only to a client with ADMIN on the node ("agent:x" here);
      // the library names the rights `permission` (its type definitions, `perms`).
      expect(acls.map((entry) => [entry.id.scheme, entry.id.id.split(':')[0], (entry as unknown as { permission: number }).permission]).sort()).toEqual([
        ['digest', 'agent', zookeeper.Permission.ALL],
        ['world', 'anyone', zookeeper.Permission.READ],
      ]);
    }
    expect(JSON.parse((await call<Buffer>((done) => anonymous.getData('/secure/user/user-1', done))).toString())).toMatchObject({ port: backend.port });
    expect(await outcome((done) => anonymous.remove('/secure/user/user-1', -1, done))).toBe('NO_AUTH');
    expect(await outcome((done) => anonymous.setData('/secure/user/user-1', Buffer.from('{}'), -1, done))).toBe('NO_AUTH');
  });

  it('lists the root with the gateway user and routes to the instance; a wrong password is fixed by rewriting the password file alone', async () => {
    const passwordFile = join(dir, 'gateway-now.password');
    await writeFile(passwordFile, 'not-the-password\n');
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
registries:
  - url: zk://${zk.connectString}/secure
    auth: { username: gateway, passwordFile: ${passwordFile} }
routes:
  - { namespace: true }
`);
    const adminPort = gateway.adminPort;
    const who = async () => {
      const response = await fetch(`${gateway!.url}/user/who`);
      return response.status === 200 ? ((await response.json()) as { name: string }).name : `status ${response.status}`;
    };
    const registries = async () => ((await (await fetch(`http://127.0.0.1:${adminPort}/api/registries`)).json()) as { registries: { state: string; reason: string | null }[] }).registries;
    // With the wrong password the session is not the gateway's user: the root cannot be listed.
    await waitFor(async () => (await logOf(gateway!.process)).includes('NO_AUTH'), { timeoutMs: CONVERGENCE_MS, message: 'the gateway to log NO_AUTH listing the root' });
    expect(await who()).not.toBe('zk-auth');
    expect((await registries())[0]?.state).not.toBe('connected');

    // The configuration text is the same; only the file it names changes (as a rotated secret would).
    await writeFile(passwordFile, `${PASSWORDS.gateway}\n`);
    await waitFor(async () => (await who()) === 'zk-auth', { timeoutMs: CONVERGENCE_MS, message: 'the gateway to list the root with the right password and route' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!.process)}`);
    });
    expect((await registries())[0]?.state).toBe('connected');
    expect(await logOf(gateway.process)).not.toContain(PASSWORDS.gateway);
  });
});

/**
 * A config store on ZooKeeper with digest authentication: a root only the store's user may use, as
 * an operator locks a shared ensemble down. What the gateway writes (objects, their kinds' nodes, its
 * peer entry) is its user's alone, reading included: objects carry credential headers and key digests.
 */
describe('ZooKeeper digest authentication: the config store on a locked-down root', () => {
  const TOKEN = 'zk-auth-store-token';
  const ROOT = '/store-secure';
  let zk: ZooKeeperCluster;
  let admin: Client;
  let storeUser: Client;
  let anonymous: Client;
  let backend: BackendProcess;
  let gateway: GatewayProcess | undefined;
  let adminUrl: string;

  beforeAll(async () => {
    let dir: string;
    [zk, backend, dir] = await Promise.all([startZooKeeper(), startBackend({ name: 'zk-auth-store' }), makeTempDir('sb-zk-auth-store-')]);
    await writeFile(join(dir, 'gateway.password'), `${PASSWORDS.gateway}\n`);
    admin = await connectZooKeeperClient(zk.connectString);
    admin.addAuthInfo('digest', Buffer.from(`admin:${PASSWORDS.admin}`));
    storeUser = await connectZooKeeperClient(zk.connectString);
    storeUser.addAuthInfo('digest', Buffer.from(`gateway:${PASSWORDS.gateway}`));
    anonymous = await connectZooKeeperClient(zk.connectString);
    const acl = (id: string) => new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', id));
    await call<string>((done) => admin.create(ROOT, Buffer.alloc(0), [acl(digestId('admin')), acl(digestId('gateway'))], zookeeper.CreateMode.PERSISTENT, done));
    expect(await outcome((done) => anonymous.getChildren(ROOT, done))).toBe('NO_AUTH');
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
configStore: { url: "zk://${zk.connectString}${ROOT}", timeout: 5s, auth: { username: gateway, passwordFile: ${join(dir, 'gateway.password')} } }
peers: { id: gw-secure }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
    const adminPort = gateway.adminPort;
    adminUrl = `http://127.0.0.1:${adminPort}`;
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    admin?.close();
    storeUser?.close();
    anonymous?.close();
    await backend?.process.stop();
    await zk?.close();
  }, 60_000);

  /** The ACL of `path` as [scheme, user, rights], sorted (read as the store's user: the operator's admin user has no right on these nodes). */
  const aclOf = async (path: string) =>
    (await call<ACL[]>((done) => storeUser.getACL(path, (error, value) => done(error, value)))).map((entry) => [entry.id.scheme, entry.id.id.split(':')[0], (entry as unknown as { permission: number }).permission]).sort();

  it('writes an object through the admin API and routes it; the nodes it created can be read and changed by its user alone', async () => {
    const status = async (path: string) => (await fetch(`${gateway!.url}${path}`, { headers: { connection: 'close' } }).catch(() => undefined))?.status ?? 0;
    const put = await fetch(`${adminUrl}/api/routes/stored`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ path: '/stored', service: 'echo' }) });
    expect(put.status, await put.text()).toBe(201);
    // Read back by the gateway's own watch, through the same authenticated session kind.
    await waitFor(async () => (await status('/stored')) === 200, { timeoutMs: CONVERGENCE_MS, message: 'the stored route to be routed' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!.process)}`);
    });
    const owner = [['digest', 'gateway', zookeeper.Permission.ALL]];
    for (const path of [`${ROOT}/routes`, `${ROOT}/routes/stored`]) expect(await aclOf(path), path).toEqual(owner);
    expect(await outcome((done) => anonymous.getData(`${ROOT}/routes/stored`, done))).toBe('NO_AUTH');
    expect(await outcome((done) => anonymous.setData(`${ROOT}/routes/stored`, Buffer.from('{}'), -1, done))).toBe('NO_AUTH');
    expect(await outcome((done) => anonymous.remove(`${ROOT}/routes/stored`, -1, done))).toBe('NO_AUTH');
    expect(JSON.parse((await call<Buffer>((done) => storeUser.getData(`${ROOT}/routes/stored`, done))).toString())).toMatchObject({ path: '/stored', service: 'echo' });

    await waitFor(async () => (await call<unknown>((done) => storeUser.exists(`${ROOT}/peers/gw-secure`, done))) !== null, { timeoutMs: CONVERGENCE_MS, message: 'the gateway to register as a peer' });
    for (const path of [`${ROOT}/peers`, `${ROOT}/peers/gw-secure`]) expect(await aclOf(path), path).toEqual(owner);
    const peers = (await (await fetch(`${adminUrl}/api/peers`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { peers: { id: string }[] };
    expect(peers.peers.map((peer) => peer.id)).toEqual(['gw-secure']);
    expect(await logOf(gateway!.process)).not.toContain(PASSWORDS.gateway);
  });

  it('answers a write under a kind node its user may not write 403 store-forbidden naming the node, not 503 as an outage, and logs it', async () => {
    // An operator pre-created the services node and granted the gateway's user reading only.
    const acl = (permission: number, user: keyof typeof PASSWORDS) => new zookeeper.ACL(permission, new zookeeper.Id('digest', digestId(user)));
    const { ALL, READ } = zookeeper.Permission;
    await call<string>((done) => admin.create(`${ROOT}/services`, Buffer.alloc(0), [acl(ALL, 'admin'), acl(READ, 'gateway')], zookeeper.CreateMode.PERSISTENT, done));
    const put = await fetch(`${adminUrl}/api/services/locked`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ instances: [`127.0.0.1:${backend.port}`] }) });
    const text = await put.text();
    expect(put.status, text).toBe(403);
    const body = JSON.parse(text) as { error: string; code: string; message: string };
    expect(body).toMatchObject({ error: 'store-forbidden', code: 'SB_CONFIG_STORE_FORBIDDEN' });
    expect(body.message).toContain(`${ROOT}/services`);
    expect(body.message).toContain(`user "gateway" lacks the CREATE permission on ${ROOT}/services (NO_AUTH)`);
    expect(body.message).toContain(`setAcl ${ROOT}/services <those entries>,digest:gateway:<base64 sha1 of gateway:password>:c`);
    expect(await call<unknown>((done) => storeUser.exists(`${ROOT}/services/locked`, done))).toBeNull();
    await waitFor(async () => (await logOf(gateway!.process)).includes('SB_CONFIG_STORE_FORBIDDEN'), { timeoutMs: CONVERGENCE_MS, message: 'the gateway to log the refused write' });
  });

  it('answers a write with a wrong password 403 store-forbidden that says to check the password file, not 503 as an outage, and /api/config says why it reads nothing', async () => {
    // ZooKeeper takes the wrong password (addauth never fails for digest) and refuses the identity it makes.
    const wrongPassword = 'stale-secret-e61d';
    const dir = await makeTempDir('sb-zk-auth-wrong-');
    await writeFile(join(dir, 'gateway.password'), `${wrongPassword}\n`);
    const mistyped = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
configStore: { url: "zk://${zk.connectString}${ROOT}", timeout: 1s, snapshot: ${join(dir, 'snapshot.json')}, auth: { username: gateway, passwordFile: ${join(dir, 'gateway.password')} } }
peers: { id: gw-mistyped }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
    const adminPort = mistyped.adminPort;
    try {
      const mistypedAdmin = `http://127.0.0.1:${adminPort}`;
      const put = await fetch(`${mistypedAdmin}/api/routes/mistyped`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ path: '/mistyped', service: 'echo' }) });
      const text = await put.text();
      expect(put.status, text).toBe(403);
      const body = JSON.parse(text) as { error: string; code: string; message: string };
      expect(body).toMatchObject({ error: 'store-forbidden', code: 'SB_CONFIG_STORE_FORBIDDEN' });
      expect(body.message).toContain(`config store zk://${zk.connectString}${ROOT}`);
      expect(body.message).toContain('user "gateway" lacks the CREATE permission');
      expect(body.message).toContain('if configStore.auth.passwordFile holds another password than the one the node\'s ACL was made with, correct the file');
      expect(text).not.toContain(wrongPassword);
      expect(await call<unknown>((done) => storeUser.exists(`${ROOT}/routes/mistyped`, done))).toBeNull();
      const store = await waitFor(
        async () => {
          const { store } = (await (await fetch(`${mistypedAdmin}/api/config`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { store: { source: string; reason: string | null } };
          return store.reason?.includes('NO_AUTH') ? store : undefined;
        },
        { timeoutMs: CONVERGENCE_MS, message: '/api/config to say why the store is not read' },
      );
      expect(store.reason).toContain(`refused digest user "gateway" the READ permission on ${ROOT}`);
      expect((await fetch(`${mistyped.url}/file`)).status).toBe(200);
      expect(await logOf(mistyped.process)).not.toContain(wrongPassword);
    } finally {
      await mistyped.process.stop();
    }
  });
});
