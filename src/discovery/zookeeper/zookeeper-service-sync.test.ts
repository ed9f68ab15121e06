import type { Stat } from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import { ZooKeeperError, type ZooKeeperReader } from '../../zookeeper/index.ts';
import type { RawInstance } from '../instance-codec.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { ZooKeeperServiceSync, type WatchMode } from './zookeeper-service-sync.ts';

const SERVICE_PATH = '/services/web';

function stat(zxid: number): Stat {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(zxid));
  return { mzxid: buffer, pzxid: buffer } as Stat;
}

/**
 * An in-memory `<service>/<child>` tree. `hold('reply')` parks getData answers already read;
 * `hold('read')` parks the requests themselves (the server reads later); `release()` lets them go.
 */
function fakeTree() {
  const children = new Map<string, string>();
  const dataReads: string[] = [];
  const held: Array<() => void> = [];
  let hold: false | 'reply' | 'read' = false;
  let absent = false;
  let zxid = 1;
  const existsCalls: string[] = [];
  const listings: string[][] = [];
  /** Reads that asked for a watch of their own. */
  let watchedReads = 0;
  const heldListings: Array<() => void> = [];
  let holdListing = false;
  const reader: ZooKeeperReader = {
    async getChildren(path, watcher) {
      if (watcher) watchedReads += 1;
      if (path !== SERVICE_PATH || absent) throw new ZooKeeperError('NO_NODE', path);
      // The server answers with the membership of the moment it reads; the answer may travel late.
      const answer = { children: [...children.keys()], stat: stat(zxid) };
      listings.push(answer.children);
      if (holdListing) await new Promise<void>((resolve) => heldListings.push(resolve));
      return answer;
    },
    async getData(path, watcher) {
      if (watcher) watchedReads += 1;
      const name = path.slice(SERVICE_PATH.length + 1);
      dataReads.push(name);
      if (hold === 'read') await new Promise<void>((resolve) => held.push(resolve));
      const value = children.get(name);
      if (hold === 'reply') await new Promise<void>((resolve) => held.push(resolve));
      if (value === undefined) throw new ZooKeeperError('NO_NODE', path);
      return { data: Buffer.from(value), stat: stat(zxid) };
    },
    async exists(path, watcher) {
      if (watcher) watchedReads += 1;
      existsCalls.push(path);
      return absent || path !== SERVICE_PATH ? null : stat(zxid);
    },
  };
  return {
    reader,
    dataReads,
    existsCalls,
    listings,
    watchedReads: () => watchedReads,
    /** Parks listing answers (already read) until `releaseListings`. */
    holdListings(value: boolean) {
      holdListing = value;
    },
    releaseListings() {
      for (const resolve of heldListings.splice(0)) resolve();
    },
    heldListings: () => heldListings.length,
    /** The service path itself missing (or back). */
    absent(value: boolean) {
      absent = value;
      zxid += 1;
    },
    set(name: string, port: number) {
      zxid += 1;
      children.set(name, JSON.stringify({ host: '10.0.0.1', port }));
    },
    delete(name: string) {
      zxid += 1;
      children.delete(name);
    },
    hold(mode: false | 'reply' | 'read') {
      hold = mode;
    },
    release() {
      for (const resolve of held.splice(0)) resolve();
    },
  };
}

function setup(mode?: () => WatchMode) {
  const tree = fakeTree();
  const published: RawInstance[][] = [];
  const gone: string[] = [];
  const sync = new ZooKeeperServiceSync('web', SERVICE_PATH, {
    reader: tree.reader,
    watcher: () => undefined,
    ...(mode ? { mode } : {}),
    publish: (_service, entries) => published.push([...entries]),
    gone: (service) => gone.push(service),
    failed: () => undefined,
  });
  const ports = () => published.at(-1)!.map((entry) => `${entry.name}=${(JSON.parse(String(entry.data)) as { port: number }).port}`).sort();
  return { tree, sync, published, gone, ports };
}

