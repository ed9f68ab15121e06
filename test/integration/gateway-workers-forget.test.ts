import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { freePort, logOf, startBackend, startEtcd, startGateway, waitFor, type BackendProcess, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

const DEADLINE_MS = 30_000;

/** With `workers`, the series a forgotten service had in the workers (its requests) leave the aggregated `/metrics` too. */
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

  beforeAll(async () => {
    [etcd, backend] = await Promise.all([startEtcd(), startBackend({ name: 'churn' })]);
    writer = new Etcd3({ hosts: etcd.endpoints });
    const adminPort = await freePort();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:${adminPort} }
accessLog: false
workers: 2
forgetServicesAfter: 1s
registries: ["etcd://${etcd.endpoints[0]!.replace('http://', '')}/services"]
routes:
  - { namespace: true }
`);
    admin = adminClient(`http://127.0.0.1:${adminPort}`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await backend?.process.stop();
    await etcd?.close();
  });

  it('drops the request series the workers kept of a service whose last key was deleted', async () => {
    await writer.put('/services/wk-canary/i1').value(JSON.stringify({ id: 'i1', host: '127.0.0.1', port: backend.port, weight: 1 }));
    // Requests spread over both workers (each connection lands on one).
    await waitFor(async () => (await fetch(`${gateway.url}/wk-canary/hello`, { headers: { connection: 'close' } })).status === 200, { timeoutMs: DEADLINE_MS, message: 'wk-canary routable' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    for (let index = 0; index < 8; index += 1) expect((await fetch(`${gateway.url}/wk-canary/hello`, { headers: { connection: 'close' } })).status).toBe(200);
    await waitFor(async () => (await labelled()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'the series of wk-canary' });
    await writer.delete().key('/services/wk-canary/i1');
    await waitFor(async () => !(await admin.services()).some((service) => service.name === 'wk-canary'), { timeoutMs: DEADLINE_MS, message: 'wk-canary forgotten' });
    await waitFor(async () => !(await labelled()).has('wk-canary'), { timeoutMs: DEADLINE_MS, message: 'no series of wk-canary left' }).catch(async (error: Error) => {
      const left = [...(await admin.metrics()).values()].flatMap((family) => family.samples.filter((sample) => sample.labels.service === 'wk-canary').map((sample) => sample.name));
      throw new Error(`${error.message}: ${left.join(', ')}`);
    });
  });
});
