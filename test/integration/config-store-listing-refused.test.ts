import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../harness/admin-client.ts';
import { makeCertificate } from '../harness/certificates.ts';
import { storePairFixture, type StorePair } from '../harness/config-store-pair.ts';
import { jsonLogLinesFrom, makeTempDir, waitFor, type GatewayProcess } from '../harness/index.ts';

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

/** Writes a route's znode under `root` around the API: created the first time, its data set after. */
function zooKeeperRoutes(stores: StorePair, root: string): (name: string, text: string) => Promise<void> {
  const written = new Set<string>();
  return async (name, text) => {
    const path = `${root}/routes/${name}`;
    await stores.zookeeper((client, done) => (written.has(path) ? client.setData(path, Buffer.from(text), -1, done) : client.create(path, Buffer.from(text), done)));
    written.add(path);
  };
}

/**
 * Objects the gateway refused (written around the API, so never judged by it) are marked in
 * GET /api/store with the reason and whether the last good value still serves, not listed as if in
 * force. The marks come from the gateway's store reader, whatever the store; the listing is each
 * store's writer's, so both stores are held.
 */
describe('GET /api/store marks the objects the gateway refused', () => {
  const pair = storePairFixture(TOKEN);

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
    const { admin } = await pair().gateway(pair().url('etcd', root));
    await judge(admin, (name, text) => pair().etcdctl('put', `${root}/routes/${name}`, text));
  });

  it('ZooKeeper', async () => {
    const root = '/sb-listing-refused-zk';
    await pair().zookeeper((client, done) => client.mkdirp(`${root}/routes`, done));
    const { admin } = await pair().gateway(pair().url('zookeeper', root));
    await judge(admin, zooKeeperRoutes(pair(), root));
  });
});

/**
 * A listing whose merged configuration is refused as a whole (the file's own CA bundle gone as the
 * store changes) leaves the reader's refusals as they were: they are of the listing applied before,
 * so GET /api/store marks no value the gateway did not judge so. It marked an object's new, valid
 * value with the refusal of its earlier one.
 */
describe('GET /api/store after a listing refused as a whole', () => {
  const pair = storePairFixture(TOKEN);

  async function wholeRefusal(store: 'etcd' | 'zookeeper', root: string, write: (name: string, text: string) => Promise<void>): Promise<void> {
    const keys = await makeTempDir('sb-listing-refused-whole-');
    const caFile = join(keys, 'ca.pem');
    await rename((await makeCertificate(keys, 'issuer', { key: 'ec', names: ['api.test'] })).certFile, caFile);
    const { gateway, admin } = await pair().gateway(pair().url(store, root), `  api: { protocol: https, tls: { caFile: ${caFile} }, instances: ["127.0.0.1:1"] }\n`);
    await write('flip', BAD);
    await waitFor(async () => (await listed(admin)).get('flip')?.refused, { timeoutMs: CONVERGENCE_MS, message: 'the bad value to be marked' });
    // The file's CA bundle goes (a renewal mid-way): the next merge reads it and is refused as a whole.
    await rename(caFile, join(keys, 'away.pem'));
    await write('flip', JSON.stringify({ path: '/flip', service: 'echo' }));
    await waitFor(async () => (await refusedWhole(gateway)) > 0, { timeoutMs: CONVERGENCE_MS, message: 'the merged configuration to be refused as a whole' });
    const objects = await listed(admin);
    expect(objects.get('flip')).not.toHaveProperty('refused');
    // The bad value's refusal still stands in /api/config: it is the configuration in force.
    expect(await (await admin.get('/api/config')).text()).toContain(`${root}/routes/flip`);
    await rename(join(keys, 'away.pem'), caFile);
    await waitFor(async () => (await (await admin.get('/api/config')).text()).includes('"/flip"'), { timeoutMs: CONVERGENCE_MS, message: 'the valid value to be applied once the bundle is back' });
    expect((await listed(admin)).get('flip')).not.toHaveProperty('refused');
  }

  async function refusedWhole(gateway: GatewayProcess): Promise<number> {
    return (await jsonLogLinesFrom(gateway.process)).filter((line) => line.msg === 'the configuration merged with the config store was refused; the running configuration stays').length;
  }

  it('etcd', async () => {
    const root = '/sb-listing-refused-whole';
    await wholeRefusal('etcd', root, (name, text) => pair().etcdctl('put', `${root}/routes/${name}`, text));
  });

  it('ZooKeeper', async () => {
    const root = '/sb-listing-refused-whole-zk';
    await pair().zookeeper((client, done) => client.mkdirp(`${root}/routes`, done));
    await wholeRefusal('zookeeper', root, zooKeeperRoutes(pair(), root));
  });
});
