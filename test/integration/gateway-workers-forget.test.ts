import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startBackend, startEtcd, startGateway, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const DEADLINE_MS = 30_000;

/**
 * With `workers`, the series a forgotten service had in the workers (its requests) leave the
 * aggregated `/metrics` too, those of workers that exited since included, and so do the breakers
 * and caps the workers kept for it (a service reached through the namespace route).
 */
describe('a gateway with workers forgets a service in every worker', () => {
  let etcd: EtcdCluster;
  let writer: Etcd3;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  const labelled = async () => {
    const names = new Set<string>();
    for (const family of (await admin.metrics()).values()) for (const sample of family.samples) if (sample.labels.service) names.add(sample.labels.service);
    return names;
  };
  /** The services with a breaker or caps in some worker's report (`/api/breakers`). */
  const guarded = async () => {
    const { workers } = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string }[]; services: { service: string }[] }[] };
    return new Set(workers.flatMap((worker) => [...worker.breakers, ...worker.services].map((entry) => entry.service)));
  };
  const workers = async () => (await (await admin.get('/api/workers')).json()) as { slot: number; pid: number | undefined; state: string }[];
  const routable = (name: string) =>
    waitFor(async () => (await fetch(`${gateway.url}/${name}/hello`, { headers: { connection: 'close' } })).status === 200, { timeoutMs: DEADLINE_MS, message: `${name} routable` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  const seriesLeft = (name: string) => async (error: Error) => {
    const left = [...(await admin.metrics()).values()].flatMap((family) => family.samples.filter((sample) => sample.labels.service === name).map((sample) => sample.name));
    throw new Error(`${error.message}: ${left.join(', ')}`);
  };

  beforeAll(async () => {
    [etcd, backend] = await Promise.all([startEtcd(), startBackend({ name: 'churn' })]);
    writer = new Etcd3({ hosts: etcd.endpoints });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
accessLog: false
workers: 2
forgetServicesAfter: 1s
registries: ["etcd://${etcd.endpoints[0]!.replace('http://', '')}/services"]
defaults:
  circuitBreaker: { requestVolumeThreshold: 1000, sleepWindow: 60s }
routes:
  - { namespace: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('drops the request series, breakers and caps the workers kept of a service whose last key was deleted', async () => {
    await writer.put('/services/wk-canary/i1').value(JSON.stringify({ id: 'i1', host: '127.0.0.1', port: backend.port, weight: 1 }));
    // Requests spread over both workers (each connection lands on one).
    await routable('wk-canary');
    for (let index = 0; index < 8; index += 1) expect((await fetch(`${gateway.url}/wk-canary/hello`, { headers: { connection: 'close' } })).status).toBe(200);
    await waitFor(async () => (await labelled()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'the series of wk-canary' });
    await waitFor(async () => (await guarded()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'the breaker and caps of wk-canary reported' });
    await writer.delete().key('/services/wk-canary/i1');
    await waitFor(async () => !(await admin.services()).some((service) => service.name === 'wk-canary'), { timeoutMs: DEADLINE_MS, message: 'wk-canary forgotten' });
    await waitFor(async () => !(await labelled()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'no series of wk-canary left' }).catch(seriesLeft('wk-canary'));
    // The workers report their breakers every few seconds: the next reports no longer have it.
    await waitFor(async () => !(await guarded()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'no breaker or caps of wk-canary left' });
  });

  it('drops the series that workers which exited since left of a service forgotten later', async () => {
    await writer.put('/services/wk-exited/i1').value(JSON.stringify({ id: 'i1', host: '127.0.0.1', port: backend.port, weight: 1 }));
    await routable('wk-exited');
    for (let index = 0; index < 8; index += 1) expect((await fetch(`${gateway.url}/wk-exited/hello`, { headers: { connection: 'close' } })).status).toBe(200);
    // A scrape: whichever worker counted them answered with the series, which the primary keeps past its exit.
    await waitFor(async () => (await labelled()).has('wk-exited'), { timeoutMs: DEADLINE_MS, message: 'the series of wk-exited' });
    const before = await workers();
    for (const worker of before) process.kill(worker.pid!, 'SIGKILL');
    await waitFor(
      async () => {
        const now = await workers();
        return now.every((worker) => worker.state === 'listening' && !before.some((old) => old.pid === worker.pid));
      },
      { timeoutMs: DEADLINE_MS, message: 'both workers replaced' },
    );
    // The replacements never saw it: what /metrics shows of it is the exited workers' counts.
    expect((await labelled()).has('wk-exited')).toBe(true);
    await writer.delete().key('/services/wk-exited/i1');
    await waitFor(async () => !(await admin.services()).some((service) => service.name === 'wk-exited'), { timeoutMs: DEADLINE_MS, message: 'wk-exited forgotten' });
    await waitFor(async () => !(await labelled()).has('wk-exited'), { timeoutMs: DEADLINE_MS, message: 'no series of wk-exited left' }).catch(seriesLeft('wk-exited'));
  });
});