describe('ZooKeeperServiceSync', () => {
  it('reads only the children it has not cached when membership changes', async () => {
    const { tree, sync, published } = setup();
    for (let i = 0; i < 500; i += 1) tree.set(`i${i}`, 8000 + i);
    await sync.refresh();
    expect(tree.dataReads).toHaveLength(500);
    expect(published.at(-1)).toHaveLength(500);

    tree.set('i500', 9000);
    await sync.refresh();
    expect(tree.dataReads).toHaveLength(501);
    expect(published.at(-1)).toHaveLength(501);

    tree.delete('i0');
    await sync.refresh();
    expect(tree.dataReads).toHaveLength(501);
    expect(published.at(-1)).toHaveLength(500);
  });

  it('re-reads a child whose data watch fired and publishes its new value', async () => {
    const { tree, sync, ports } = setup();
    tree.set('a', 80);
    tree.set('b', 81);
    await sync.refresh();
    tree.set('a', 90);
    await sync.invalidate('a');
    expect(ports()).toEqual(['a=90', 'b=81']);
    expect(tree.dataReads).toEqual(['a', 'b', 'a']);
    // The child watch had not fired, so membership is as last listed: no second listing.
    expect(tree.listings).toHaveLength(1);
  });

  it('delivers the final value of every child after a burst of data changes, re-reading without re-listing', async () => {
    const { tree, sync, ports, published } = setup();
    for (const name of ['a', 'b', 'c']) tree.set(name, 80);
    await sync.refresh();
    const runs: Promise<void>[] = [];
    for (let change = 1; change <= 60; change += 1) {
      const name = ['a', 'b', 'c'][change % 3]!;
      tree.set(name, 80 + change);
      runs.push(sync.invalidate(name));
    }
    await Promise.all(runs);
    expect(ports()).toEqual(['a=140', 'b=138', 'c=139']);
    expect(tree.listings).toHaveLength(1);
    // Coalesced: far fewer snapshots than changes.
    expect(published.length).toBeLessThan(10);
  });

  it('lists again when a child event arrives while a listing is on its way, even if a data change joins the same run', async () => {
    const { tree, sync, ports } = setup();
    tree.set('a', 80);
    await sync.refresh();
    tree.holdListings(true);
    const relist = sync.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    // The held answer lists only `a`; `b` arrives after the server read, with its child event.
    tree.set('b', 81);
    const childEvent = sync.refresh();
    tree.set('a', 90);
    const dataEvent = sync.invalidate('a');
    tree.holdListings(false);
    tree.releaseListings();
    await Promise.all([relist, childEvent, dataEvent]);
    expect(ports()).toEqual(['a=90', 'b=81']);
    expect(tree.listings.at(-1)).toEqual(['a', 'b']);
  });

  it('does not cache a value read before a data event that arrived during the read', async () => {
    const { tree, sync, ports } = setup();
    tree.set('a', 80);
    tree.hold('reply');
    const first = sync.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    expect(tree.dataReads).toEqual(['a']);
    // The change lands while the answer with the old value is on its way.
    tree.set('a', 90);
    void sync.invalidate('a');
    tree.hold(false);
    tree.release();
    await first;
    expect(ports()).toEqual(['a=90']);
  });

  it('keeps a cached child in the snapshot when its data watch fires during a re-list', async () => {
    const { tree, sync, published } = setup();
    tree.set('a', 80);
    await sync.refresh();
    tree.set('b', 81);
    tree.hold('read');
    const relist = sync.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    void sync.invalidate('a');
    tree.hold(false);
    tree.release();
    await relist;
    expect(published.every((entries) => entries.some((entry) => entry.name === 'a'))).toBe(true);
    expect(published.at(-1)!.map((entry) => entry.name).sort()).toEqual(['a', 'b']);
  });

  it('skips a child deleted between the listing and its read', async () => {
    const { tree, sync, published } = setup();
    tree.set('a', 80);
    tree.set('b', 81);
    tree.hold('read');
    const relist = sync.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    tree.delete('b');
    tree.hold(false);
    tree.release();
    await relist;
    expect(published.at(-1)!.map((entry) => entry.name)).toEqual(['a']);
  });

  it('reports the service gone when its znode no longer exists, and publishes nothing itself', async () => {
    const { sync, published, gone } = setup();
    const orphan = new ZooKeeperServiceSync('old', '/services/old', {
      reader: fakeTree().reader,
      watcher: () => undefined,
      publish: (_service, entries) => published.push([...entries]),
      gone: (service) => gone.push(service),
      failed: () => undefined,
    });
    await orphan.refresh();
    expect(gone).toEqual(['old']);
    expect(published).toEqual([]);
    sync.dispose();
  });

  it('waits for a missing instances node with an existence watch when absence means empty, and never reports the service gone', async () => {
    const tree = fakeTree();
    const published: string[][] = [];
    const gone: string[] = [];
    const sync = new ZooKeeperServiceSync('web', SERVICE_PATH, {
      reader: tree.reader,
      watcher: () => undefined,
      absentMeansEmpty: true,
      publish: (_service, entries) => published.push(entries.map((entry) => entry.name)),
      gone: (service) => gone.push(service),
      failed: () => undefined,
    });
    tree.absent(true);
    await sync.refresh();
    // Never had instances: nothing to publish, but the creation is watched.
    expect(published).toEqual([]);
    expect(tree.existsCalls).toEqual([SERVICE_PATH]);
    tree.absent(false);
    tree.set('a', 80);
    await sync.refresh();
    expect(published).toEqual([['a']]);
    tree.absent(true);
    await sync.refresh();
    expect(published).toEqual([['a'], []]);
    expect(gone).toEqual([]);
    sync.dispose();
  });
});

