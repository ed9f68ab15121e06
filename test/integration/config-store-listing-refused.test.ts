import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { connectZooKeeperClient, startEtcd, startGateway, startZooKeeper, waitFor, type EtcdCluster, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const run = promisify(execFile);
const TOKEN = 'config-store-listing-refused-token-9e4d';
const CONVERGENCE_MS = 20_000;

interface Mark {
  readonly reason: string;
  readonly lastGoodInForce: boolean;
}

interface StoreBody {
  readonly objects: { kind: string; name: string; refused?: Mark }[];
  readonly unreadable: { kind: string; name: string; refused?: Mark }[];
}

const GOOD = JSON.stringify({ path: '/kept', service: 'echo' });
const BAD = JSON.stringify({ path: 'no-leading-slash', service: 'echo' });

/** The store's objects as GET /api/store lists them, by name. */
async function listed(admin: AdminClient): Promise<Map<string, { refused?: Mark }>> {
  const answer = await admin.get('/api/store');
  const text = await answer.text();
  if (answer.status !== 200) throw new Error(`/api/store answered ${answer.status}: ${text}`);
  const body = JSON.parse(text) as StoreBody;
  return new Map([...body.objects, ...body.unreadable].map((entry) => [entry.name, entry]));
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
 * Objects the gateway refused (written around the API, so never judged by it) are marked in
 * GET /api/store with the reason and whether the last good value still serves, not listed as if in
 * force. The marks come from the gateway's store reader, whatever the store; the listing is each
 * store's writer's, so both stores are held.
 */
describe('GET /api/store marks the objects the gateway refused', () => {
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

  /** Writes `kept` valid (applied), then invalid; `fresh` invalid and `fine` valid; `broken` not JSON; then reads the marks. */
  async function judge(admin: AdminClient, write: (name: string, text: string) => Promise<void>): Promise<void> {
    await write('kept', GOOD);
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('"/kept"'), { timeoutMs: CONVERGENCE_MS, message: 'the valid route to be applied' });
    await write('kept', BAD);
    await write('fresh', BAD);
    await write('fine', JSON.stringify({ path: '/fine', service: 'echo' }));
    await write('broken', '{not json');
    const marks = await waitFor(
      async () => {
        const objects = await listed(admin);
        return ['kept', 'fresh', 'broken'].every((name) => objects.get(name)?.refused) ? objects : undefined;
      },
      { timeoutMs: CONVERGENCE_MS, message: 'the refused objects to be marked' },
    );
    expect(marks.get('kept')!.refused).toEqual({ reason: expect.stringMatching(/path: .*; its last good value stays in force$/), lastGoodInForce: true });
    expect(marks.get('fresh')!.refused).toEqual({ reason: expect.stringMatching(/path: /), lastGoodInForce: false });
    expect(marks.get('broken')!.refused).toEqual({ reason: expect.stringMatching(/not JSON/), lastGoodInForce: false });
    expect(marks.get('fine')).not.toHaveProperty('refused');
    // The last good value serves: the route in force is still the valid one.
    expect(await (await admin.get('/api/config')).text()).toContain('"/kept"');

    // A fixed value is no longer marked once the gateway applied it.
    await write('kept', JSON.stringify({ path: '/kept-again', service: 'echo' }));
    await waitFor(async () => (await listed(admin)).get('kept')?.refused === undefined, { timeoutMs: CONVERGENCE_MS, message: 'the fixed object to be unmarked' });
  }

  it('etcd', async () => {
    const root = '/sb-listing-refused';
    const { gateway, admin } = await start(`etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${root}`);
    gateways.push(gateway);
    await judge(admin, async (name, text) => {
      await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', 'put', `${root}/routes/${name}`, text], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    });
  });

  it('ZooKeeper', async () => {
    const root = '/sb-listing-refused-zk';
    const call = (work: (done: (error: unknown) => void) => void) => new Promise<void>((resolve, reject) => work((error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve())));
    await call((done) => zkWriter.mkdirp(`${root}/routes`, done));
    const { gateway, admin } = await start(`zk://${zk.connectString}${root}`);
    gateways.push(gateway);
    const written = new Set<string>();
    await judge(admin, async (name, text) => {
      const path = `${root}/routes/${name}`;
      if (written.has(path)) await call((done) => zkWriter.setData(path, Buffer.from(text), -1, done));
      else await call((done) => zkWriter.create(path, Buffer.from(text), done));
      written.add(path);
    });
  });
});
