import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectZooKeeperClient, startBackend, startGateway, startTcpProxy, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';
import { fourLetterWord } from '../harness/zookeeper-four-letter-word.ts';

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

async function statusOf(path: string, target: GatewayProcess = gateway): Promise<{ status: number; body: string }> {
  try {
    const response = await fetch(`${target.url}${path}`, { headers: { connection: 'close' } });
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
  gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
configStore: { url: "zk://${zk.connectString}${ROOT}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
  const adminPort = gateway.adminPort;
  admin = `http://127.0.0.1:${adminPort}`;
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

/** The paths the server holds data watches on, recursive ones included (`wchp`: each path, then the sessions watching it, indented). */
async function watchedPaths(): Promise<string[]> {
  const text = await fourLetterWord('127.0.0.1', zk.nodes[0]!.clientPort, 'wchp', 10_000);
  return text.split('\n').filter((line) => line.startsWith('/'));
}

describe('config store on ZooKeeper, watch=one-shot on its URL', () => {
  it('follows the store through a watch per znode, where the default gateway holds one recursive watch', async () => {
    const root = `${ROOT}-one-shot`;
    await call((done) => writer.mkdirp(`${root}/routes`, done));
    await call((done) => writer.create(`${root}/routes/first`, Buffer.from(JSON.stringify({ path: '/first', service: 'echo' })), done));
    const oneShot = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
configStore: { url: "zk://${zk.connectString}${root}?watch=one-shot", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`);
    try {
      await waitFor(async () => (await statusOf('/first', oneShot)).status === 200, { timeoutMs: ROUTED_WITHIN_MS, message: 'the stored route' });
      await call((done) => writer.setData(`${root}/routes/first`, Buffer.from(JSON.stringify({ path: '/first-moved', service: 'echo' })), -1, done));
      await waitFor(async () => (await statusOf('/first-moved', oneShot)).status === 200, { timeoutMs: ROUTED_WITHIN_MS, message: 'the changed route' });
      await call((done) => writer.create(`${root}/routes/second`, Buffer.from(JSON.stringify({ path: '/second', service: 'echo' })), done));
      await waitFor(async () => (await statusOf('/second', oneShot)).status === 200, { timeoutMs: ROUTED_WITHIN_MS, message: 'the added route' });
      // One-shot: a data watch on each object (and a child watch on each kind, which wchp does not list), armed again after every read.
      await waitFor(async () => {
        const paths = await watchedPaths();
        return [`${root}/routes/first`, `${root}/routes/second`].every((path) => paths.includes(path));
      }, { timeoutMs: ROUTED_WITHIN_MS, message: 'a data watch on each object' });
      // The default gateway (recursive) holds one watch on its root and none below its kinds, though it routes objects stored there.
      await call((done) => writer.create(`${ROOT}/routes/recursive-probe`, Buffer.from(JSON.stringify({ path: '/recursive-probe', service: 'echo' })), done));
      await until('/recursive-probe', 200, 'the default gateway to route a new object');
      const paths = await watchedPaths();
      expect(paths).toContain(ROOT);
      expect(paths.filter((path) => path.startsWith(`${ROOT}/routes`))).toEqual([]);
    } finally {
      await oneShot.process.stop();
    }
  });
});

describe('config store on ZooKeeper, cut off past its session timeout', () => {
  it('re-lists on the new session and converges to the changes made while it was cut off', async () => {
    const root = `${ROOT}-expiry`;
    await call((done) => writer.mkdirp(`${root}/routes`, done));
    await call((done) => writer.create(`${root}/routes/kept`, Buffer.from(JSON.stringify({ path: '/kept', service: 'echo' })), done));
    await call((done) => writer.create(`${root}/routes/doomed`, Buffer.from(JSON.stringify({ path: '/doomed', service: 'echo' })), done));
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(zk.connectString.split(',')[0]!.split(':')[1]) });
    const cutOff = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
configStore: { url: "zk://${proxy.address}${root}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
`);
    const adminPort = cutOff.adminPort;
    try {
      await waitFor(async () => (await statusOf('/doomed', cutOff)).status === 200, { timeoutMs: ROUTED_WITHIN_MS, message: 'the stored routes before the cut' });
      const newSessions = async () => sampleValue(parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()), 'switchboard_config_store_resyncs_total', { reason: 'new-session' }) ?? 0;
      const before = await newSessions();
      proxy.cut();
      await call((done) => writer.remove(`${root}/routes/doomed`, -1, done));
      await call((done) => writer.create(`${root}/routes/added`, Buffer.from(JSON.stringify({ path: '/added', service: 'echo' })), done));
      // Cut off, the gateway keeps serving its last listing.
      expect((await statusOf('/doomed', cutOff)).status).toBe(200);
      expect((await statusOf('/added', cutOff)).status).toBe(404);
      // The supervisor counts a disconnection longer than the session timeout (10 s) as expiry.
      await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text().then((text) => /switchboard_zookeeper_session_events_total\{[^}]*event="expired"[^}]*\} [1-9]/.test(text)), { timeoutMs: 30_000, intervalMs: 250, message: 'the session to count as expired' });
      // Its session expired, it still serves the last listing: an expiry is no empty store.
      expect((await statusOf('/doomed', cutOff)).status).toBe(200);
      expect((await statusOf('/kept', cutOff)).status).toBe(200);
      // /api/config says why the store is not read (disconnected, expired, or the failed connect after it).
      const storeOf = async () => ((await (await fetch(`http://127.0.0.1:${adminPort}/api/config`)).json()) as { store: { source: string; reason: string | null } }).store;
      expect((await storeOf()).reason).toEqual(expect.any(String));
      proxy.restore();
      await waitFor(async () => (await statusOf('/added', cutOff)).status === 200 && (await statusOf('/doomed', cutOff)).status === 404, { timeoutMs: 30_000, intervalMs: 100, message: 'the changes made during the cut' });
      expect((await statusOf('/kept', cutOff)).status).toBe(200);
      expect(await storeOf()).toMatchObject({ source: 'store', reason: null });
      expect(await newSessions()).toBeGreaterThan(before);
    } finally {
      await cutOff.process.stop();
      await proxy.close();
    }
  });
});

