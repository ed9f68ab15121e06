import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { connectZooKeeperClient, jsonLogLinesFrom, startEtcd, startGateway, startZooKeeper, waitFor, type EtcdCluster, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

const run = promisify(execFile);
const TOKEN = 'config-store-ignored-keys-token-7c1e';
const CONVERGENCE_MS = 20_000;
const IGNORED_WARNING = 'config store key ignored: it is neither an object nor a peer';

interface StoreBody {
  readonly objects: { kind: string; name: string }[];
  readonly ignored: { key: string; reason: string }[];
}

async function storeOf(admin: AdminClient): Promise<StoreBody> {
  const answer = await admin.get('/api/store');
  const text = await answer.text();
  if (answer.status !== 200) throw new Error(`/api/store answered ${answer.status}: ${text}`);
  return JSON.parse(text) as StoreBody;
}

async function ignoredKeys(admin: AdminClient): Promise<string[]> {
  return (await storeOf(admin)).ignored.map((entry) => entry.key).sort();
}

async function start(configStore: string): Promise<{ gateway: GatewayProcess; admin: AdminClient }> {
  const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${TOKEN} }
accessLog: false
configStore: { url: "${configStore}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:1"] }
`);
  return { gateway, admin: adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN) };
}

/**
 * A key under the store's root that is neither an object nor a peer (a typo written with etcdctl or
 * zkCli) does nothing: the gateway says so once per key in its log, counts it, and lists it with the
 * reason in GET /api/store, instead of ignoring it silently.
 */
describe('keys under the store root that are neither objects nor peers', () => {
  let etcd: EtcdCluster;
  let zk: ZooKeeperCluster;
  let zkWriter: Client;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    [etcd, zk] = await Promise.all([startEtcd(), startZooKeeper()]);
    zkWriter = await connectZooKeeperClient(zk.connectString);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.process.stop()));
    zkWriter?.close();
    await Promise.all([etcd?.close(), zk?.close()]);
  }, 60_000);

  it('etcd: lists each with its reason, counts them, warns once per key, and forgets a deleted one', async () => {
    const root = '/sb-ignored-etcd';
    const ctl = async (...args: string[]) => run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    const route = JSON.stringify({ path: '/a', service: 'echo' });
    const { gateway, admin } = await start(`etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${root}`);
    gateways.push(gateway);
    for (const key of [`${root}/route/x`, `${root}/routes`, `${root}/routes/a/b`]) await ctl('put', key, route);
    const expected = [`${root}/route/x`, `${root}/routes`, `${root}/routes/a/b`];
    await waitFor(async () => (await ignoredKeys(admin)).length === 3, { timeoutMs: CONVERGENCE_MS, message: 'the three stray keys to be listed as ignored' });
    const { ignored, objects } = await storeOf(admin);
    expect(objects).toEqual([]);
    expect(ignored.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      { key: expected[0], reason: '"route" is not a kind of object (services, middlewares, consumers, certificates, routes): did you mean "routes"?' },
      { key: expected[1], reason: `a kind's own key holds no object: an object's key is ${root}/routes/<name>` },
      { key: expected[2], reason: `below ${root}/routes/a: an object's key is ${root}/routes/<name>, nothing after the name` },
    ]);
    expect(sampleValue(await admin.metrics(), 'switchboard_config_store_ignored_keys')).toBe(3);

    // More listings (an object written, then changed) warn about none of them again.
    await ctl('put', `${root}/routes/ok`, route);
    await ctl('put', `${root}/routes/ok`, JSON.stringify({ path: '/b', service: 'echo' }));
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('"/b"'), { timeoutMs: CONVERGENCE_MS, message: 'the changed route to be applied' });
    const warnings = (await jsonLogLinesFrom(gateway.process)).filter((line) => line.msg === IGNORED_WARNING);
    expect(warnings.map((line) => line.key).sort()).toEqual(expected);
    expect(warnings[0]!.level).toBe(40);

    await ctl('del', `${root}/route/x`);
    await waitFor(async () => (await ignoredKeys(admin)).length === 2, { timeoutMs: CONVERGENCE_MS, message: 'the deleted stray key to be forgotten' });
    expect(sampleValue(await admin.metrics(), 'switchboard_config_store_ignored_keys')).toBe(2);
  });

  it('ZooKeeper: lists a znode below a child of the root that is no kind, and forgets it once deleted', async () => {
    const root = '/sb-ignored-zk';
    const call = (work: (done: (error: unknown) => void) => void) => new Promise<void>((resolve, reject) => work((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
    await call((done) => zkWriter.mkdirp(`${root}/routes`, done));
    const { gateway, admin } = await start(`zk://${zk.connectString}${root}`);
    gateways.push(gateway);
    await call((done) => zkWriter.mkdirp(`${root}/middleware/auth`, done));
    await waitFor(async () => (await ignoredKeys(admin)).length === 1, { timeoutMs: CONVERGENCE_MS, message: 'the stray znode to be listed as ignored' });
    expect((await storeOf(admin)).ignored).toEqual([{ key: `${root}/middleware/auth`, reason: '"middleware" is not a kind of object (services, middlewares, consumers, certificates, routes): did you mean "middlewares"?' }]);
    expect(sampleValue(await admin.metrics(), 'switchboard_config_store_ignored_keys')).toBe(1);
    expect((await jsonLogLinesFrom(gateway.process)).filter((line) => line.msg === IGNORED_WARNING).map((line) => line.key)).toEqual([`${root}/middleware/auth`]);
    await call((done) => zkWriter.remove(`${root}/middleware/auth`, -1, done));
    await waitFor(async () => (await ignoredKeys(admin)).length === 0, { timeoutMs: CONVERGENCE_MS, message: 'the deleted stray znode to be forgotten' });
  });
});
