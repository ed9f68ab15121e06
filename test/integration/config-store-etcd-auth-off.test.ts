import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, makeTempDir, startBackend, startEtcd, startGateway, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const run = promisify(execFile);
const CONVERGENCE_MS = 20_000;
const PASSWORD = 'gateway-secret-off-81c2';
const TOKEN = 'etcd-auth-off-admin-token-4e17';
const ROOT = '/sb-auth-off';

/**
 * etcd with authentication off and a gateway given `auth` anyway (say, before an operator turns it
 * on): etcd answers Authenticate "authentication is not enabled", and etcd's own client (clientv3,
 * so etcdctl) then goes on without a token, as etcd ignores credentials while auth is off.
 */
describe('a config store and a registry with auth in an etcd whose authentication is off', () => {
  let etcd: EtcdCluster;
  let backend: BackendProcess;
  let dir: string;
  let gateway: GatewayProcess | undefined;
  let admin: AdminClient;

  async function ctl(args: readonly string[]): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  async function converge<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    return waitFor(check, { timeoutMs: CONVERGENCE_MS, message: what }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${gateway ? (await logOf(gateway.process)).slice(-4_000) : ''}`);
    });
  }

  beforeAll(async () => {
    [etcd, backend, dir] = await Promise.all([startEtcd(), startBackend({ name: 'etcd-auth-off' }), makeTempDir('sb-etcd-auth-off-')]);
    await writeFile(join(dir, 'gateway.password'), `${PASSWORD}\n`);
    await ctl(['put', `${ROOT}/routes/stored`, JSON.stringify({ path: '/stored', service: 'echo' })]);
    await ctl(['put', '/services-off/registered/a', JSON.stringify({ host: '127.0.0.1', port: backend.port })]);
    const hostPort = etcd.endpoints[0]!.replace(/^http:\/\//, '');
    const auth = `auth: { username: gateway, passwordFile: ${join(dir, 'gateway.password')} }`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
configStore:
  url: etcd://${hostPort}${ROOT}
  timeout: 2s
  snapshot: ${join(dir, 'store-snapshot.json')}
  ${auth}
registries:
  - url: etcd://${hostPort}/services-off
    ${auth}
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { path: /registered, service: registered }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('reads the store, takes an admin write and says nothing is wrong in GET /api/config', async () => {
    await converge('the stored route to be routed', async () => (await fetch(`${gateway!.url}/stored`).catch(() => undefined))?.status === 200);
    const put = await admin.get('/api/routes/written', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/written', service: 'echo' }) });
    const text = await put.text();
    expect(put.status, text).toBeLessThan(300);
    expect(await ctl(['get', '--print-value-only', `${ROOT}/routes/written`])).toContain('/written');
    await converge('the written route to be routed', async () => (await fetch(`${gateway!.url}/written`).catch(() => undefined))?.status === 200);
    const { store } = (await (await admin.get('/api/config')).json()) as { store: { source: string; reason: string | null } };
    expect(store).toMatchObject({ source: 'store', reason: null });
    expect(await logOf(gateway!.process)).not.toContain(PASSWORD);
  });

  it('lists the etcd registry and routes to its instance', async () => {
    await converge('the registered instance to be routed', async () => (await fetch(`${gateway!.url}/registered`).catch(() => undefined))?.status === 200);
    const { registries } = (await (await admin.get('/api/registries')).json()) as { registries: { url: string | null; reason: string | null }[] };
    expect(registries.find((registry) => registry.url?.endsWith('/services-off'))).toMatchObject({ reason: null });
    // Nothing (store, registry, peer registration) failed on the login.
    expect(await logOf(gateway!.process)).not.toContain('authentication is not enabled');
  });

  it('logs in once an operator turns authentication on, and writes as its user', async () => {
    await ctl(['user', 'add', 'root:root-secret-off-19d4']);
    await ctl(['user', 'add', `gateway:${PASSWORD}`]);
    await ctl(['role', 'add', 'store-writer']);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-writer', 'readwrite', `${ROOT}/`]);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-writer', 'read', '/services-off/']);
    await ctl(['user', 'grant-role', 'gateway', 'store-writer']);
    await ctl(['auth', 'enable']);
    // Without a login before this call the gateway would be refused "user name is empty" (403).
    const put = await admin.get('/api/routes/after-enable', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/after-enable', service: 'echo' }) });
    const text = await put.text();
    expect(put.status, text).toBeLessThan(300);
    expect(await ctl(['--user', 'root:root-secret-off-19d4', 'get', '--print-value-only', `${ROOT}/routes/after-enable`])).toContain('/after-enable');
  });

  it('keeps following the store and the registry through the watches it opened before authentication was on', async () => {
    // etcd checks a watch's rights only when it is created: the two watches opened without a token
    // go on delivering, and the stall probes (unary reads) log in as the gateway's user.
    const root = ['--user', 'root:root-secret-off-19d4'];
    await ctl([...root, 'put', `${ROOT}/routes/late`, JSON.stringify({ path: '/late', service: 'late' })]);
    await ctl([...root, 'put', '/services-off/late/a', JSON.stringify({ host: '127.0.0.1', port: backend.port })]);
    await converge('the route and instance written after auth was on to be routed', async () => (await fetch(`${gateway!.url}/late`).catch(() => undefined))?.status === 200);
    const { registries } = (await (await admin.get('/api/registries')).json()) as { registries: { url: string | null; reason: string | null }[] };
    expect(registries.find((registry) => registry.url?.endsWith('/services-off'))).toMatchObject({ reason: null });
    const log = await logOf(gateway!.process);
    // Neither watch was refused or replaced (a session end would re-list, and a watch re-opened on a
    // stream without a token is refused "user name is empty").
    expect(log).not.toContain('session ended');
    expect(log).not.toContain('user name is empty');
    expect(log).not.toContain('permission denied');
  });
});
