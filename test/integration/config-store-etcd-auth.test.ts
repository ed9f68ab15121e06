import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { asLogged, logOf, makeTempDir, startBackend, startEtcd, startGateway, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const run = promisify(execFile);
const CONVERGENCE_MS = 20_000;
const PASSWORDS = { root: 'root-secret-2b8e', gateway: 'gateway-secret-6d1f', outsider: 'outsider-secret-a47c' } as const;
/** A password etcd does not know for the user "gateway": what a stale or mistyped password file holds. */
const WRONG_PASSWORD = 'stale-secret-5c39';
const TOKEN = 'etcd-auth-admin-token-93a0';
const ROOT = '/sb-auth';
/** The file's own route, served whatever the store holds. */
const FILE_ROUTE = ['routes:', '  - { name: file-route, path: /file, service: echo }'] as const;

/**
 * etcd with authentication on, and a gateway whose etcd user may read the store's prefix and
 * write only its peer entries, as an operator hands out a read-mostly account.
 */
describe('a config store in etcd whose user may read the prefix but not write objects', () => {
  let etcd: EtcdCluster;
  let backend: BackendProcess;
  let dir: string;
  let hostPort: string;
  let gateway: GatewayProcess | undefined;
  let admin: AdminClient;
  /** Every gateway started, stopped after all. */
  const started: GatewayProcess[] = [];

  /** `etcdctl` against the single member, as `user` (`name:password`) when given; resolves its stdout. */
  async function ctl(args: readonly string[], user?: string): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...(user === undefined ? [] : ['--user', user]), ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  /** `auth:` as the user `username` whose password is in the file `password` of the scratch directory. */
  const authAs = (username: string, password: string): string => `auth: { username: ${username}, passwordFile: ${join(dir, `${password}.password`)} }`;

  /**
   * A gateway on the store (its own snapshot `<name>-snapshot.json`), with its own admin listener and
   * `storeLines` (indented under configStore: auth, timeout) and `lines` (top level) added; its admin
   * API asks for `adminToken` (none when null).
   */
  async function storeGateway(name: string, storeLines: readonly string[], lines: readonly string[] = [], adminToken: string | null = TOKEN): Promise<{ gateway: GatewayProcess; admin: AdminClient; adminPort: number }> {
    const one = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}${adminToken === null ? '' : `, token: ${adminToken}`} }
configStore:
  url: etcd://${hostPort}${ROOT}
  snapshot: ${join(dir, `${name}-snapshot.json`)}
${storeLines.map((line) => `  ${line}`).join('\n')}
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
${lines.join('\n')}
`);
    const adminPort = one.adminPort;
    started.push(one);
    return { gateway: one, admin: adminClient(`http://127.0.0.1:${adminPort}`, adminToken ?? undefined), adminPort };
  }

  beforeAll(async () => {
    [etcd, backend, dir] = await Promise.all([startEtcd(), startBackend({ name: 'etcd-auth' }), makeTempDir('sb-etcd-auth-')]);
    hostPort = etcd.endpoints[0]!.replace(/^http:\/\//, '');
    for (const user of ['gateway', 'outsider'] as const) await writeFile(join(dir, `${user}.password`), `${PASSWORDS[user]}\n`);
    await writeFile(join(dir, 'wrong.password'), `${WRONG_PASSWORD}\n`);
    await ctl(['put', `${ROOT}/routes/stored`, JSON.stringify({ path: '/stored', service: 'echo' })]);
    await ctl(['user', 'add', `root:${PASSWORDS.root}`]);
    await ctl(['user', 'add', `gateway:${PASSWORDS.gateway}`]);
    await ctl(['role', 'add', 'store-reader']);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-reader', 'read', `${ROOT}/`]);
    await ctl(['role', 'grant-permission', '--prefix=true', 'store-reader', 'readwrite', `${ROOT}/peers/`]);
    await ctl(['user', 'grant-role', 'gateway', 'store-reader']);
    // A user whose role covers another prefix only: it may read nothing of the store.
    await ctl(['user', 'add', `outsider:${PASSWORDS.outsider}`]);
    await ctl(['role', 'add', 'elsewhere']);
    await ctl(['role', 'grant-permission', '--prefix=true', 'elsewhere', 'readwrite', '/elsewhere/']);
    await ctl(['user', 'grant-role', 'outsider', 'elsewhere']);
    // A user for a client certificate's CN (etcd 3.4+): etcd refuses any password given for it.
    await ctl(['user', 'add', 'certonly', '--no-password']);
    await ctl(['user', 'grant-role', 'certonly', 'store-reader']);
    await ctl(['auth', 'enable']);
    ({ gateway, admin } = await storeGateway('store', ['timeout: 2s', authAs('gateway', 'gateway')]));
    await waitFor(async () => (await fetch(`${gateway!.url}/stored`).catch(() => undefined))?.status === 200, { timeoutMs: CONVERGENCE_MS, message: 'the stored route to be routed' });
  }, 60_000);

  afterAll(async () => {
    for (const process of started.reverse()) await process.process.stop();
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

  it('says which user may not read which prefix, for the config store, the peer list, the peer entry and an etcd registry, and keeps serving', async () => {
    const auth = authAs('outsider', 'outsider');
    const { gateway: outsider, adminPort } = await storeGateway('outsider', ['timeout: 1s', auth], ['registries:', `  - url: etcd://${hostPort}/services`, `    ${auth}`, ...FILE_ROUTE], null);
    const refusal = (right: string, key: string) => `refused etcd user "outsider" the right to ${right} ${key} (permission denied)`;
    const logged = (text: string) =>
      waitFor(async () => (await logOf(outsider.process)).includes(asLogged(text)), { timeoutMs: CONVERGENCE_MS, message: `the log to say: ${text}` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${(await logOf(outsider.process)).slice(-4_000)}`);
      });
    await logged(refusal('read', `${ROOT}/`));
    await logged(refusal('read', `${ROOT}/peers/`));
    await logged(`refused etcd user "outsider" the right to write ${ROOT}/peers/`);
    await logged(`(etcdctl role grant-permission --prefix=true <role> readwrite ${ROOT}/peers/)`);
    await logged(`read /services/ (permission denied): grant one of its roles read on the prefix (etcdctl role grant-permission --prefix=true <role> read /services/)`);
    const row = await waitFor(async () => {
      const response = await fetch(`http://127.0.0.1:${adminPort}/api/registries`);
      const { registries } = (await response.json()) as { registries: { url: string | null; state: string; reason: string | null }[] };
      return registries.find((registry) => registry.url === `etcd://${hostPort}/services` && registry.reason !== null);
    }, { timeoutMs: CONVERGENCE_MS, message: 'the registry to report why it cannot list' });
    expect(row.state).toBe('connecting');
    expect(row.reason).toContain(refusal('read', '/services/'));
    // The file's routes still serve; nothing of the password shows.
    expect((await fetch(`${outsider.url}/file`)).status).toBe(200);
    expect(await logOf(outsider.process)).not.toContain(PASSWORDS.outsider);
  });

  it('answers a write from a gateway without configStore.auth 403 store-forbidden saying to set it, not 503 as an outage, and says so for its registry', async () => {
    const { gateway: anonymous, admin: anonymousAdmin } = await storeGateway('anonymous', ['timeout: 2s'], ['registries:', `  - url: etcd://${hostPort}/services`, ...FILE_ROUTE]);
    const put = await anonymousAdmin.get('/api/routes/anonymous', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/anonymous', service: 'echo' }) });
    const text = await put.text();
    expect(put.status, text).toBe(403);
    expect(JSON.parse(text)).toMatchObject({ error: 'store-forbidden', code: 'SB_CONFIG_STORE_FORBIDDEN' });
    expect(text).toContain(`connected without configStore.auth, lacks the right to write ${ROOT}/routes/anonymous`);
    expect(text).toContain('set configStore.auth');
    const row = await waitFor(async () => {
      const response = await anonymousAdmin.get('/api/registries');
      const { registries } = (await response.json()) as { registries: { url: string | null; state: string; reason: string | null }[] };
      return registries.find((registry) => registry.url === `etcd://${hostPort}/services` && registry.reason !== null);
    }, { timeoutMs: CONVERGENCE_MS, message: 'the registry to report why it cannot list' });
    expect(row.reason).toContain('has authentication on and refused the client, connected without auth, the right to read /services/ (user name is empty)');
    expect((await fetch(`${anonymous.url}/file`)).status).toBe(200);
  });

  it('answers a write with a password etcd refuses 403 store-auth-failed naming the store and the user, never the password, not 503 as an outage', async () => {
    const { gateway: mistyped, admin: mistypedAdmin } = await storeGateway('mistyped', ['timeout: 2s', authAs('gateway', 'wrong')], FILE_ROUTE);
    for (const [method, path, body] of [
      ['PUT', '/api/routes/mistyped', JSON.stringify({ path: '/mistyped', service: 'echo' })],
      ['DELETE', '/api/routes/stored', undefined],
      ['GET', '/api/store', undefined],
    ] as const) {
      const answer = await mistypedAdmin.get(path, { method, headers: { 'content-type': 'application/json' }, body });
      const text = await answer.text();
      expect(answer.status, `${method} ${path}: ${text}`).toBe(403);
      const parsed = JSON.parse(text) as { error: string; code: string; message: string };
      expect(parsed, `${method} ${path}`).toMatchObject({ error: 'store-auth-failed', code: 'SB_CONFIG_STORE_AUTH_FAILED' });
      expect(parsed.message).toContain(`config store etcd://${hostPort}${ROOT}`);
      expect(parsed.message).toContain('refused the password of the gateway\'s etcd user "gateway"');
      expect(text).not.toContain(WRONG_PASSWORD);
    }
    expect(await ctl(['get', '--keys-only', `${ROOT}/routes/mistyped`], `root:${PASSWORDS.root}`)).toBe('');
    expect(await ctl(['get', '--print-value-only', `${ROOT}/routes/stored`], `root:${PASSWORDS.root}`)).toContain('/stored');
    await waitFor(async () => (await logOf(mistyped.process)).includes('SB_CONFIG_STORE_AUTH_FAILED'), { timeoutMs: CONVERGENCE_MS, message: 'the gateway to log the refused password' });
    // GET /api/config says why the store is not read, as /api/registries does for a registry.
    const store = await waitFor(async () => {
      const { store } = (await (await mistypedAdmin.get('/api/config')).json()) as { store: { source: string; reason: string | null } };
      return store.reason === null ? undefined : store;
    }, { timeoutMs: CONVERGENCE_MS, message: '/api/config to say why the store is not read' });
    expect(store.source).toBe('none');
    expect(store.reason).toContain(`etcd ${etcd.endpoints[0]!} refused the password of etcd user "gateway" (authentication failed, invalid user ID or password)`);
    expect(await logOf(mistyped.process)).not.toContain(WRONG_PASSWORD);
    expect((await fetch(`${mistyped.url}/file`)).status).toBe(200);
  });

  it('answers a write with a password for a user etcd knows without password 403 store-auth-failed, not 503 as an outage', async () => {
    const { gateway: passwordless, admin: passwordlessAdmin } = await storeGateway('passwordless', ['timeout: 2s', authAs('certonly', 'wrong')], FILE_ROUTE);
    const answer = await passwordlessAdmin.get('/api/routes/passwordless', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: '/passwordless', service: 'echo' }) });
    const text = await answer.text();
    expect(answer.status, text).toBe(403);
    const parsed = JSON.parse(text) as { error: string; code: string; message: string };
    expect(parsed).toMatchObject({ error: 'store-auth-failed', code: 'SB_CONFIG_STORE_AUTH_FAILED' });
    expect(parsed.message).toContain('refused the password of the gateway\'s etcd user "certonly"');
    expect(text).not.toContain(WRONG_PASSWORD);
    expect(await ctl(['get', '--keys-only', `${ROOT}/routes/passwordless`], `root:${PASSWORDS.root}`)).toBe('');
    expect(await logOf(passwordless.process)).not.toContain(WRONG_PASSWORD);
  });

  it('ends the session at the first stall probe etcd refuses once the user lost its read right, keeps the last listing, and says why it cannot re-list', async () => {
    const sessionEnds = async () => (await logOf(gateway!.process)).split('\n').filter((line) => line.includes('"msg":"config store session ended; keeping the last listing and retrying"'));
    const before = (await sessionEnds()).length;
    // etcd (3.4) keeps delivering an open watch's events after the revoke; only a read is refused, and the
    // quiet prefix's next stall probe is one. Without the probe's refusal ending the session, the session
    // would end only as `stalled` ("silent for …") after the 10 s stall timeout.
    await ctl(['role', 'revoke-permission', '--prefix=true', 'store-reader', `${ROOT}/`], `root:${PASSWORDS.root}`);
    const ended = await waitFor(async () => (await sessionEnds())[before], { timeoutMs: CONVERGENCE_MS, message: 'the config store session to end' });
    expect(JSON.parse(ended)).toMatchObject({ reason: 'broken', err: expect.stringContaining(`refused etcd user "gateway" the right to read ${ROOT}/ (permission denied)`) });
    expect((await fetch(`${gateway!.url}/stored`)).status).toBe(200);
  });
});
