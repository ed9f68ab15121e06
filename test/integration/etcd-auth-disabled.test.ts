import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tolerateEtcdAuthDisabled } from '../../src/discovery/etcd/etcd-auth-disabled.ts';
import type { Logger } from '../../src/logger.ts';
import { freePort, startEtcd, type EtcdCluster } from '../harness/index.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';

const run = promisify(execFile);
const PASSWORD = 'client-secret-auth-off-5b1e';
const CALLS = 20;

/** One etcd3 client given a user against a real etcd whose authentication is off, then turned on. */
describe('an etcd client given a user where etcd has authentication off', () => {
  let etcd: EtcdCluster;
  let client: Etcd3 | undefined;
  const warnings: string[] = [];

  async function ctl(args: readonly string[]): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  /** Logins etcd answered "authentication is not enabled" so far, from its own metrics. */
  async function refusedLogins(): Promise<number> {
    const text = await (await fetch(`${etcd.endpoints[0]!}/metrics`)).text();
    return sampleValue(parsePrometheusText(text), 'grpc_server_handled_total', { grpc_method: 'Authenticate', grpc_code: 'FailedPrecondition' }) ?? 0;
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    await ctl(['put', '/auth-off/key', 'value']);
    const log = { warn: (_fields: unknown, message: string) => warnings.push(message) } as unknown as Logger;
    client = tolerateEtcdAuthDisabled(new Etcd3({ hosts: etcd.endpoints[0]!, auth: { username: 'reader', password: PASSWORD } }), log);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await etcd?.close();
  });

  it('logs in once, not before each call, and warns once that its user is unused', async () => {
    const before = await refusedLogins();
    for (let call = 0; call < CALLS; call++) expect(await client!.get('/auth-off/key').string()).toBe('value');
    expect((await refusedLogins()) - before).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('authentication off');
  });

  it('goes on without a token where one member answers that authentication is off and another is down', async () => {
    const downPort = await freePort();
    const log = { warn: () => undefined } as unknown as Logger;
    // etcd3 tries the members in this order and rejects with the last one's error.
    const twoMembers = tolerateEtcdAuthDisabled(new Etcd3({ hosts: [etcd.endpoints[0]!, `http://127.0.0.1:${downPort}`], auth: { username: 'reader', password: PASSWORD } }), log);
    try {
      expect(await twoMembers.get('/auth-off/key').string()).toBe('value');
    } finally {
      twoMembers.close();
    }
  });

  it('logs in as its user at its next call once an operator turns authentication on', async () => {
    await ctl(['user', 'add', 'root:root-secret-auth-off-77aa']);
    await ctl(['user', 'add', `reader:${PASSWORD}`]);
    await ctl(['role', 'add', 'auth-off-reader']);
    await ctl(['role', 'grant-permission', '--prefix=true', 'auth-off-reader', 'read', '/auth-off/']);
    await ctl(['user', 'grant-role', 'reader', 'auth-off-reader']);
    await ctl(['auth', 'enable']);
    // Refused "user name is empty" without a token, then sent again after a login.
    expect(await client!.get('/auth-off/key').string()).toBe('value');
    expect(warnings).toHaveLength(1);
  });
});
