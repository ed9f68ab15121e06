import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTempDir } from '../../test/harness/temp-dirs.ts';
import { rootLogger } from '../logger.ts';
import type { Instance } from './instance.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';
import { ProviderStore } from './provider-store.ts';
import { readRegistrySnapshot, writeRegistrySnapshot } from './registry-snapshot-file.ts';
import { SnapshotFallbackProvider } from './snapshot-fallback-provider.ts';

const REGISTRY = 'zk:127.0.0.1:2181/services';
const instance = (service: string, id: string, port: number): Instance => ({ id, service, host: '127.0.0.1', port, weight: 1, protocol: 'http', metadata: {} });

/** A registry provider the test lists for: its `ProviderStore`, with start and close. */
class ListedProvider implements DiscoveryProvider {
  readonly store = new ProviderStore('zk:127.0.0.1:2181/services', rootLogger);
  readonly name = this.store.provider;
  readonly snapshots$ = this.store.snapshots$;
  readonly status$ = this.store.status$;
  start(): void {}
  close(): Promise<void> {
    this.store.complete();
    return Promise.resolve();
  }
}

describe('SnapshotFallbackProvider', () => {
  let path: string;
  let inner: ListedProvider;
  let provider: SnapshotFallbackProvider;
  let snapshots: ProviderSnapshot[];
  let statuses: ProviderStatus[];
  const log = rootLogger.child({});

  beforeEach(async () => {
    path = join(await makeTempDir('sb-snapshot-fallback-'), 'snapshot.json');
    inner = new ListedProvider();
    snapshots = [];
    statuses = [];
  });

  afterEach(async () => {
    await provider.close();
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  function startProvider(): void {
    provider = new SnapshotFallbackProvider(inner, { path, registry: REGISTRY, waitMs: 1_000, writeIntervalMs: 500, log });
    provider.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    provider.status$.subscribe((status) => statuses.push(status));
    provider.start();
  }

  it('serves the file\'s sets once the registry has not listed within the wait, then takes the listing', async () => {
    await writeRegistrySnapshot(path, REGISTRY, new Map([
      ['user', { instances: [instance('user', 'a', 1001)], revision: '5' }],
      ['orders', { instances: [instance('orders', 'o', 2001)], revision: '5' }],
    ]));
    vi.useFakeTimers();
    startProvider();
    await vi.advanceTimersByTimeAsync(999);
    expect(snapshots).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(snapshots.map((snapshot) => [snapshot.service, snapshot.instances.map((each) => each.id), snapshot.fromSnapshot !== undefined])).toEqual([
      ['user', ['a'], true],
      ['orders', ['o'], true],
    ]);
    expect(statuses.at(-1)).toMatchObject({ state: 'stale', reason: expect.stringContaining(path) as string });

    // The registry answers: user has b now, orders is no longer listed.
    inner.store.publish('user', [instance('user', 'b', 1002)], '9');
    inner.store.setStatus('connected');
    expect(snapshots.slice(2).map((snapshot) => [snapshot.service, snapshot.instances.map((each) => each.id), snapshot.fromSnapshot, snapshot.gone])).toEqual([
      ['user', ['b'], undefined, undefined],
      ['orders', [], undefined, true],
    ]);
    expect(statuses.at(-1)?.state).toBe('connected');
    // Written within the interval, with what the registry listed.
    await vi.advanceTimersByTimeAsync(500);
    vi.useRealTimers();
    await provider.close();
    const written = readRegistrySnapshot(path, REGISTRY);
    expect([...(written.snapshot?.services ?? new Map<string, unknown>()).keys()]).toEqual(['user']);
    expect(written.snapshot?.services.get('user')?.instances.map((each) => each.id)).toEqual(['b']);
  });

  it('never serves the file when the registry lists within the wait', async () => {
    await writeRegistrySnapshot(path, REGISTRY, new Map([['user', { instances: [instance('user', 'a', 1001)], revision: '5' }]]));
    vi.useFakeTimers();
    startProvider();
    inner.store.publish('user', [instance('user', 'b', 1002)], '9');
    inner.store.setStatus('connected');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(snapshots.map((snapshot) => snapshot.instances.map((each) => each.id))).toEqual([['b']]);
    expect(snapshots.every((snapshot) => snapshot.fromSnapshot === undefined)).toBe(true);
    expect(statuses.map((status) => status.state)).toEqual(['connecting', 'connected']);
  });

  it('warns of a bad file, naming it and why, and serves nothing from it', async () => {
    await writeFile(path, 'not json');
    const warn = vi.spyOn(log, 'warn');
    vi.useFakeTimers();
    startProvider();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(warn).toHaveBeenCalledWith({ path, reason: expect.stringContaining(`${path} is not JSON`) as string }, 'registry snapshot ignored');
    expect(snapshots).toEqual([]);
    expect(statuses.map((status) => status.state)).toEqual(['connecting']);
  });

  it('writes nothing while the registry has never listed, keeping the file of the last listing', async () => {
    await writeRegistrySnapshot(path, REGISTRY, new Map([['user', { instances: [instance('user', 'a', 1001)], revision: '5' }]]));
    const before = readRegistrySnapshot(path, REGISTRY).snapshot!.savedAt;
    vi.useFakeTimers({ now: before + 60_000 });
    startProvider();
    await vi.advanceTimersByTimeAsync(5_000);
    vi.useRealTimers();
    await provider.close();
    expect(readRegistrySnapshot(path, REGISTRY).snapshot?.savedAt).toBe(before);
  });

  it('warns once while its writes keep failing (a read-only folder), not at every write', async () => {
    // A path under a regular file cannot be written, even by root.
    const blocker = join(path, '..', 'not-a-folder');
    await writeFile(blocker, '');
    path = join(blocker, 'snapshot.json');
    const warn = vi.spyOn(log, 'warn');
    vi.useFakeTimers();
    startProvider();
    inner.store.setStatus('connected');
    for (let port = 1001; port <= 1004; port += 1) {
      inner.store.publish('user', [instance('user', 'a', port)], String(port));
      // Each change past the interval is a write of its own, which fails.
      await vi.advanceTimersByTimeAsync(500);
    }
    vi.useRealTimers();
    await provider.close();
    const writeWarnings = warn.mock.calls.filter((call) => String(call[1]).startsWith('cannot write the registry snapshot'));
    expect(writeWarnings).toHaveLength(1);
    expect(writeWarnings[0]![0]).toMatchObject({ path });
  });
});
