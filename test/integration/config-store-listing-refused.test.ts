import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminClient } from '../harness/admin-client.ts';
import { startStorePair, type StorePair } from '../harness/config-store-pair.ts';
import { waitFor } from '../harness/index.ts';

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

/**
 * Objects the gateway refused (written around the API, so never judged by it) are marked in
 * GET /api/store with the reason and whether the last good value still serves, not listed as if in
 * force. The marks come from the gateway's store reader, whatever the store; the listing is each
 * store's writer's, so both stores are held.
 */
describe('GET /api/store marks the objects the gateway refused', () => {
  let stores: StorePair;

  beforeAll(async () => {
    stores = await startStorePair(TOKEN);
  }, 60_000);

  afterAll(async () => {
    await stores?.close();
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
    const { admin } = await stores.gateway(stores.url('etcd', root));
    await judge(admin, (name, text) => stores.etcdctl('put', `${root}/routes/${name}`, text));
  });

  it('ZooKeeper', async () => {
    const root = '/sb-listing-refused-zk';
    await stores.zookeeper((client, done) => client.mkdirp(`${root}/routes`, done));
    const { admin } = await stores.gateway(stores.url('zookeeper', root));
    const written = new Set<string>();
    await judge(admin, async (name, text) => {
      const path = `${root}/routes/${name}`;
      await stores.zookeeper((client, done) => (written.has(path) ? client.setData(path, Buffer.from(text), -1, done) : client.create(path, Buffer.from(text), done)));
      written.add(path);
    });
  });
});
