import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rootLogger } from '../logger.ts';
import { invalidInstancesTotal } from '../metrics.ts';
import { MAX_INVALID_ENTRIES_LISTED, type ProviderSnapshot, type ProviderStatus } from './provider.ts';
import { ProviderStore } from './provider-store.ts';
import { registryLayout } from './layout/index.ts';

describe('ProviderStore lists the invalid entries it skips', () => {
  let store: ProviderStore;
  let snapshots: ProviderSnapshot[];

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000 });
    store = new ProviderStore('zk-test', rootLogger);
    snapshots = [];
    store.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
  });

  afterEach(() => {
    store.complete();
    vi.useRealTimers();
  });

  it('names each skipped entry with its key, reason and the time it was first seen, and serves its siblings', async () => {
    const good = { service: 'user', name: 'u1', key: '/services/user/u1', data: '{"host":"10.0.0.1","port":80}' };
    const other = { service: 'user', name: 'u2', key: '/services/user/u2', data: '{"service":"orders","host":"10.0.0.2","port":80}' };
    const before = (await invalidInstancesTotal.get()).values.find((value) => value.labels.provider === 'zk-test')?.value ?? 0;
    store.publishRaw('user', [good, other], '1');
    vi.setSystemTime(5_000);
    store.publishRaw('user', [good, other, { service: 'user', name: 'bad', data: 'x' }], '2');
    const latest = snapshots.at(-1)!;
    expect(latest.instances.map((instance) => instance.id)).toEqual(['u1']);
    expect(latest.invalid).toBe(2);
    expect(latest.invalidEntries).toEqual([
      { key: '/services/user/u2', reason: expect.stringMatching(/payload names service "orders" but the entry is under "user"/), since: 1_000 },
      { key: 'user/bad', reason: expect.stringMatching(/not JSON/), since: 5_000 },
    ]);
    // Counted once per distinct bad entry, however often the service is re-listed.
    const after = (await invalidInstancesTotal.get()).values.find((value) => value.labels.provider === 'zk-test')?.value ?? 0;
    expect(after - before).toBe(2);
  });

  it('forgets a bad entry once the registry no longer lists it, and reports it anew if it returns', async () => {
    const bad = { service: 'user', name: 'bad', data: 'x' };
    const good = { service: 'user', name: 'u1', data: '{"host":"10.0.0.1","port":80}' };
    const counted = async () => (await invalidInstancesTotal.get()).values.find((value) => value.labels.provider === 'zk-test')?.value ?? 0;
    const before = await counted();
    store.publishRaw('user', [good, bad], '1');
    store.publishRaw('user', [good, bad], '2');
    expect(await counted()).toBe(before + 1);
    store.publishRaw('user', [good], '3');
    expect(snapshots.at(-1)!.invalid).toBe(0);
    vi.setSystemTime(9_000);
    store.publishRaw('user', [good, bad], '4');
    expect(await counted()).toBe(before + 2);
    expect(snapshots.at(-1)!.invalidEntries).toEqual([{ key: 'user/bad', reason: expect.any(String), since: 9_000 }]);
  });

  it('bounds the list but counts every skipped entry', () => {
    const bad = Array.from({ length: MAX_INVALID_ENTRIES_LISTED + 5 }, (_, index) => ({ service: 'user', name: `b${index}`, data: '{}' }));
    store.publishRaw('user', bad, '1');
    expect(snapshots.at(-1)!.invalid).toBe(MAX_INVALID_ENTRIES_LISTED + 5);
    expect(snapshots.at(-1)!.invalidEntries).toHaveLength(MAX_INVALID_ENTRIES_LISTED);
  });
});

describe('ProviderStore with a layout decoder', () => {
  it('publishes every instance an entry carries and lists an entry the layout refuses as invalid', () => {
    const store = new ProviderStore('etcd-go-micro', rootLogger, registryLayout({ name: 'go-micro' }).decode);
    const snapshots: ProviderSnapshot[] = [];
    store.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    const twoNodes = JSON.stringify({ name: 'greeter', nodes: [{ id: 'a', address: '10.0.0.1:80' }, { id: 'b', address: '10.0.0.2:80' }] });
    store.publishRaw('greeter', [{ service: 'greeter', name: 'a', key: '/micro/registry/greeter/a', data: twoNodes }, { service: 'greeter', name: 'c', key: '/micro/registry/greeter/c', data: '10.0.0.3:80' }], '7');
    const latest = snapshots.at(-1)!;
    expect(latest.instances.map((instance) => instance.id)).toEqual(['a', 'b']);
    expect(latest.invalid).toBe(1);
    expect(latest.invalidEntries?.[0]).toMatchObject({ key: '/micro/registry/greeter/c', reason: expect.stringMatching(/not a go-micro Service JSON/) as unknown });
    store.complete();
  });
});

