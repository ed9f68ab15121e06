import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import {
  connectZooKeeperClient,
  logOf,
  startBackend,
  startEtcd,
  startGateway,
  startZooKeeper,
  waitFor,
  type BackendProcess,
  type EtcdCluster,
  type GatewayProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

/** Short, so that forgetting is seen within a test; the default is 5 min. */
const GRACE = '1s';
const DEADLINE_MS = 20_000;

/**
 * The gateway keeps a service that no registry or list names any more for `forgetServicesAfter`,
 * then forgets it: it leaves `/api/services`, every series of `/metrics` and `/api/breakers`. A service a route names
 * stays, and a registry that goes away forgets nothing.
 */
describe('a gateway forgets services its registries no longer list', () => {
  let etcd: EtcdCluster;
  let zk: ZooKeeperCluster;
  let writer: Etcd3;
  let zkWriter: Client;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let listDir: string;
  let listPath: string;

  const payload = (id: string) => JSON.stringify({ id, host: '127.0.0.1', port: backend.port, weight: 1 });
  const zkCall = (run: (done: (error: unknown) => void) => void) =>
    new Promise<void>((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
  const zkCreate = (path: string, data?: string) =>
    zkCall((done) => (data === undefined ? zkWriter.mkdirp(path, done) : zkWriter.create(path, Buffer.from(data), zookeeper.CreateMode.PERSISTENT, done)));
  const zkRemove = (path: string) => zkCall((done) => zkWriter.remove(path, -1, done));
  const writeList = async (services: Record<string, string[]>) => {
    const temporary = join(listDir, `.list-${Date.now()}.yaml`);
    await writeFile(temporary, JSON.stringify({ services }));
    await rename(temporary, listPath);
  };

  const listed = async () => new Set((await admin.services()).map((service) => service.name));
  const instancesOf = async (name: string) => (await admin.services()).find((service) => service.name === name)?.instances.length;
  /** The names that label some series of `/metrics` with `service`. */
  const labelled = async () => {
    const names = new Set<string>();
    for (const family of (await admin.metrics()).values()) for (const sample of family.samples) if (sample.labels.service) names.add(sample.labels.service);
    return names;
  };
  /** The services with a breaker or caps in `/api/breakers`. */
  const guarded = async () => {
    const { workers } = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string }[]; services: { service: string }[] }[] };
    return new Set(workers.flatMap((worker) => [...worker.breakers, ...worker.services].map((entry) => entry.service)));
  };
  const withLog = async (error: Error) => {
    throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
  };

  beforeAll(async () => {
    [etcd, zk, backend] = await Promise.all([startEtcd(), startZooKeeper(), startBackend({ name: 'churn' })]);
    writer = new Etcd3({ hosts: etcd.endpoints });
    zkWriter = await connectZooKeeperClient(zk.connectString);
    listDir = await mkdtemp(join(tmpdir(), 'sb-forget-'));
    listPath = join(listDir, 'instances.yaml');
    await writeList({ 'list-kept': [`127.0.0.1:${backend.port}`], 'list-witness': [`127.0.0.1:${backend.port}`] });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
accessLog: false
forgetServicesAfter: ${GRACE}
registries:
  - "etcd://${etcd.endpoints[0]!.replace('http://', '')}/services"
  - "zk://${zk.connectString}/services"
  - "file:${listPath}"
defaults:
  circuitBreaker: { requestVolumeThreshold: 1000, sleepWindow: 60s }
routes:
  - { path: /routed, service: routed, stripPrefix: true }
  - { namespace: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    zkWriter?.close();
    writer?.close();
    await backend?.process.stop();
    await Promise.all([etcd?.close(), zk?.close()]);
    if (listDir) await rm(listDir, { recursive: true, force: true });
  });

  it('forgets services whose last etcd key is deleted: gone from /api/services, /metrics and /api/breakers, while a routed one stays, empty', async () => {
    const churned = ['canary-1', 'canary-2', 'canary-3'];
    for (const name of [...churned, 'routed']) await writer.put(`/services/${name}/i1`).value(payload('i1'));
    await waitFor(async () => {
      const names = await listed();
      return [...churned, 'routed'].every((name) => names.has(name));
    }, { timeoutMs: DEADLINE_MS, message: 'the etcd services listed' }).catch(withLog);
    // A request through the namespace route gives each its request series.
    for (const name of churned) expect((await fetch(`${gateway.url}/${name}/hello`)).status).toBe(200);
    await waitFor(async () => {
      const names = await labelled();
      return churned.every((name) => names.has(name));
    }, { timeoutMs: DEADLINE_MS, message: 'series of the churned services' });
    const breakers = await guarded();
    expect(churned.filter((name) => !breakers.has(name))).toEqual([]);

    // `routed` goes first: had it not been kept, it would be forgotten before the others.
    for (const name of ['routed', ...churned]) await writer.delete().key(`/services/${name}/i1`);
    await waitFor(async () => {
      const names = await listed();
      return churned.every((name) => !names.has(name));
    }, { timeoutMs: DEADLINE_MS, message: 'the deleted etcd services forgotten' }).catch(withLog);
    const series = await labelled();
    expect(churned.filter((name) => series.has(name))).toEqual([]);
    // Reached only through the namespace route, their breakers and caps go with them.
    await waitFor(async () => {
      const left = await guarded();
      return churned.every((name) => !left.has(name));
    }, { timeoutMs: DEADLINE_MS, message: 'no breaker or caps of the forgotten services left' });
    // Named by a route: listed with no instance, answering 503 as before.
    expect(await instancesOf('routed')).toBe(0);
    expect((await fetch(`${gateway.url}/routed/hello`)).status).toBe(503);
    // A name forgotten and then listed again is a new service: routable at once.
    await writer.put('/services/canary-1/i2').value(payload('i2'));
    await waitFor(async () => (await fetch(`${gateway.url}/canary-1/hello`)).status === 200, { timeoutMs: DEADLINE_MS, message: 'canary-1 routable again' });
  });

  it('forgets a ZooKeeper service whose node is deleted, never one whose node stays with no instances', async () => {
    await zkCreate('/services/zk-empty');
    await zkCreate('/services/zk-empty/i1', payload('i1'));
    await zkCreate('/services/zk-gone');
    await zkCreate('/services/zk-gone/i1', payload('i1'));
    await waitFor(async () => (await instancesOf('zk-empty')) === 1 && (await instancesOf('zk-gone')) === 1, { timeoutMs: DEADLINE_MS, message: 'the ZooKeeper services listed' }).catch(withLog);
    // zk-empty loses its last instance first: had it counted as gone, it would be forgotten first.
    await zkRemove('/services/zk-empty/i1');
    await waitFor(async () => (await instancesOf('zk-empty')) === 0, { timeoutMs: DEADLINE_MS, message: 'zk-empty empty' });
    await zkRemove('/services/zk-gone/i1');
    await zkRemove('/services/zk-gone');
    await waitFor(async () => !(await listed()).has('zk-gone'), { timeoutMs: DEADLINE_MS, message: 'zk-gone forgotten' }).catch(withLog);
    expect((await listed()).has('zk-empty')).toBe(true);
  });

  it('forgets nothing a stopped registry listed, while a service the file list drops is forgotten meanwhile', async () => {
    await writer.put('/services/outage-etcd/i1').value(payload('i1'));
    await zkCreate('/services/outage-zk');
    await zkCreate('/services/outage-zk/i1', payload('i1'));
    await waitFor(async () => (await instancesOf('outage-etcd')) === 1 && (await instancesOf('outage-zk')) === 1, { timeoutMs: DEADLINE_MS, message: 'the outage services listed' }).catch(withLog);
    zkWriter.close();
    writer.close();
    await Promise.all([etcd.members[0]!.stop(), zk.nodes[0]!.stop()]);
    await waitFor(async () => {
      const { registries } = (await (await admin.get('/api/registries')).json()) as { registries: Array<{ kind: string; state: string }> };
      return registries.filter((registry) => registry.kind !== 'file' && registry.kind !== 'static').every((registry) => registry.state === 'stale');
    }, { timeoutMs: DEADLINE_MS, message: 'both registries stale' }).catch(withLog);
    // The witness: a service the file list drops now is forgotten after the grace, so the grace passed during the outage.
    await writeList({ 'list-kept': [`127.0.0.1:${backend.port}`] });
    await waitFor(async () => !(await listed()).has('list-witness'), { timeoutMs: DEADLINE_MS, message: 'list-witness forgotten' }).catch(withLog);
    expect(await instancesOf('outage-etcd')).toBe(1);
    expect(await instancesOf('outage-zk')).toBe(1);
    expect(await instancesOf('list-kept')).toBe(1);
    expect((await fetch(`${gateway.url}/outage-etcd/hello`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/outage-zk/hello`)).status).toBe(200);
  });
});
