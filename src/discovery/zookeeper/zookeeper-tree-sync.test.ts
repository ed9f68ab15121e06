import zookeeper, { type Stat } from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import { rootLogger } from '../../logger.ts';
import { ZooKeeperError, type ZooKeeperReader, type ZooKeeperWatcher } from '../../zookeeper/index.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { ZooKeeperTreeSync, type TreeSyncContext } from './zookeeper-tree-sync.ts';

const STAT = { mzxid: Buffer.alloc(8), pzxid: Buffer.alloc(8) } as Stat;

/**
 * An in-memory `/services/<service>/<instance>` tree behind a reader that logs each call (with
 * `+watch` when it arms a one-shot watch) and whose `addRecursiveWatch` answers `addWatchError`.
 */
function fakeRegistry(addWatchError?: ZooKeeperError) {
  const nodes = new Map<string, string>([['/services/web/a', '{"host":"10.0.0.1","port":80}']]);
  const calls: string[] = [];
  const listeners = new Set<ZooKeeperWatcher>();
  const held = new Map<string, Array<() => void>>();
  let holding: string | undefined;
  const log = (call: string, watcher?: ZooKeeperWatcher) => calls.push(watcher ? `${call} +watch` : call);
  const childrenOf = (path: string) => [...new Set([...nodes.keys()].filter((key) => key.startsWith(`${path}/`)).map((key) => key.slice(path.length + 1).split('/')[0]!))];
  const reader: ZooKeeperReader = {
    async getChildren(path, watcher) {
      log(`getChildren ${path}`, watcher);
      return { children: childrenOf(path), stat: STAT };
    },
    async getData(path, watcher) {
      log(`getData ${path}`, watcher);
      // The server reads when it answers: a held read returns the value at its release.
      if (path === holding) await new Promise<void>((resolve) => held.set(path, [...(held.get(path) ?? []), resolve]));
      const data = nodes.get(path);
      if (data === undefined) throw new ZooKeeperError('NO_NODE', path);
      return { data: Buffer.from(data), stat: STAT };
    },
    async exists(path, watcher) {
      log(`exists ${path}`, watcher);
      return STAT;
    },
    async addRecursiveWatch(path) {
      calls.push(`addWatch ${path}`);
      if (addWatchError) throw addWatchError;
    },
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    reader,
    calls,
    listeners,
    set(path: string, port: number) {
      nodes.set(path, JSON.stringify({ host: '10.0.0.1', port }));
    },
    remove(path: string) {
      nodes.delete(path);
    },
    /** Parks reads of `path` until `release`. */
    hold(path: string) {
      holding = path;
    },
    release() {
      holding = undefined;
      for (const resolve of [...held.values()].flat()) resolve();
      held.clear();
    },
    heldReads: () => [...held.values()].flat().length,
    /** Delivers a notification the way the session's client does. */
    notify(type: number, path: string) {
      for (const listener of listeners) listener(new zookeeper.Event(type, String(type), path));
    },
  };
}

function treeOver(registry: ReturnType<typeof fakeRegistry>, layout: Partial<Pick<TreeSyncContext, 'root' | 'service' | 'instancesNode'>> = {}, watches = { recursive: true }) {
  const published = new Map<string, string[]>();
  const ports = new Map<string, string[]>();
  const gone = new Set<string>();
  const tree = new ZooKeeperTreeSync({
    provider: 'test',
    reader: registry.reader,
    root: '/services',
    ...layout,
    log: rootLogger,
    watches,
    knownServices: () => [...published.keys()],
    publish: (service, entries) => {
      published.set(service, entries.map((entry) => entry.name));
      ports.set(service, entries.map((entry) => `${entry.name}=${(JSON.parse(String(entry.data)) as { port: number }).port}`));
      gone.delete(service);
    },
    publishGone: (service) => {
      published.set(service, []);
      ports.set(service, []);
      gone.add(service);
    },
  });
  return { tree, published, ports, watches, gone };
}

