import zookeeper, { type Stat } from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import { rootLogger } from '../../logger.ts';
import { ZooKeeperError, type ZooKeeperReader, type ZooKeeperWatcher } from '../../zookeeper/index.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import { ZooKeeperTreeSync } from './zookeeper-tree-sync.ts';

const STAT = { mzxid: Buffer.alloc(8), pzxid: Buffer.alloc(8) } as Stat;

/**
 * An in-memory `/services/<service>/<instance>` tree behind a reader that logs each call (with
 * `+watch` when it arms a one-shot watch) and whose `addRecursiveWatch` answers `addWatchError`.
 */
function fakeRegistry(addWatchError?: ZooKeeperError) {
  const nodes = new Map<string, string>([['/services/web/a', '{"host":"10.0.0.1","port":80}']]);
  const calls: string[] = [];
  const listeners = new Set<ZooKeeperWatcher>();
  const log = (call: string, watcher?: ZooKeeperWatcher) => calls.push(watcher ? `${call} +watch` : call);
  const childrenOf = (path: string) => [...new Set([...nodes.keys()].filter((key) => key.startsWith(`${path}/`)).map((key) => key.slice(path.length + 1).split('/')[0]!))];
  const reader: ZooKeeperReader = {
    async getChildren(path, watcher) {
      log(`getChildren ${path}`, watcher);
      return { children: childrenOf(path), stat: STAT };
    },
    async getData(path, watcher) {
      log(`getData ${path}`, watcher);
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
    /** Delivers a notification the way the session's client does. */
    notify(type: number, path: string) {
      for (const listener of listeners) listener(new zookeeper.Event(type, String(type), path));
    },
  };
}

function treeOver(registry: ReturnType<typeof fakeRegistry>) {
  const published = new Map<string, string[]>();
  let unsupported = 0;
  const tree = new ZooKeeperTreeSync({
    provider: 'test',
    reader: registry.reader,
    root: '/services',
    log: rootLogger,
    knownServices: () => [...published.keys()],
    publish: (service, entries) => published.set(service, entries.map((entry) => entry.name)),
    recursiveWatchUnsupported: () => (unsupported += 1),
  });
  return { tree, published, unsupported: () => unsupported };
}

/** Lets the reads a notification started settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('ZooKeeperTreeSync', () => {
  it('arms its recursive watch before any read on every connection, and a created instance then costs one read', async () => {
    const registry = fakeRegistry();
    const { tree, published } = treeOver(registry);
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services', 'getChildren /services/web', 'getData /services/web/a']);
    expect(published.get('web')).toEqual(['a']);

    registry.calls.length = 0;
    registry.set('/services/web/b', 81);
    registry.notify(zookeeper.Event.NODE_CREATED, '/services/web/b');
    await settle();
    expect(registry.calls).toEqual(['getData /services/web/b']);
    expect(published.get('web')).toEqual(['a', 'b']);

    registry.calls.length = 0;
    registry.notify(zookeeper.Event.NODE_DELETED, '/services/web/a');
    await settle();
    expect(registry.calls).toEqual([]);
    expect(published.get('web')).toEqual(['b']);

    // A reconnect: armed again first, then everything is read again (no change was reported meanwhile).
    registry.calls.length = 0;
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services', 'getChildren /services/web', 'getData /services/web/a', 'getData /services/web/b']);
    tree.dispose();
    expect(registry.listeners.size).toBe(0);
  });

  it('uses one-shot watches for good when the server has no recursive watches', async () => {
    const registry = fakeRegistry(new ZooKeeperError('UNIMPLEMENTED', 'addWatch /services'));
    const { tree, published, unsupported } = treeOver(registry);
    await tree.sync();
    expect(registry.calls).toEqual(['addWatch /services', 'getChildren /services +watch', 'getChildren /services/web +watch', 'getData /services/web/a +watch']);
    expect(published.get('web')).toEqual(['a']);
    expect(unsupported()).toBe(1);

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
      backoff: { initialMs: 1, maxMs: 1 },
      knownServices: () => [],
      publish: () => undefined,
    });
    const synced = tree.sync();
    await waitFor(() => registry.calls.length >= 3, { timeoutMs: 5_000, message: 'two retries' });
    expect(registry.calls.every((call) => call === 'addWatch /services')).toBe(true);
    tree.dispose();
    await synced;
  });
});