describe('ProviderStore decodes only what changed', () => {
  const entry = (name: string, port: number, host = '10.0.0.1') => ({ service: 'user', name, key: `/services/user/${name}`, data: Buffer.from(JSON.stringify({ host, port })) });

  it('decodes a re-listed entry again only when its data changed, and keeps the instance objects of the others', () => {
    const decoded: string[] = [];
    const native = registryLayout(undefined).decode;
    const store = new ProviderStore('zk-cache', rootLogger, (raw) => {
      decoded.push(raw.name);
      return native(raw);
    });
    const snapshots: ProviderSnapshot[] = [];
    store.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    store.publishRaw('user', [entry('a', 80), entry('b', 81), entry('c', 82)], '1');
    // Equal bytes in a new buffer (etcd hands over fresh values) count as unchanged too.
    store.publishRaw('user', [entry('a', 80), entry('b', 91), entry('c', 82), entry('d', 83)], '2');
    expect(decoded).toEqual(['a', 'b', 'c', 'b', 'd']);
    const [first, second] = snapshots;
    expect(second!.instances.map((instance) => `${instance.id}:${instance.port}`)).toEqual(['a:80', 'b:91', 'c:82', 'd:83']);
    expect(second!.instances[0]).toBe(first!.instances[0]);
    expect(second!.instances[2]).toBe(first!.instances[2]);
    // An entry the registry dropped is forgotten: listed again with the same data, it is decoded anew.
    store.publishRaw('user', [entry('b', 91)], '3');
    store.publishRaw('user', [entry('a', 80), entry('b', 91)], '4');
    expect(decoded).toEqual(['a', 'b', 'c', 'b', 'd', 'a']);
    expect(snapshots.at(-1)!.instances.map((instance) => instance.id)).toEqual(['a', 'b']);
    store.complete();
  });

  it('still skips, counts and lists a bad entry it remembers', () => {
    const store = new ProviderStore('zk-cache-bad', rootLogger);
    const snapshots: ProviderSnapshot[] = [];
    store.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    const bad = { service: 'user', name: 'bad', data: Buffer.from('not json') };
    store.publishRaw('user', [entry('a', 80), bad], '1');
    store.publishRaw('user', [entry('a', 80), bad, entry('b', 81)], '2');
    expect(snapshots.at(-1)!.instances.map((instance) => instance.id)).toEqual(['a', 'b']);
    expect(snapshots.at(-1)!.invalid).toBe(1);
    expect(snapshots.at(-1)!.invalidEntries).toEqual([{ key: 'user/bad', reason: expect.stringMatching(/not JSON/), since: expect.any(Number) }]);
    store.complete();
  });
});

describe('ProviderStore status', () => {
  it('replaces the reason of a repeated state and keeps since, and emits nothing for the same state and reason', () => {
    vi.useFakeTimers({ now: 1_000 });
    const store = new ProviderStore('status-test', rootLogger);
    const statuses: ProviderStatus[] = [];
    store.status$.subscribe((status) => statuses.push(status));
    store.setStatus('connected');
    vi.setSystemTime(2_000);
    store.setStatus('stale', 'disconnected from ZooKeeper');
    vi.setSystemTime(3_000);
    store.setStatus('stale', 'ZooKeeper session expired');
    store.setStatus('stale', 'ZooKeeper session expired');
    vi.setSystemTime(4_000);
    store.setStatus('connected');
    store.complete();
    vi.useRealTimers();
    expect(statuses.map(({ state, since, reason }) => ({ state, since, reason }))).toEqual([
      { state: 'connecting', since: 1_000, reason: undefined },
      { state: 'connected', since: 1_000, reason: undefined },
      { state: 'stale', since: 2_000, reason: 'disconnected from ZooKeeper' },
      { state: 'stale', since: 2_000, reason: 'ZooKeeper session expired' },
      { state: 'connected', since: 4_000, reason: undefined },
      { state: 'closed', since: 4_000, reason: undefined },
    ]);
  });
});
