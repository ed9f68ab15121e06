import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { NEVER, Subject } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCertificate, type TestCertificate } from '../../test/harness/certificates.ts';
import { watchedByThisProcess } from '../../test/harness/folder-watched.ts';
import { makeTempDir, makeTempDirSync } from '../../test/harness/temp-dirs.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { parseConfig, type ConfigResult } from '../config/index.ts';
import { watchConfigWithStore } from './store-config.ts';
import { readStoreSnapshot, writeStoreSnapshot } from './store-snapshot-file.ts';
import type { StoreListing, StoreSource } from './store-source.ts';
import { configStoreState } from './store-status.ts';

const dir = makeTempDirSync('sb-store-watch-');
let count = 0;
const subscriptions: { unsubscribe(): void }[] = [];
afterEach(() => subscriptions.splice(0).forEach((subscription) => subscription.unsubscribe()));

/** A file result for `text`, as `watchConfig` emits it. */
function fileResult(path: string, text: string): ConfigResult {
  return { ok: true, config: parseConfig(path, text), text };
}

/** Quiet time of the named files' watch in these tests. */
const DEBOUNCE_MS = 20;

function scripted(log?: pino.Logger, readSnapshot?: typeof readStoreSnapshot) {
  count += 1;
  const path = join(dir, `gateway-${count}.yaml`);
  const snapshot = join(dir, `snapshot-${count}.json`);
  const url = `etcd://127.0.0.1:1/sb${count}`;
  const text = `listen: 127.0.0.1:8080\nadmin: false\nconfigStore: { url: "${url}", timeout: 50ms, snapshot: "${snapshot}" }\nroutes:\n  - { name: file-route, path: /file, service: f }\n`;
  const file$ = new Subject<ConfigResult>();
  const listings = new Subject<StoreListing>();
  let closed = false;
  const source: StoreSource = { listings$: listings, reason$: NEVER, start: () => undefined, close: async () => void (closed = true) };
  const results: ConfigResult[] = [];
  const subscription = watchConfigWithStore(path, { file$, createSource: () => source, readSnapshot, log, debounceMs: DEBOUNCE_MS }).subscribe((result) => results.push(result));
  subscriptions.push(subscription);
  const root = `/sb${count}`;
  const listing = (revision: string, routes: Record<string, unknown>): StoreListing => ({
    revision,
    receivedAt: Date.now(),
    entries: new Map(Object.entries(routes).map(([id, value]) => [`${root}/routes/${id}`, JSON.stringify(value)])),
  });
  const routeNames = () => {
    const last = results.at(-1);
    return last?.ok ? last.config.routes.map((route) => route.name) : undefined;
  };
  /** A listing of objects of any kind, by `<kind>/<name>`. */
  const objects = (revision: string, values: Record<string, unknown>): StoreListing => ({
    revision,
    receivedAt: Date.now(),
    entries: new Map(Object.entries(values).map(([id, value]) => [`${root}/${id}`, JSON.stringify(value)])),
  });
  /** Sends a listing and resolves once the composition it asks for has run (it runs on the next turn of the event loop). */
  const list = async (value: StoreListing) => {
    listings.next(value);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { path, snapshot, url, text, file$, listings, list, results, listing, objects, routeNames, subscription, closed: () => closed };
}

const until = async (condition: () => boolean) => {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
};

describe('watchConfigWithStore', () => {
  it('passes the file through unchanged when there is no configStore', () => {
    const file$ = new Subject<ConfigResult>();
    const results: ConfigResult[] = [];
    subscriptions.push(watchConfigWithStore('/tmp/plain.yaml', { file$, createSource: () => expect.unreachable() }).subscribe((result) => results.push(result)));
    const result = fileResult('/tmp/plain.yaml', 'listen: 127.0.0.1:8080\nadmin: false\n');
    file$.next(result);
    expect(results).toEqual([result]);
  });

  it('waits for the store at start, applies its listing merged with the file, and writes the snapshot', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    expect(store.results).toEqual([]);
    await store.list(store.listing('12', { stored: { path: '/stored', service: 's' } }));
    expect(store.routeNames()).toEqual(['file-route', 'stored']);
    await until(() => configStoreState.current()?.revision === '12');
    const written = await (async () => {
      for (;;) {
        const text = await readFile(store.snapshot, 'utf8').catch(() => '');
        if (text.includes('stored')) return JSON.parse(text) as { revision: string; url: string };
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    expect(written).toMatchObject({ revision: '12', url: store.url });
  });

  it('composes a burst of listings once, with the newest, where each listing used to be composed and applied', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('1', { first: { path: '/first', service: 's' } }));
    expect(store.results).toHaveLength(1);
    // A script writing many objects: the watch delivers listing after listing within one turn of the event loop.
    const routes: Record<string, unknown> = {};
    for (let index = 0; index < 50; index += 1) {
      routes[`r${index}`] = { path: `/r${index}`, service: 's' };
      store.listings.next(store.listing(String(index + 2), routes));
    }
    await until(() => store.results.length > 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.results).toHaveLength(2);
    expect(store.routeNames()).toHaveLength(51);
    expect(configStoreState.current()?.revision).toBe('51');
  });

  it('keeps the last good value of an object whose new value is refused, and says so; a new or deleted object is not kept', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    const paths = () => {
      const last = store.results.at(-1);
      return last?.ok ? last.config.routes.map((route) => route.path) : undefined;
    };
    await store.list(store.listing('1', { stored: { path: '/stored', service: 's' } }));
    expect(paths()).toEqual(['/file', '/stored']);
    // Written around the admin API (etcdctl): the new value is refused, the route keeps serving as it was.
    await store.list(store.listing('2', { stored: { path: 'no-slash', service: 's' }, fresh: { path: 'no-slash-either', service: 's' } }));
    expect(paths()).toEqual(['/file', '/stored']);
    const refused = configStoreState.current()?.refused ?? [];
    expect(refused.map((entry) => entry.key).sort()).toEqual([`/sb${count}/routes/fresh`, `/sb${count}/routes/stored`]);
    expect(refused.find((entry) => entry.key.endsWith('/stored'))?.reason).toMatch(/path: .*; its last good value stays in force$/);
    expect(refused.find((entry) => entry.key.endsWith('/fresh'))?.reason).not.toMatch(/last good/);
    // Still refused at the next change of another object: the earlier value is still the one in force.
    await store.list(store.listing('3', { stored: { path: 'no-slash', service: 's' }, other: { path: '/other', service: 's' } }));
    expect(paths()).toEqual(['/file', '/other', '/stored']);
    await store.list(store.listing('4', { stored: { path: '/stored-v2', service: 's' } }));
    expect(paths()).toEqual(['/file', '/stored-v2']);
    expect(configStoreState.current()?.refused).toEqual([]);
    await store.list(store.listing('5', {}));
    expect(paths()).toEqual(['/file']);
  });

  it('emits nothing for a listing that changes nothing in force (a refused write), so that no configuration is applied again', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('1', { stored: { path: '/stored', service: 's' } }));
    expect(store.results).toHaveLength(1);
    // A new object refused, then a refused new value of one in force (its last good value stays): the refusals are reported, nothing is applied.
    await store.list(store.listing('2', { stored: { path: '/stored', service: 's' }, fresh: { path: 'no-slash', service: 's' } }));
    await store.list(store.listing('3', { stored: { path: 'no-slash', service: 's' } }));
    expect(store.results).toHaveLength(1);
    expect(configStoreState.current()).toMatchObject({ revision: '3', refused: [expect.objectContaining({ key: `/sb${count}/routes/stored` })] });
    await store.list(store.listing('4', { stored: { path: '/stored-v2', service: 's' } }));
    expect(store.results).toHaveLength(2);
    expect(store.routeNames()).toEqual(['file-route', 'stored']);
  });

  it('emits the first listing read from the store even when it composes what the snapshot did: the configuration in force is now the shared one', async () => {
    const store = scripted();
    const routes = { remembered: { path: '/remembered', service: 's' } };
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', routes));
    store.file$.next(fileResult(store.path, store.text));
    await until(() => store.results.length > 0);
    await store.list(store.listing('7', routes));
    expect(store.results).toHaveLength(2);
    const last = store.results.at(-1);
    expect(last?.ok && configStoreState.isShared(last.config)).toBe(true);
  });

  it('writes the last good value of an object whose new value is refused to the snapshot, so that a restart from it keeps serving it', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('1', { stored: { path: '/stored', service: 's' } }));
    await store.list(store.listing('2', { stored: { path: 'no-slash', service: 's' }, other: { path: '/other', service: 's' } }));
    const written = await waitFor(
      async () => {
        const text = await readFile(store.snapshot, 'utf8').catch(() => '');
        const content = text === '' ? undefined : (JSON.parse(text) as { revision: string; entries: Record<string, string> });
        return content?.revision === '2' ? content : undefined;
      },
      { timeoutMs: 5_000, message: 'the snapshot of revision 2' },
    );
    expect(JSON.parse(written.entries[`/sb${count}/routes/stored`]!)).toEqual({ path: '/stored', service: 's' });
    expect(JSON.parse(written.entries[`/sb${count}/routes/other`]!)).toEqual({ path: '/other', service: 's' });
    // A gateway started from that snapshot (the store unreachable) serves the route as it was.
    const restarted = scripted();
    await writeStoreSnapshot(restarted.snapshot, restarted.url, { revision: written.revision, receivedAt: Date.now(), entries: new Map(Object.entries(written.entries).map(([key, value]) => [key.replace(`/sb${count - 1}/`, `/sb${count}/`), value])) });
    restarted.file$.next(fileResult(restarted.path, restarted.text));
    await until(() => restarted.results.length > 0);
    const last = restarted.results.at(-1);
    expect(last?.ok && last.config.routes.map((route) => route.path)).toEqual(['/file', '/other', '/stored']);
  });

  it('seeds the last good values from the snapshot when the store answers at start: an object it refuses keeps the snapshot\'s value; a valid or deleted one is the store\'s', async () => {
    const store = scripted();
    const paths = () => {
      const last = store.results.at(-1);
      return last?.ok ? last.config.routes.map((route) => route.path) : undefined;
    };
    const route = (path: string) => ({ path, service: 's' });
    // `bad` is refused on reading the snapshot too: re-validated, it is no last good value.
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { kept: route('/kept'), replaced: route('/replaced'), deleted: route('/deleted'), bad: route('no-slash') }));
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('9', { kept: route('no-slash'), replaced: route('/replaced-v2'), bad: route('still-no-slash'), fresh: route('no-slash') }));
    expect(paths()).toEqual(['/file', '/kept', '/replaced-v2']);
    const reasons = new Map((configStoreState.current()?.refused ?? []).map((entry) => [entry.key.slice(entry.key.lastIndexOf('/') + 1), entry.reason]));
    expect([...reasons.keys()].sort()).toEqual(['bad', 'fresh', 'kept']);
    expect(reasons.get('kept')).toMatch(/path: .*; its last good value stays in force$/);
    expect(reasons.get('bad')).not.toMatch(/last good/);
    expect(reasons.get('fresh')).not.toMatch(/last good/);
    expect(configStoreState.current()).toMatchObject({ source: 'store', revision: '9' });
  });

  it('judges the snapshot\'s last good values against the file in force when the store first answers, not the one read at start', async () => {
    const store = scripted();
    // The snapshot's value names a middleware that only the file's second version, read before the store answers, declares.
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { guarded: { path: '/guarded', service: 's', middlewares: ['strict'] } }));
    store.file$.next(fileResult(store.path, store.text));
    store.file$.next(fileResult(store.path, `${store.text}middlewares:\n  strict: { hsts: { maxAge: 1h } }\n`));
    await store.list(store.listing('9', { guarded: { path: 'no-slash', service: 's', middlewares: ['strict'] } }));
    const last = store.results.at(-1);
    expect(last?.ok && last.config.routes.map((route) => route.path)).toEqual(['/file', '/guarded']);
    expect(configStoreState.current()?.refused.map((entry) => entry.reason)).toEqual([expect.stringMatching(/path: .*; its last good value stays in force$/)]);
  });

  it('seeds no last good value from a snapshot of another store', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, 'etcd://elsewhere:2379/other', store.listing('7', { kept: { path: '/kept', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('9', { kept: { path: 'no-slash', service: 's' } }));
    expect(store.routeNames()).toEqual(['file-route']);
    expect(configStoreState.current()?.refused.map((entry) => entry.reason)).toEqual([expect.not.stringMatching(/last good/)]);
  });

  it('starts from the snapshot when the store does not answer in time, then catches up', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { remembered: { path: '/remembered', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await until(() => store.results.length > 0);
    expect(store.routeNames()).toEqual(['file-route', 'remembered']);
    expect(configStoreState.current()).toMatchObject({ source: 'snapshot', revision: '7' });
    await store.list(store.listing('9', { remembered: { path: '/remembered', service: 's' }, meanwhile: { path: '/meanwhile', service: 's' } }));
    expect(store.routeNames()).toEqual(['file-route', 'meanwhile', 'remembered']);
    expect(configStoreState.current()).toMatchObject({ source: 'store', revision: '9' });
  });

  it('starts from the snapshot when a reload adds configStore and the store does not answer in time, after composing the file alone', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { remembered: { path: '/remembered', service: 's' } }));
    const plain = store.text.replace(/^configStore:.*\n/m, '');
    store.file$.next(fileResult(store.path, plain));
    store.file$.next(fileResult(store.path, store.text));
    expect(store.results).toHaveLength(2);
    expect(store.routeNames()).toEqual(['file-route']);
    await until(() => store.results.length > 2);
    expect(store.routeNames()).toEqual(['file-route', 'remembered']);
    expect(configStoreState.current()).toMatchObject({ source: 'snapshot', revision: '7' });
  });

  it('lets the snapshot read at start be collected once the store has answered and its listing is applied', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let read: WeakRef<object> | undefined;
    const store = scripted(undefined, (path, url) => {
      const snapshot = readStoreSnapshot(path, url);
      if (snapshot.listing) read = new WeakRef(snapshot.listing);
      return snapshot;
    });
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { remembered: { path: '/remembered', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('9', { stored: { path: '/stored', service: 's' } }));
    expect(store.routeNames()).toEqual(['file-route', 'stored']);
    expect(read).toBeDefined();
    // A WeakRef's target lives at least to the end of the turn that made or read it: collect on later turns.
    for (let turn = 0; turn < 10 && read?.deref() !== undefined; turn += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    expect(read?.deref()).toBeUndefined();
  });

  it('takes a snapshot written under another spelling of the same store URL', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, ` ${store.url}/ `, store.listing('7', { remembered: { path: '/remembered', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await until(() => store.results.length > 0);
    expect(store.routeNames()).toEqual(['file-route', 'remembered']);
  });

  it('ignores a snapshot of another store and starts from the file alone', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, 'etcd://elsewhere:2379/other', store.listing('7', { foreign: { path: '/foreign', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await until(() => store.results.length > 0);
    expect(store.routeNames()).toEqual(['file-route']);
  });

  it('re-merges on a file change and keeps the store objects; a refused file keeps the running configuration', async () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    await store.list(store.listing('3', { stored: { path: '/stored', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text.replace('/file', '/file-moved')));
    const last = store.results.at(-1);
    expect(last?.ok && last.config.routes.map((route) => route.path)).toEqual(['/file-moved', '/stored']);
    store.file$.next({ ok: false, error: new Error('bad') as never });
    expect(store.results.at(-1)?.ok).toBe(false);
  });

  it('logs at most ten keys newly ignored a listing one by one and the rest as a count, none again while they stay', async () => {
    const lines: { msg: string; key?: string; more?: number; total?: number }[] = [];
    const store = scripted(pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }));
    store.file$.next(fileResult(store.path, store.text));
    const root = store.url.slice(store.url.lastIndexOf('/'));
    const stray = Array.from({ length: 2_000 }, (_, index) => `${root}/route/${index}`);
    await store.list({ ...store.listing('5', {}), ignored: stray });
    await store.list({ ...store.listing('6', { added: { path: '/added', service: 's' } }), ignored: [...stray, `${root}/route/last`] });
    const warnings = lines.filter((line) => line.msg.startsWith('config store key ignored') || line.msg.startsWith('more config store keys ignored'));
    expect(warnings.map((line) => line.key ?? `${line.more} more of ${line.total}`)).toEqual([...stray.slice(0, 10), '1990 more of 2000', `${root}/route/last`]);
    expect(configStoreState.current()?.ignored).toHaveLength(2_001);
  });

  it('closes the store source on unsubscribe', () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    subscriptions.splice(0).forEach((subscription) => subscription.unsubscribe());
    expect(store.closed()).toBe(true);
  });

  describe('a store object refused for a file it names, put right with no change of the store', () => {
    const TAKEN = 'refused config store object taken: a file it names has changed since its refusal';
    const COMPOSING = 'a file a refused config store object names has changed; composing again';
    let folder: string;
    let keys: string;
    let site: TestCertificate;
    let rightKey: string;
    let wrongKey: string;
    let lines: { msg: string; [field: string]: unknown }[];

    beforeEach(async () => {
      lines = [];
      folder = await makeTempDir('sb-store-files-');
      keys = join(folder, 'keys');
      await Promise.all([mkdir(keys), mkdir(join(folder, 'staging'))]);
      const [made, other] = await Promise.all([makeCertificate(keys, 'site', { key: 'ec', names: ['site.test'] }), makeCertificate(join(folder, 'staging'), 'other', { key: 'ec', names: ['other.test'] })]);
      site = made;
      [rightKey, wrongKey] = await Promise.all([readFile(site.keyFile, 'utf8'), readFile(other.keyFile, 'utf8')]);
      await writeFile(site.keyFile, wrongKey);
    });

    const logged = (msg: string) => lines.filter((line) => line.msg === msg);
    /** A store whose file has been read and whose listing `values` has been composed; the log is kept in `lines`. */
    const composed = async (values: Record<string, unknown>) => {
      const store = scripted(pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }));
      store.file$.next(fileResult(store.path, store.text));
      await store.list(store.objects('5', { 'routes/stored': { path: '/stored', service: 's' }, ...values }));
      return store;
    };
    const certificateNames = (store: ReturnType<typeof scripted>) => {
      const last = store.results.at(-1);
      return last?.ok ? [...last.config.certificates].map((certificate) => certificate.name) : undefined;
    };
    const refusedKeys = () => (configStoreState.current()?.refused ?? []).map((entry) => entry.key);

    it('applies a certificates object refused for a wrong key once the right key is written, and says so once', async () => {
      const store = await composed({ 'certificates/site': { certFile: site.certFile, keyFile: site.keyFile } });
      expect(store.results).toHaveLength(1);
      expect(store.routeNames()).toEqual(['file-route', 'stored']);
      expect(certificateNames(store)).toEqual([]);
      expect(refusedKeys()).toEqual([`/sb${count}/certificates/site`]);
      await writeFile(site.keyFile, rightKey);
      await waitFor(() => store.results.length >= 2, { timeoutMs: 5_000, message: 'the refused object to be taken' });
      expect(certificateNames(store)).toEqual(['site']);
      expect(store.routeNames()).toEqual(['file-route', 'stored']);
      expect(refusedKeys()).toEqual([]);
      expect(logged(TAKEN).map((line) => line.key)).toEqual([`/sb${count}/certificates/site`]);
    });

    it('applies a service refused for a missing CA bundle once the bundle is copied in', async () => {
      const caFile = join(keys, 'ca.pem');
      const store = await composed({ 'services/api': { protocol: 'https', tls: { caFile } } });
      expect(store.results).toHaveLength(1);
      let last = store.results.at(-1);
      expect(last?.ok && last.config.services.has('api')).toBe(false);
      await rename((await makeCertificate(join(folder, 'staging'), 'issuer', { key: 'ec', names: ['api.test'] })).certFile, caFile);
      await waitFor(() => store.results.length >= 2, { timeoutMs: 5_000, message: 'the refused service to be taken' });
      last = store.results.at(-1);
      expect(last?.ok && last.config.services.get('api')?.tls.caFile).toBe(caFile);
      expect(logged(TAKEN)).toHaveLength(1);
    });

    it('does not report an object that stays bad again when its files change, and takes it once it is good', async () => {
      const store = await composed({ 'certificates/site': { certFile: site.certFile, keyFile: site.keyFile } });
      await waitFor(() => watchedByThisProcess(keys), { timeoutMs: 5_000, message: 'the key folder to be watched' });
      await writeFile(site.keyFile, wrongKey);
      await writeFile(join(keys, 'unrelated.log'), 'line\n');
      await waitFor(() => logged(COMPOSING).length > 0, { timeoutMs: 5_000, message: 'a composition for the key file' });
      // An observation window, not synchronisation: a result for the still refused object would arrive in it.
      await delay(DEBOUNCE_MS * 5);
      expect(store.results).toHaveLength(1);
      await writeFile(site.keyFile, rightKey);
      await waitFor(() => store.results.length >= 2, { timeoutMs: 5_000, message: 'the refused object to be taken' });
      expect(certificateNames(store)).toEqual(['site']);
    });

    it('applies a merged document refused as a whole for a file it names once that file is back', async () => {
      const caFile = join(keys, 'ca.pem');
      await rename((await makeCertificate(join(folder, 'staging'), 'issuer', { key: 'ec', names: ['api.test'] })).certFile, caFile);
      const store = scripted(pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) }));
      const text = `${store.text}services:\n  api: { protocol: https, tls: { caFile: ${caFile} } }\n`;
      store.file$.next(fileResult(store.path, text));
      await store.list(store.listing('5', { stored: { path: '/stored', service: 's' } }));
      expect(store.routeNames()).toEqual(['file-route', 'stored']);
      // The file's own CA bundle goes away (a renewal mid-way) as the store changes: no store object is to blame.
      const held = join(folder, 'staging', 'ca.pem');
      await rename(caFile, held);
      await store.list(store.listing('6', { stored: { path: '/stored', service: 's' }, added: { path: '/added', service: 's' } }));
      expect(store.results.map((result) => result.ok)).toEqual([true, false]);
      await rename(held, caFile);
      await waitFor(() => store.results.length >= 3, { timeoutMs: 5_000, message: 'the refused document to be taken' });
      expect(store.routeNames()).toEqual(['file-route', 'added', 'stored']);
      expect(logged('the configuration merged with the config store is taken: a file it names has changed since its refusal')).toHaveLength(1);
    });

    it('applies a store write that changes no value when a CA bundle only a store object names was renewed since: nothing else reads it again', async () => {
      const caFile = join(keys, 'ca.pem');
      await rename((await makeCertificate(join(folder, 'staging'), 'issuer', { key: 'ec', names: ['api.test'] })).certFile, caFile);
      const api = { 'services/api': { protocol: 'https', tls: { caFile } } };
      const store = await composed(api);
      const bundle = (result: ConfigResult | undefined) => (result?.ok ? result.config.services.get('api')?.tls.files : undefined);
      const before = bundle(store.results.at(-1));
      expect(before).toBeDefined();
      await rename((await makeCertificate(join(folder, 'staging'), 'renewed', { key: 'ec', names: ['api.test'] })).certFile, caFile);
      // The same objects at a new revision (`etcdctl put` of the same value): the renewed bundle is read and applied.
      await store.list(store.objects('6', { 'routes/stored': { path: '/stored', service: 's' }, ...api }));
      expect(store.results).toHaveLength(2);
      expect(bundle(store.results.at(-1))).not.toEqual(before);
      // Again, with the bundle as in force: nothing to apply.
      await store.list(store.objects('7', { 'routes/stored': { path: '/stored', service: 's' }, ...api }));
      expect(store.results).toHaveLength(2);
    });

    it('does not watch the files of an object refused for its own content, nor compose again when they change', async () => {
      await writeFile(site.keyFile, rightKey);
      // Refused for an unknown field: no file can change that.
      const store = await composed({ 'certificates/site': { certFile: site.certFile, keyFile: site.keyFile, unknownField: true } });
      expect(refusedKeys()).toEqual([`/sb${count}/certificates/site`]);
      expect(await watchedByThisProcess(keys)).toBe(false);
      await writeFile(site.keyFile, wrongKey);
      await writeFile(site.keyFile, rightKey);
      // An observation window, not synchronisation: a composition after the key's change would arrive in it.
      await delay(DEBOUNCE_MS * 10);
      expect(store.results).toHaveLength(1);
      expect(logged(COMPOSING)).toEqual([]);
      expect(logged(TAKEN)).toEqual([]);
    });

    it('composes no more once unsubscribed, and lets the key folder go', async () => {
      const store = await composed({ 'certificates/site': { certFile: site.certFile, keyFile: site.keyFile } });
      await waitFor(() => watchedByThisProcess(keys), { timeoutMs: 5_000, message: 'the key folder to be watched' });
      store.subscription.unsubscribe();
      await writeFile(site.keyFile, rightKey);
      // Absence can only be waited for: a watch still running would compose within it.
      await delay(DEBOUNCE_MS * 10);
      expect(store.results).toHaveLength(1);
      expect(logged(TAKEN)).toEqual([]);
      await waitFor(async () => !(await watchedByThisProcess(keys)), { timeoutMs: 5_000, message: 'the key folder watch to be closed' });
    });
  });
});
