import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeInstance } from '../../src/discovery/index.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { acceptsConnections, logOf, startBackend, startEtcd, startGateway, startTcpProxy, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess, type TcpProxy } from '../harness/index.ts';

const IDS = ['a', 'b', 'c'] as const;

/** The gateway's file; `interval` is what the reload changes (a health setting, same question asked). */
function config(etcd: string, interval: string): string {
  return `
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
accessLog: false
registries: ["etcd://${etcd}/services"]
removalProtection: { threshold: 50, hold: 5m }
services:
  # No retry to hide a refused connection, and checks too rare to find the dead instance first.
  user: { retries: false, healthCheck: { type: tcp, interval: ${interval} }, outlierDetection: { consecutiveErrors: 50 } }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`;
}

describe('a held instance that refused a connection, across a reload of its service\'s health settings', () => {
  let etcd: EtcdCluster;
  let proxy: TcpProxy;
  let writer: Etcd3;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const backends = new Map<string, BackendProcess>();

  beforeAll(async () => {
    etcd = await startEtcd();
    const url = new URL(etcd.endpoints[0]!);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    writer = new Etcd3({ hosts: etcd.endpoints });
    for (const id of IDS) {
      const backend = await startBackend({ name: id });
      backends.set(id, backend);
      await writer.put(`/services/user/${id}`).value(encodeInstance({ id, service: 'user', host: '127.0.0.1', port: backend.port, weight: 1, protocol: 'http', metadata: {} }));
    }
    gateway = await startGateway(config(proxy.address, '1h'));
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await routable()).join() === IDS.join(), { timeoutMs: 30_000, message: 'all three instances behind the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  }, 90_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([...backends.values()].map(({ process }) => process.stop()));
    writer?.close();
    await proxy?.close();
    await etcd?.close();
  });

  async function routable(): Promise<string[]> {
    const service = (await admin.services()).find((candidate) => candidate.name === 'user');
    return (service?.instances ?? []).filter((instance) => instance.routable).map((instance) => instance.id).sort();
  }

  async function held(): Promise<string[]> {
    const service = (await admin.services()).find((candidate) => candidate.name === 'user');
    return (service?.held ?? []).map((instance) => instance.id).sort();
  }

  async function registryState(): Promise<string> {
    const { registries } = (await (await admin.get('/api/registries')).json()) as { registries: Array<{ state: string }> };
    return registries[0]?.state ?? 'none';
  }

  /** The statuses of `count` requests, one after another. */
  async function statuses(count: number): Promise<number[]> {
    const result: number[] = [];
    for (let index = 0; index < count; index += 1) {
      const response = await fetch(`${gateway.url}/api/user/who`);
      await response.text();
      result.push(response.status);
    }
    return result;
  }

  it('stays out after the reload, so no request meets its refusal again', async () => {
    // An outage: the registry loses every entry meanwhile, and lists none when the gateway is back.
    proxy.cut();
    await waitFor(async () => (await registryState()) === 'stale', { timeoutMs: 15_000, message: 'the registry stale after the cut' });
    await writer.delete().prefix('/services/user/');
    proxy.restore();
    await waitFor(async () => (await registryState()) === 'connected' && (await held()).join() === IDS.join(), { timeoutMs: 15_000, message: 'all three held' });
    expect(await routable()).toEqual([...IDS]);

    // c's backend dies; its first refused connection drops it (one 502: no retry on this service).
    await backends.get('c')!.process.stop();
    await waitFor(async () => !(await acceptsConnections(backends.get('c')!.port)), { timeoutMs: 5_000, message: 'c refusing connections' });
    const before = await statuses(6);
    expect(before.filter((status) => status === 502)).toHaveLength(1);
    await waitFor(async () => (await routable()).join() === 'a,b', { timeoutMs: 5_000, message: 'c dropped' });

    const applied = async () => sampleValue(await admin.metrics(), 'switchboard_config_reloads_total', { result: 'applied' }) ?? 0;
    const appliedBefore = await applied();
    await gateway.writeConfig(config(proxy.address, '2h'));
    await waitFor(async () => (await applied()) > appliedBefore, { timeoutMs: 10_000, message: 'the reload applied' });
    // The hold goes on (nothing relisted them), and c stays out.
    expect(await held()).toEqual([...IDS]);
    expect(await statuses(6)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(await routable()).toEqual(['a', 'b']);
  }, 90_000);
});
