import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../harness/admin-client.ts';
import { storePairFixture } from '../harness/config-store-pair.ts';
import { jsonLogLinesFrom, waitFor } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

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

/** How many store listings the gateway merged and applied (`switchboard_config_propagation_seconds` observes each one). */
async function appliedListings(admin: AdminClient): Promise<number | undefined> {
  return sampleValue(await admin.metrics(), 'switchboard_config_propagation_seconds_count');
}

/**
 * A key under the store's root that is neither an object nor a peer (a typo written with etcdctl or
 * zkCli) does nothing: the gateway says so once per key in its log, counts it, and lists it with the
 * reason in GET /api/store, instead of ignoring it silently.
 */
describe('keys under the store root that are neither objects nor peers', () => {
  const pair = storePairFixture(TOKEN);

  it('etcd: lists each with its reason, counts them, warns once per key, and forgets a deleted one', async () => {
    const root = '/sb-ignored-etcd';
    const ctl = (...args: string[]) => pair().etcdctl(...args);
    const route = JSON.stringify({ path: '/a', service: 'echo' });
    const { gateway, admin } = await pair().gateway(pair().url('etcd', root));
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

    // A stray key's new value, and a stray key added, change no object: nothing is merged or applied again.
    const applied = await appliedListings(admin);
    expect(applied).toBeGreaterThan(0);
    await ctl('put', `${root}/routes`, 'another value');
    await ctl('put', `${root}/route/y`, route);
    await waitFor(async () => (await ignoredKeys(admin)).includes(`${root}/route/y`), { timeoutMs: CONVERGENCE_MS, message: 'the added stray key to be listed' });
    expect(await appliedListings(admin)).toBe(applied);
    expect(sampleValue(await admin.metrics(), 'switchboard_config_store_ignored_keys')).toBe(3);
  });

  it('ZooKeeper: lists a znode below a child of the root that is no kind, and forgets it once deleted', async () => {
    const root = '/sb-ignored-zk';
    await pair().zookeeper((client, done) => client.mkdirp(`${root}/routes`, done));
    const { gateway, admin } = await pair().gateway(pair().url('zookeeper', root));
    await pair().zookeeper((client, done) => client.mkdirp(`${root}/middleware/auth`, done));
    await waitFor(async () => (await ignoredKeys(admin)).length === 1, { timeoutMs: CONVERGENCE_MS, message: 'the stray znode to be listed as ignored' });
    expect((await storeOf(admin)).ignored).toEqual([{ key: `${root}/middleware/auth`, reason: '"middleware" is not a kind of object (services, middlewares, consumers, certificates, routes): did you mean "middlewares"?' }]);
    expect(sampleValue(await admin.metrics(), 'switchboard_config_store_ignored_keys')).toBe(1);
    expect((await jsonLogLinesFrom(gateway.process)).filter((line) => line.msg === IGNORED_WARNING).map((line) => line.key)).toEqual([`${root}/middleware/auth`]);

    // A stray znode's new data, and a stray znode added, change no object: nothing is merged or applied again.
    const applied = await appliedListings(admin);
    expect(applied).toBeGreaterThan(0);
    await pair().zookeeper((client, done) => client.setData(`${root}/middleware/auth`, Buffer.from('another value'), -1, done));
    await pair().zookeeper((client, done) => client.create(`${root}/middleware/jwt`, done));
    await waitFor(async () => (await ignoredKeys(admin)).length === 2, { timeoutMs: CONVERGENCE_MS, message: 'the added stray znode to be listed' });
    expect(await appliedListings(admin)).toBe(applied);

    await pair().zookeeper((client, done) => client.remove(`${root}/middleware/jwt`, -1, done));
    await pair().zookeeper((client, done) => client.remove(`${root}/middleware/auth`, -1, done));
    await waitFor(async () => (await ignoredKeys(admin)).length === 0, { timeoutMs: CONVERGENCE_MS, message: 'the deleted stray znode to be forgotten' });
  });
});
