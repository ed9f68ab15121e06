import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { freePort, logOf, makeTempDir, startBackend, startEtcd, startGateway, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const run = promisify(execFile);
const CONVERGENCE_MS = 20_000;
const PASSWORDS = { root: 'root-secret-2b8e', gateway: 'gateway-secret-6d1f' } as const;
const TOKEN = 'etcd-auth-admin-token-93a0';
const ROOT = '/sb-auth';

/**
 * etcd with authentication on, and a gateway whose etcd user may read the store's prefix and
 * write only its peer entries, as an operator hands out a read-mostly account.
 */
describe('a config store in etcd whose user may read the prefix but not write objects', () => {
  let etcd: EtcdCluster;
  let backend: BackendProcess;
  let dir: string;
  let gateway: GatewayProcess | undefined;
  let admin: AdminClient;

  /** `etcdctl` against the single member, as `user` (`name:password`) when given; resolves its stdout. */
  async function ctl(args: readonly string[], user?: string): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...(user === undefined ? [] : ['--user', user]), ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  beforeAll(async () => {
    [etcd, backend, dir] = await Promise.all([startEtcd(), startBackend({ name: 'etcd-auth' }), makeTempDir('sb-etcd-auth-')]);
    await writeFile(join(dir, 'gateway.password'), `${PASSWORDS.gateway}\n`);
    await ctl(['put', `${ROOT}/routes/stored`, JSON.stringify({ path: '/stored', service: 'echo' })]);
    await ctl(['user', 'add', `root:${PASSWORDS.root}`]);
    await ctl(['user', 'add', `gateway:${PASSWORDS.gateway}`]);
    await ctl(['role', 'add', 'store-reader']);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-reader', 'read', `${ROOT}/`]);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-reader', 'readwrite', `${ROOT}/peers/`]);
    await ctl(['user', 'grant-role', 'gateway', 'store-reader']);
    await ctl(['auth', 'enable']);
    const adminPort = await freePort();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:${adminPort}, token: ${TOKEN} }
configStore:
  url: etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${ROOT}
  timeout: 2s
  snapshot: ${join(dir, 'store-snapshot.json')}
  auth: { username: gateway, passwordFile: ${join(dir, 'gateway.password')} }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`);
    admin = adminClient(`http://127.0.0.1:${adminPort}`, TOKEN);
    await waitFor(async () => (await fetch(`${gateway!.url}/stored`).catch(() => undefined))?.status === 200, { timeoutMs: CONVERGENCE_MS, message: 'the stored route to be routed' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('answers a write etcd refuses with "permission denied" 403 store-forbidden naming the key and the user, not 503 as an outage, and logs it', async () => {
    const put = await admin.get('/api/routes/refused', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/refused', service: 'echo' }) });
    const text = await put.text();
    expect(put.status, text).toBe(403);
    const body = JSON.parse(text) as { error: string; code: string; message: string };
    expect(body).toMatchObject({ error: 'store-forbidden', code: 'SB_CONFIG_STORE_FORBIDDEN' });
    expect(body.message).toContain(`${ROOT}/routes/refused`);
    expect(body.message).toMatch(/etcd user "gateway" lacks the right to write/);
    expect(await ctl(['get', '--keys-only', `${ROOT}/routes/refused`], `root:${PASSWORDS.root}`)).toBe('');
    const removed = await admin.get('/api/routes/stored', { method: 'DELETE' });
    expect(removed.status, await removed.text()).toBe(403);
    expect(await ctl(['get', '--print-value-only', `${ROOT}/routes/stored`], `root:${PASSWORDS.root}`)).toContain('/stored');
    await waitFor(async () => (await logOf(gateway!.process)).includes('SB_CONFIG_STORE_FORBIDDEN'), { timeoutMs: CONVERGENCE_MS, message: 'the gateway to log the refused write' });
    // The store is still read: the stored route stays routed.
    expect((await fetch(`${gateway!.url}/stored`)).status).toBe(200);
    expect(await logOf(gateway!.process)).not.toContain(PASSWORDS.gateway);
  });
});
