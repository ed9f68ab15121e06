import { readFile } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type ConfigResult } from '../config/index.ts';
import { watchConfigWithStore } from './store-config.ts';
import { writeStoreSnapshot } from './store-snapshot-file.ts';
import type { StoreListing, StoreSource } from './store-source.ts';
import { configStoreState } from './store-status.ts';

const dir = mkdtempSync(join(tmpdir(), 'sb-store-watch-'));
let count = 0;
const subscriptions: { unsubscribe(): void }[] = [];
afterEach(() => subscriptions.splice(0).forEach((subscription) => subscription.unsubscribe()));

/** A file result for `text`, as `watchConfig` emits it. */
function fileResult(path: string, text: string): ConfigResult {
  return { ok: true, config: parseConfig(path, text), text };
}

function scripted() {
  count += 1;
  const path = join(dir, `gateway-${count}.yaml`);
  const snapshot = join(dir, `snapshot-${count}.json`);
  const url = `etcd://127.0.0.1:1/sb${count}`;
  const text = `listen: 127.0.0.1:8080\nadmin: false\nconfigStore: { url: "${url}", timeout: 50ms, snapshot: "${snapshot}" }\nroutes:\n  - { name: file-route, path: /file, service: f }\n`;
  const file$ = new Subject<ConfigResult>();
  const listings = new Subject<StoreListing>();
  let closed = false;
  const source: StoreSource = { listings$: listings, start: () => undefined, close: async () => void (closed = true) };
  const results: ConfigResult[] = [];
  subscriptions.push(watchConfigWithStore(path, { file$, createSource: () => source }).subscribe((result) => results.push(result)));
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
  return { path, snapshot, url, text, file$, listings, results, listing, routeNames, closed: () => closed };
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
    store.listings.next(store.listing('12', { stored: { path: '/stored', service: 's' } }));
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

  it('starts from the snapshot when the store does not answer in time, then catches up', async () => {
    const store = scripted();
    await writeStoreSnapshot(store.snapshot, store.url, store.listing('7', { remembered: { path: '/remembered', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text));
    await until(() => store.results.length > 0);
    expect(store.routeNames()).toEqual(['file-route', 'remembered']);
    expect(configStoreState.current()).toMatchObject({ source: 'snapshot', revision: '7' });
    store.listings.next(store.listing('9', { remembered: { path: '/remembered', service: 's' }, meanwhile: { path: '/meanwhile', service: 's' } }));
    expect(store.routeNames()).toEqual(['file-route', 'meanwhile', 'remembered']);
    expect(configStoreState.current()).toMatchObject({ source: 'store', revision: '9' });
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

  it('re-merges on a file change and keeps the store objects; a refused file keeps the running configuration', () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    store.listings.next(store.listing('3', { stored: { path: '/stored', service: 's' } }));
    store.file$.next(fileResult(store.path, store.text.replace('/file', '/file-moved')));
    const last = store.results.at(-1);
    expect(last?.ok && last.config.routes.map((route) => route.path)).toEqual(['/file-moved', '/stored']);
    store.file$.next({ ok: false, error: new Error('bad') as never });
    expect(store.results.at(-1)?.ok).toBe(false);
  });

  it('closes the store source on unsubscribe', () => {
    const store = scripted();
    store.file$.next(fileResult(store.path, store.text));
    subscriptions.splice(0).forEach((subscription) => subscription.unsubscribe());
    expect(store.closed()).toBe(true);
  });
});