describe('ZooKeeperTreeSync', () => {
  it('arms its recursive watch before any read on every connection; a created instance then costs one read, a deleted one a listing', async () => {
    const registry = fakeRegistry();
    const { tree, published } = treeOver(registry);
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services', 'getChildren /services/web', 'getData /services/web/a']);
    expect(published.get('web')).toEqual(['a']);

    registry.calls.length = 0;
    registry.set('/services/web/b', 81);
    registry.notify(zookeeper.Event.NODE_CREATED, '/services/web/b');
    await waitFor(() => published.get('web')?.join() === 'a,b', { message: 'b published' });
    expect(registry.calls).toEqual(['getData /services/web/b']);

    registry.calls.length = 0;
    registry.remove('/services/web/a');
    registry.notify(zookeeper.Event.NODE_DELETED, '/services/web/a');
    await waitFor(() => published.get('web')?.join() === 'b', { message: 'a removed' });
    expect(registry.calls).toEqual(['getChildren /services/web']);

    // A reconnect: armed again first, then everything is read again (no change was reported meanwhile).
    registry.calls.length = 0;
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services', 'getChildren /services/web', 'getData /services/web/b']);
    tree.dispose();
    expect(registry.listeners.size).toBe(0);
  });

  it('uses one-shot watches for good when the server has no recursive watches', async () => {
    const registry = fakeRegistry(new ZooKeeperError('UNIMPLEMENTED', 'addWatch /services'));
    const { tree, published, watches } = treeOver(registry);
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services +watch', 'getChildren /services/web +watch', 'getData /services/web/a +watch']);
    expect(published.get('web')).toEqual(['a']);
    // Remembered beyond this tree: the next session's tree does not ask.
    expect(watches.recursive).toBe(false);

    registry.calls.length = 0;
    await tree.sync();
    expect(registry.calls.some((call) => call.startsWith('addWatch'))).toBe(false);
    tree.dispose();
  });

  it('retries arming after a transient failure before it reads anything', async () => {
    const registry = fakeRegistry(new ZooKeeperError('CONNECTION_LOSS', 'addWatch /services'));
    const tree = new ZooKeeperTreeSync({
      provider: 'test',
      reader: registry.reader,
      root: '/services',
      log: rootLogger,
      watches: { recursive: true },
      backoff: { initialMs: 1, maxMs: 1 },
      knownServices: () => [],
      publish: () => undefined,
      publishGone: () => undefined,
    });
    const synced = tree.sync();
    await waitFor(() => registry.calls.length >= 3, { timeoutMs: 5_000, message: 'two retries' });
    expect(registry.calls.every((call) => call === 'addWatch /services')).toBe(true);
    tree.dispose();
    await synced;
  });

  it('reads again what the first sync read when the connection drops before it finished', async () => {
    const registry = fakeRegistry();
    registry.set('/services/web/b', 81);
    const { tree, ports } = treeOver(registry);
    registry.hold('/services/web/b');
    const first = tree.sync();
    await waitFor(() => registry.heldReads() === 1, { message: "b's read in flight" });
    // A reconnect while b's read is on its way; meanwhile a changed and c was created, unreported.
    registry.set('/services/web/a', 90);
    registry.set('/services/web/c', 82);
    const second = tree.sync();
    registry.release();
    await Promise.all([first, second]);
    expect(ports.get('web')).toEqual(['a=90', 'b=81', 'c=82']);
    tree.dispose();
  });

  it('watches a single-service root recursively: its children are the instances', async () => {
    const registry = fakeRegistry();
    const { tree, published } = treeOver(registry, { root: '/services/web', service: 'web' });
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services/web', 'exists /services/web', 'getChildren /services/web', 'getData /services/web/a']);
    registry.calls.length = 0;
    registry.set('/services/web/b', 81);
    registry.notify(zookeeper.Event.NODE_CREATED, '/services/web/b');
    await waitFor(() => published.get('web')?.join() === 'a,b', { message: 'b published' });
    expect(registry.calls).toEqual(['getData /services/web/b']);
    tree.dispose();
  });

  it('uses one-shot watches when told to, under the registry root, and for a layout with an instances node', async () => {
    const cases = [
      { layout: {}, recursive: false },
      { layout: { root: '/' }, recursive: true },
      { layout: { instancesNode: 'providers' }, recursive: true },
    ];
    for (const { layout, recursive } of cases) {
      const registry = fakeRegistry();
      const { tree, watches } = treeOver(registry, layout, { recursive });
      await tree.sync();
      expect(registry.calls.length).toBeGreaterThan(0);
      expect(registry.calls.some((call) => call.startsWith('addWatch'))).toBe(false);
      expect(registry.calls.every((call) => call.endsWith('+watch'))).toBe(true);
      expect(watches.recursive).toBe(recursive);
      tree.dispose();
    }
  });

  it('warns of a refusal once, also when the retries it ends had failed otherwise (a lost connection)', async () => {
    const registry = fakeRegistry();
    const failures: ZooKeeperError[] = [new ZooKeeperError('CONNECTION_LOSS', 'getChildren /services/web'), new ZooKeeperError('NO_AUTH', 'getChildren /services/web'), new ZooKeeperError('NO_AUTH', 'getChildren /services/web')];
    const { getChildren } = registry.reader;
    const reader: ZooKeeperReader = {
      ...registry.reader,
      getChildren(path, watcher) {
        const failure = path === '/services/web' ? failures.shift() : undefined;
        return failure ? Promise.reject(failure) : getChildren(path, watcher);
      },
    };
    const warned: unknown[] = [];
    const log = Object.assign(Object.create(rootLogger) as typeof rootLogger, { warn: (fields: unknown) => warned.push(fields), debug: () => undefined });
    const tree = new ZooKeeperTreeSync({ provider: 'test', reader, root: '/services', log, watches: { recursive: false }, backoff: { initialMs: 1, maxMs: 1 }, knownServices: () => [], publish: () => undefined, publishGone: () => undefined });
    await tree.sync();
    expect(failures).toHaveLength(0);
    expect(warned).toEqual([expect.objectContaining({ path: '/services/web', attempt: 1 })]);
    tree.dispose();
  });
});
