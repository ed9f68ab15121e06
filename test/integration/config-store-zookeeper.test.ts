import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient, freePort, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

/** The brief: a stored route is routed within 1 s; polling gets generous slack on this shared 2-core machine. */
const ROUTED_WITHIN_MS = 5_000;
const ROOT = `/sb-store-${process.pid}`;

let zk: ZooKeeperCluster;
let writer: Client;
let backend: BackendProcess;
let gateway: GatewayProcess;
let admin: string;

function call(run: (done: (error: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
}

async function statusOf(path: string): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(`${gateway.url}${path}`, { headers: { connection: 'close' } });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    return { status: 0, body: String(error) };
  }
}

const until = (path: string, status: number, message: string) => waitFor(async () => (await statusOf(path)).status === status, { timeoutMs: ROUTED_WITHIN_MS, intervalMs: 50, message });

beforeAll(async () => {
  zk = await startZooKeeper();
  writer = await connectZooKeeperClient(zk.connectString);
  backend = await startBackend({ name: 'echo' });
  await call((done) => writer.mkdirp(`${ROOT}/routes`, done));
  const adminPort = await freePort();
  admin = `http://127.0.0.1:${adminPort}`;
  gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:${adminPort}
configStore: { url: "zk://${zk.connectString}${ROOT}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
});

afterAll(async () => {
  await gateway?.process.stop();
  writer?.close();
  await backend?.process.stop();
  await zk?.close();
});

describe('config store on ZooKeeper', () => {
  it('routes a route created as a znode, applies its change, and stops routing it once deleted', async () => {
    expect((await statusOf('/zk-route')).status).toBe(404);
    await call((done) => writer.create(`${ROOT}/routes/zk-route`, Buffer.from(JSON.stringify({ path: '/zk-route', service: 'echo' })), done));
    await until('/zk-route', 200, 'the stored route to be routed');
    await call((done) => writer.setData(`${ROOT}/routes/zk-route`, Buffer.from(JSON.stringify({ path: '/zk-moved', service: 'echo' })), -1, done));
    await until('/zk-moved', 200, 'the changed route to be routed');
    expect((await statusOf('/zk-route')).status).toBe(404);
    await call((done) => writer.remove(`${ROOT}/routes/zk-route`, -1, done));
    await until('/zk-moved', 404, 'the deleted route to be gone');
    expect((await statusOf('/file')).status).toBe(200);
  });

  it('refuses an invalid znode alone and lists it in /api/config', async () => {
    await call((done) => writer.create(`${ROOT}/routes/zk-bad`, Buffer.from('{not json'), done));
    await call((done) => writer.create(`${ROOT}/routes/zk-good`, Buffer.from(JSON.stringify({ path: '/zk-good', service: 'echo' })), done));
    await until('/zk-good', 200, 'the good route');
    const config = (await (await fetch(`${admin}/api/config`)).json()) as { store: { refused: { key: string; reason: string }[] } };
    expect(config.store.refused).toEqual([{ key: `${ROOT}/routes/zk-bad`, kind: 'routes', reason: expect.stringMatching(/not JSON/) }]);
  });
});
