import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const run = promisify(execFile);
const TOKEN = 'config-store-reader-rules-token-2d9a';
const ROOT = '/sb-reader-rules';
const CONVERGENCE_MS = 20_000;

/**
 * The admin API refuses a write that every gateway's store reader would refuse at load (the
 * configuration schema's rules across a service's keys and the file's `defaults`, not only the
 * object's own shape), and takes one the file's `defaults` make valid: the same judgement as the reader.
 */
describe('admin writes judged as the store reader judges them', () => {
  let etcd: EtcdCluster;
  const gateways: GatewayProcess[] = [];

  async function ctl(args: readonly string[]): Promise<string> {
    const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  }

  async function start(root: string, defaults: string): Promise<{ gateway: GatewayProcess; admin: AdminClient }> {
    const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${root}
${defaults}
`);
    gateways.push(gateway);
    return { gateway, admin: adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN) };
  }

  const grpcWithPath = { protocol: 'grpc', healthCheck: { path: '/healthz' }, instances: ['127.0.0.1:1'] };
  const put = (admin: AdminClient, path: string, value: unknown) => admin.get(path, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.process.stop()));
    await etcd?.close();
  }, 60_000);

  it('answers 400 with the reader\'s reason to a gRPC service whose check names an HTTP path, and writes nothing', async () => {
    const { admin } = await start(`${ROOT}-plain`, '');
    const answer = await put(admin, '/api/services/grpc-path', grpcWithPath);
    const text = await answer.text();
    expect(answer.status, text).toBe(400);
    const body = JSON.parse(text) as { code: string; message: string; issues: { path: string; reason: string }[] };
    expect(body.code).toBe('SB_CONFIG_OBJECT_INVALID');
    expect(body.issues[0]!.path).toBe('services.grpc-path.healthCheck.path');
    expect(body.message).toContain("the check speaks the service's protocol, grpc");
    expect(await ctl(['get', '--keys-only', `${ROOT}-plain/services/grpc-path`])).toBe('');
  });

  it('takes the same service where the file\'s defaults make its check speak HTTP, and the gateway applies it', async () => {
    const { gateway, admin } = await start(`${ROOT}-defaults`, 'defaults: { healthCheck: { protocol: http } }');
    const answer = await put(admin, '/api/services/grpc-path', grpcWithPath);
    expect(answer.status, await answer.text()).toBe(201);
    await waitFor(async () => ((await (await admin.get('/api/config')).json()) as { store: { revision: string | null } }).store.revision !== null, { timeoutMs: CONVERGENCE_MS, message: 'the store to be applied' });
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('grpc-path'), { timeoutMs: CONVERGENCE_MS, message: 'the written service to be applied' });
    const { store } = (await (await admin.get('/api/config')).json()) as { store: { refused: unknown[] } };
    expect(store.refused).toEqual([]);
    // Neither the object nor the merged configuration was refused (the reader's own warnings).
    expect(await logOf(gateway.process)).not.toMatch(/config store object refused|merged with the config store was refused/);
  });
});