describe('config store on ZooKeeper, emptied', () => {
  it('applies an emptied store as empty: every stored object goes at once, and the file\'s routes keep serving', async () => {
    // As Traefik's KV provider: an empty listing is a successful read, not an outage (see docs: "An emptied store is an empty store").
    const root = `${ROOT}-emptied`;
    await call((done) => writer.mkdirp(`${root}/routes`, done));
    await call((done) => writer.mkdirp(`${root}/services`, done));
    await call((done) => writer.create(`${root}/services/stored-echo`, Buffer.from(JSON.stringify({ instances: [`127.0.0.1:${backend.port}`] })), done));
    for (const name of ['one', 'two']) await call((done) => writer.create(`${root}/routes/${name}`, Buffer.from(JSON.stringify({ path: `/${name}`, service: 'stored-echo' })), done));
    const emptied = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
configStore: { url: "zk://${zk.connectString}${root}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { name: file-route, path: /file, service: echo }
`);
    const routed = async () => Promise.all(['/one', '/two', '/file'].map(async (path) => (await statusOf(path, emptied)).status));
    try {
      await waitFor(async () => (await routed()).every((status) => status === 200), { timeoutMs: ROUTED_WITHIN_MS, message: 'the stored routes' });
      // Every object and kind node goes, as `zkCli.sh deleteall` on each kind removes them (children first:
      // ZooKeeper deletes leaves only); the root stays, holding the gateways' ephemeral peer entries.
      for (const path of [`${root}/routes/one`, `${root}/routes/two`, `${root}/routes`, `${root}/services/stored-echo`, `${root}/services`]) await call((done) => writer.remove(path, -1, done));
      await waitFor(async () => (await routed()).join() === '404,404,200', { timeoutMs: ROUTED_WITHIN_MS, message: 'the stored routes to be gone and the file route to stay' });
    } finally {
      await emptied.process.stop();
    }
  });
});