describe('ZooKeeperServiceSync under a recursive watch', () => {
  it('reads a created child once without listing again, lists again without a data read for a deleted one, and arms no watch', async () => {
    const { tree, sync, ports, published } = setup(() => 'recursive');
    tree.set('a', 80);
    tree.set('b', 81);
    await sync.refresh();
    expect(tree.listings).toHaveLength(1);

    tree.set('c', 82);
    await sync.added('c');
    expect(ports()).toEqual(['a=80', 'b=81', 'c=82']);
    expect(tree.dataReads).toEqual(['a', 'b', 'c']);

    expect(tree.listings).toHaveLength(1);

    tree.delete('a');
    await sync.removed('a');
    expect(ports()).toEqual(['b=81', 'c=82']);
    expect(tree.dataReads).toEqual(['a', 'b', 'c']);
    // The listing's pzxid is the revision a deletion moves.
    expect(tree.listings).toEqual([['a', 'b'], ['b', 'c']]);
    expect(published.at(-1)!.length).toBe(2);
    expect(tree.watchedReads()).toBe(0);
  });

  it('lists again when a child is created while a listing is on its way', async () => {
    const { tree, sync, ports } = setup(() => 'recursive');
    tree.set('a', 80);
    tree.holdListings(true);
    const first = sync.refresh();
    await waitFor(() => tree.heldListings() === 1, { message: 'the listing on its way' });
    // The held answer lists only `a`; `b` is created after the server read it.
    tree.set('b', 81);
    const created = sync.added('b');
    tree.holdListings(false);
    tree.releaseListings();
    await Promise.all([first, created]);
    expect(ports()).toEqual(['a=80', 'b=81']);
    expect(tree.listings).toEqual([['a'], ['a', 'b']]);
  });

  it('trusts nothing read while its watch is not armed, and re-reads everything after forget', async () => {
    let mode: WatchMode = 'unarmed';
    const { tree, sync, ports } = setup(() => mode);
    tree.set('a', 80);
    tree.set('b', 81);
    await sync.refresh();
    expect(ports()).toEqual(['a=80', 'b=81']);
    mode = 'recursive';
    tree.set('a', 90);
    await sync.invalidate('b');
    // Neither the listing nor `a` was kept: both are read again.
    expect(tree.listings).toHaveLength(2);
    expect(tree.dataReads).toEqual(['a', 'b', 'a', 'b']);
    expect(ports()).toEqual(['a=90', 'b=81']);

    // A reconnect: what changed meanwhile was never reported.
    sync.forget();
    tree.set('b', 91);
    await sync.refresh();
    expect(ports()).toEqual(['a=90', 'b=91']);
    expect(tree.dataReads).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
  });
});
