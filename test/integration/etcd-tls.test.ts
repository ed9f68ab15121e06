import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, makeTempDir, runSwitchboard, startAgentBackend, startBackend, startGateway, startTlsEtcd, waitFor, type BackendProcess, type GatewayProcess, type ManagedProcess, type TlsEtcd } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;
const ROOT_PASSWORD = 'root-secret-7f3a';
const ADMIN_TOKEN = 'etcd-tls-admin-token-5c1d';

/** GET `path` of the admin listener on `port`; throws unless it answers 200. */
async function adminJson<T>(port: number, path: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

interface RegistryRow {
  url: string | null;
  state: string;
  reason: string | null;
}

/** etcd with TLS only, a private CA and client certificates required, then user/password authentication. */
describe('etcd over TLS with a private CA, client certificates and authentication', () => {
  let etcd: TlsEtcd;
  let backend: BackendProcess;
  let gateway: GatewayProcess | undefined;
  let agent: ManagedProcess | undefined;

  /** What one request to /<service>/who answered: the backend's name, or the status. */
  async function who(service = 'user'): Promise<string> {
    try {
      const response = await fetch(`${gateway!.url}/${service}/who`);
      const body = await response.text();
      return response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`;
    } catch (error) {
      return `error: ${(error as Error).message}`;
    }
  }

  async function registries(adminPort: number): Promise<RegistryRow[]> {
    return (await adminJson<{ registries: RegistryRow[] }>(adminPort, '/api/registries')).registries;
  }

  async function startWith(registriesYaml: string): Promise<{ gateway: GatewayProcess; adminPort: number }> {
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
registries:
${registriesYaml}
routes:
  - { namespace: true }
`);
    const adminPort = gateway.adminPort;
    return { gateway, adminPort };
  }

  async function converge<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
    return waitFor(check, { timeoutMs: CONVERGENCE_MS, intervalMs: 100, message: what }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${gateway ? await logOf(gateway.process) : ''}\netcd log: ${(await readFile(etcd.logFile, 'utf8')).slice(-2_000)}`);
    });
  }

  beforeAll(async () => {
    etcd = await startTlsEtcd();
    backend = await startBackend({ name: 'tls-registered' });
    // Registered over TLS with the client certificate (etcdctl), before authentication is turned on.
    await etcd.ctl(['put', '/services/user/a', JSON.stringify({ host: '127.0.0.1', port: backend.port })]);
    await writeFile(join(etcd.dir, 'root.password'), `${ROOT_PASSWORD}\n`);
    await writeFile(join(etcd.dir, 'wrong.password'), 'not-the-password\n');
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await gateway?.process.stop();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('discovers an instance through TLS with the CA and a client certificate; a plain etcds:// entry says why it cannot connect', async () => {
    const { adminPort } = await startWith(`
  - url: etcds://${etcd.hostPort}/services
    tls: { caFile: ${etcd.caFile}, certFile: ${etcd.client.certFile}, keyFile: ${etcd.client.keyFile} }
  - etcds://${etcd.hostPort}/plain
`);
    await converge('the instance registered over TLS to answer /user/who', async () => ((await who()) === 'tls-registered' ? true : undefined));
    const plain = await converge('the plain etcds:// registry to report why it cannot connect', async () => {
      const row = (await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/plain`);
      return row?.reason ? row : undefined;
    });
    expect(plain.state).toBe('connecting');
    // Without the private CA the server's certificate cannot be verified.
    expect(plain.reason).toMatch(/unable to verify the first certificate/);
    const secured = (await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/services`);
    expect(secured?.state).toBe('connected');
    // The log says it too (pino writes it asynchronously).
    await converge('the log to say why the plain registry cannot connect', async () => ((await logOf(gateway!.process)).split('\n').some((line) => line.includes('etcd session ended, retrying') && /unable to verify the first certificate/.test(line)) ? true : undefined));
    // /api/config shows the files' paths, never the key.
    const config = JSON.stringify(await adminJson(adminPort, '/api/config'));
    expect(config).toContain(etcd.client.keyFile);
    expect(config).not.toContain('PRIVATE KEY');
    await gateway!.process.stop();
    gateway = undefined;
  }, 60_000);

  it('with authentication on, the right password lists the registry and a wrong one is reported as such', async () => {
    await etcd.enableAuth(ROOT_PASSWORD);
    const tls = `tls: { caFile: ${etcd.caFile}, certFile: ${etcd.client.certFile}, keyFile: ${etcd.client.keyFile} }`;
    const entries = (wrongPasswordFile: string) => `
  - url: etcds://${etcd.hostPort}/services
    ${tls}
    auth: { username: root, passwordFile: ${join(etcd.dir, 'root.password')} }
  - url: etcds://${etcd.hostPort}/wrong
    ${tls}
    auth: { username: root, passwordFile: ${join(etcd.dir, wrongPasswordFile)} }
`;
    const { adminPort } = await startWith(entries('wrong.password'));
    await converge('the instance to answer /user/who through the authenticated registry', async () => ((await who()) === 'tls-registered' ? true : undefined));
    const wrong = await converge('the registry with the wrong password to report it', async () => {
      const row = (await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/wrong`);
      return row?.reason ? row : undefined;
    });
    expect(wrong.state).toBe('connecting');
    expect(wrong.reason).toMatch(/authentication failed/i);
    expect(wrong.reason).toContain(`etcd https://${etcd.hostPort} refused the password of etcd user "root"`);
    await converge('the log to say the authentication failed', async () => (/authentication failed/i.test(await logOf(gateway!.process)) ? true : undefined));
    expect(await readFile(gateway!.process.logFile, 'utf8')).not.toContain(ROOT_PASSWORD);
    const config = JSON.stringify(await adminJson(adminPort, '/api/config'));
    expect(config).toContain('root.password');
    expect(config).not.toContain(ROOT_PASSWORD);
    // A reload that changes only that registry's password file reconnects it, without a restart.
    const text = await readFile(gateway!.configPath, 'utf8');
    await gateway!.writeConfig(text.replace(join(etcd.dir, 'wrong.password'), join(etcd.dir, 'root.password')));
    await converge('the registry to connect with the password the reload gave it', async () => {
      const row = (await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/wrong`);
      return row?.state === 'connected' ? true : undefined;
    });
    expect(await readFile(gateway!.process.logFile, 'utf8')).not.toMatch(/apply only after a restart/);

    // A registry put in front of the list waits for a restart, and the running ones keep their places:
    // a later password change reaches the registry of that URL, not the one at its new place in the list.
    const fixed = await readFile(gateway!.configPath, 'utf8');
    const other = `  - url: etcds://${etcd.hostPort}/other\n    ${tls}\n    auth: { username: root, passwordFile: ${join(etcd.dir, 'root.password')} }\n`;
    const withOther = fixed.replace('registries:\n', `registries:\n${other}`);
    await gateway!.writeConfig(withOther);
    await converge('the restart warning for the registry list', async () => (/apply only after a restart/.test(await logOf(gateway!.process)) ? true : undefined));
    const wrongEntry = (file: string) => `etcds://${etcd.hostPort}/wrong\n    ${tls}\n    auth: { username: root, passwordFile: ${join(etcd.dir, file)} }`;
    expect(withOther).toContain(wrongEntry('root.password'));
    await gateway!.writeConfig(withOther.replace(wrongEntry('root.password'), wrongEntry('wrong.password')));
    const refused = await converge('the /wrong registry to reconnect with the wrong password it was given again', async () => {
      const row = (await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/wrong`);
      return row?.state === 'stale' ? row : undefined;
    });
    expect(refused.reason).toMatch(/authentication failed/i);
    expect((await registries(adminPort)).find((registry) => registry.url === `etcds://${etcd.hostPort}/services`)?.state).toBe('connected');
    expect(await who()).toBe('tls-registered');
  }, 60_000);

  it('the agent registers through TLS with a client certificate and etcd authentication, and the gateway routes to it', async () => {
    const started = await startAgentBackend({
      registry: `etcds://${etcd.hostPort}/services`,
      service: 'agent',
      id: 'via-agent',
      weight: 1,
      flags: ['--interval', '200ms', '--rise', '1', '--etcd-ca-file', etcd.caFile, '--etcd-cert-file', etcd.client.certFile, '--etcd-key-file', etcd.client.keyFile, '--etcd-username', 'root', '--etcd-password-file', join(etcd.dir, 'root.password')],
    });
    agent = started.agent;
    await converge('the agent\'s entry to be in etcd', async () => ((await etcd.ctl(['get', '--keys-only', '/services/agent/via-agent'], `root:${ROOT_PASSWORD}`)).includes('via-agent') ? true : undefined)).catch(async (error: Error) => {
      throw new Error(`${error.message}\nagent log: ${await logOf(started.agent)}`);
    });
    // The gateway of the previous test, still running with the right password, sees it.
    await converge('the agent\'s backend to answer /agent/who', async () => ((await who('agent')) === 'via-agent' ? true : undefined));
    expect(await readFile(started.agent.logFile, 'utf8')).not.toContain(ROOT_PASSWORD);
  }, 60_000);

  it('a config store over TLS with authentication: a route written to it is routed, the gateway registers as a peer, and switchboard config writes through it', async () => {
    await gateway?.process.stop();
    const tls = `tls: { caFile: ${etcd.caFile}, certFile: ${etcd.client.certFile}, keyFile: ${etcd.client.keyFile} }`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${ADMIN_TOKEN} }
configStore:
  url: etcds://${etcd.hostPort}/sb
  timeout: 2s
  snapshot: ${join(etcd.dir, 'store-snapshot.json')}
  ${tls}
  auth: { username: root, passwordFile: ${join(etcd.dir, 'root.password')} }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`);
    const adminPort = gateway.adminPort;
    const user = `root:${ROOT_PASSWORD}`;
    await etcd.ctl(['put', '/sb/routes/stored', JSON.stringify({ path: '/stored', service: 'echo' })], user);
    await converge('the route written to the store to be routed', async () => {
      const response = await fetch(`${gateway!.url}/stored`).catch(() => undefined);
      return response?.status === 200 ? true : undefined;
    });
    await converge('the gateway\'s peer entry in the store', async () => ((await etcd.ctl(['get', '--prefix', '--keys-only', '/sb/peers/'], user)).includes('/sb/peers/') ? true : undefined));
    // `switchboard config` writes through the admin API, so the gateway's own store client (with
    // its CA, client certificate and password) does the writing: the command needs no etcd flags.
    const file = join(await makeTempDir('sb-etcd-tls-cli-'), 'shared.yaml');
    await writeFile(file, 'routes:\n  - { name: applied, path: /applied, service: echo }\n');
    const applied = await runSwitchboard(['config', 'apply', '-f', file, '--admin', `http://127.0.0.1:${adminPort}`], { SWITCHBOARD_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(applied, applied.stderr).toMatchObject({ status: 0, stdout: expect.stringMatching(/^routes\/applied created \(revision \d+\)$/m) as unknown });
    expect(JSON.parse(await etcd.ctl(['get', '--print-value-only', '/sb/routes/applied'], user))).toEqual({ name: 'applied', path: '/applied', service: 'echo' });
    await converge('the route applied with switchboard config to be routed', async () => ((await fetch(`${gateway!.url}/applied`).catch(() => undefined))?.status === 200 ? true : undefined));
    expect(await readFile(gateway!.process.logFile, 'utf8')).not.toContain(ROOT_PASSWORD);
  }, 60_000);
});
