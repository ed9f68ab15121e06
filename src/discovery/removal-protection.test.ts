import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createServiceBalancer, type ServiceBalancer } from '../balance/index.ts';
import type { HealthSnapshot } from '../health/index.ts';
import { join } from 'node:path';
import { makeTempDir } from '../../test/harness/temp-dirs.ts';
import { rootLogger } from '../logger.ts';
import { DiscoveryAggregator } from './discovery-aggregator.ts';
import type { ProtectionChange } from './removal-protection.ts';
import type { DiscoveryProvider, ProviderState } from './provider.ts';
import { ProviderStore } from './provider-store.ts';
import { writeRegistrySnapshot } from './registry-snapshot-file.ts';
import { SnapshotFallbackProvider } from './snapshot-fallback-provider.ts';

const HOLD_MS = 5_000;
const THROTTLE_MS = 10;

/** A registry the test drives by hand: its status and the set it lists. */
class ScriptedProvider implements DiscoveryProvider {
  readonly store = new ProviderStore('zk', rootLogger);
  readonly name = 'zk';
  readonly snapshots$ = this.store.snapshots$;
  readonly status$ = this.store.status$;
  private revision = 0;
  start(): void {}
  async close(): Promise<void> {
    this.store.complete();
  }
  list(...ports: number[]): void {
    this.store.publishRaw('user', ports.map((port) => ({ service: 'user', name: `127.0.0.1:${port}`, data: null })), String(++this.revision));
  }
  status(state: ProviderState): void {
    this.store.setStatus(state);
  }
}

describe('removal protection in the discovery aggregator', () => {
  let provider: ScriptedProvider;
  let aggregator: DiscoveryAggregator;
  let changes: ProtectionChange[];
  const balancers: ServiceBalancer[] = [];

  beforeEach(() => {
    vi.useFakeTimers();
    provider = new ScriptedProvider();
    aggregator = new DiscoveryAggregator([provider], { throttleMs: THROTTLE_MS, protection: { thresholdPercent: 50, holdMs: HOLD_MS } });
    changes = [];
    aggregator.protection$.subscribe((change) => changes.push(change));
    aggregator.start();
    provider.status('connected');
    provider.list(1, 2, 3);
  });

  afterEach(async () => {
    for (const balancer of balancers.splice(0)) balancer.close();
    await aggregator.close();
    vi.useRealTimers();
  });

  const ports = () => aggregator.service('user').current()!.instances.map((instance) => instance.port);
  const held = () => [...(aggregator.service('user').current()!.held ?? new Map()).keys()];
  /** Lets the throttle window pass. */
  const settle = () => vi.advanceTimersByTimeAsync(THROTTLE_MS * 2);

  it('holds a post-outage removal of the whole service for the hold time, then applies it', async () => {
    await settle();
    provider.status('stale');
    provider.list();
    provider.status('connected');
    await settle();
    expect(ports()).toEqual([1, 2, 3]);
    expect(held()).toEqual(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    expect(changes).toEqual([expect.objectContaining({ action: 'held', reason: 'mass-removal-after-outage', heldCount: 3 })]);
    await vi.advanceTimersByTimeAsync(HOLD_MS - THROTTLE_MS * 3);
    expect(ports()).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(THROTTLE_MS * 2);
    expect(ports()).toEqual([]);
    expect(changes.at(-1)).toMatchObject({ action: 'released', reason: 'expired', heldCount: 0 });
  });

  it('releases held instances as soon as the registry lists them again, and applies a later minority removal at once', async () => {
    await settle();
    provider.status('stale');
    provider.status('connected');
    // The nodes vanish after the re-list, as a recovered ensemble expires old sessions.
    provider.list(3);
    await settle();
    expect(ports()).toEqual([1, 2, 3]);
    expect(held()).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    provider.list(1, 2, 3);
    await settle();
    expect(held()).toEqual([]);
    expect(changes.at(-1)).toMatchObject({ action: 'released', reason: 'relisted' });
    provider.list(1, 3);
    await settle();
    expect(ports()).toEqual([1, 3]);
  });

  it('counts removals since the outage began together: one removed by an earlier re-list is held again with the rest', async () => {
    await settle();
    provider.status('stale');
    provider.status('connected');
    // A registry deletes expired nodes one by one: the first re-list lost one instance only.
    provider.list(2, 3);
    await settle();
    expect(ports()).toEqual([2, 3]);
    provider.list();
    await settle();
    expect(ports()).toEqual([1, 2, 3]);
    expect(held()).toEqual(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    await vi.advanceTimersByTimeAsync(HOLD_MS + THROTTLE_MS);
    expect(ports()).toEqual([]);
    // Removals whose hold ended are final: a later post-outage change does not bring them back.
    provider.list(4);
    await settle();
    expect(ports()).toEqual([4]);
  });

  it('applies a removal at once while the registry connection is healthy, even of every instance', async () => {
    await settle();
    provider.list();
    await settle();
    expect(ports()).toEqual([]);
    expect(changes).toEqual([]);
  });

  it('applies a post-outage removal of a minority at once', async () => {
    await settle();
    provider.status('stale');
    provider.status('connected');
    provider.list(1, 2);
    await settle();
    expect(ports()).toEqual([1, 2]);
    expect(changes).toEqual([]);
  });

  it('applies a mass removal at once once the recovery window after the outage has passed', async () => {
    await settle();
    provider.status('stale');
    provider.status('connected');
    await vi.advanceTimersByTimeAsync(HOLD_MS + 1);
    provider.list();
    await settle();
    expect(ports()).toEqual([]);
  });

  it('gives no traffic to a held instance that refused a connection, and serves the others', async () => {
    const balancer = createServiceBalancer(aggregator.service('user'), { balancer: { algorithm: 'round-robin' }, health: { outlier: { consecutiveErrors: 5 } } });
    balancers.push(balancer);
    await settle();
    provider.status('stale');
    provider.list();
    provider.status('connected');
    await settle();
    const picked = () => {
      const pick = balancer.picker.pick({});
      if (pick.kind !== 'endpoint') return pick.reason;
      pick.done({ ok: true, latencyMs: 1 });
      return pick.instance.port;
    };
    expect(new Set(Array.from({ length: 6 }, picked))).toEqual(new Set([1, 2, 3]));
    // One refused connection is conclusive for an instance the registry already dropped.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const pick = balancer.picker.pick({});
      if (pick.kind !== 'endpoint') throw new Error('nothing picked');
      if (pick.instance.port === 2) pick.done({ ok: false, latencyMs: 1, errorClass: 'connect-refused' });
      else pick.done({ ok: true, latencyMs: 1 });
    }
    expect(new Set(Array.from({ length: 12 }, picked))).toEqual(new Set([1, 3]));
  });

  it('ejects an instance at its first connection failure while its registry has just recovered, not otherwise', async () => {
    const balancer = createServiceBalancer(aggregator.service('user'), { balancer: { algorithm: 'round-robin' }, health: { outlier: { consecutiveErrors: 5, maxEjectionPercent: 100 } } });
    balancers.push(balancer);
    await settle();
    const failOnce = (port: number) => {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const pick = balancer.picker.pick({});
        if (pick.kind !== 'endpoint') throw new Error('nothing picked');
        pick.done(pick.instance.port === port ? { ok: false, latencyMs: 1, errorClass: 'connect-refused' } : { ok: true, latencyMs: 1 });
      }
    };
    let latest: HealthSnapshot | undefined;
    balancer.health.endpoints$.subscribe((snapshot) => (latest = snapshot));
    const routable = () => latest!.endpoints.filter((endpoint) => endpoint.routable).map((endpoint) => endpoint.instance.port);
    failOnce(1);
    expect(routable()).toEqual([1, 2, 3]);
    provider.status('stale');
    provider.status('connected');
    failOnce(2);
    expect(routable()).toEqual([1, 3]);
  });
});

describe('removal protection of the sets a start served from the snapshot file', () => {
  it('holds a first listing that removes most of a service served from the snapshot, as after an outage of a connected registry', async () => {
    const path = join(await makeTempDir('sb-protection-snapshot-'), 'snapshot.json');
    const instance = (port: number) => ({ id: `127.0.0.1:${port}`, service: 'user', host: '127.0.0.1', port, weight: 1, protocol: 'http' as const, metadata: {} });
    await writeRegistrySnapshot(path, 'zk', new Map([['user', { instances: [instance(1), instance(2), instance(3)], revision: '7' }]]));
    vi.useFakeTimers();
    const scripted = new ScriptedProvider();
    const provider = new SnapshotFallbackProvider(scripted, { path, registry: 'zk', waitMs: 1_000, writeIntervalMs: 500, log: rootLogger.child({}) });
    const aggregator = new DiscoveryAggregator([provider], { throttleMs: THROTTLE_MS, protection: { thresholdPercent: 50, holdMs: HOLD_MS } });
    try {
      aggregator.start();
      await vi.advanceTimersByTimeAsync(1_000 + THROTTLE_MS * 2);
      const ports = () => aggregator.service('user').current()!.instances.map((each) => each.port);
      expect(ports()).toEqual([1, 2, 3]);
      // The registry answers before its agents registered again (etcd back, its leases expired): it lists one of three.
      scripted.list(1);
      scripted.status('connected');
      await vi.advanceTimersByTimeAsync(THROTTLE_MS * 2);
      expect(ports()).toEqual([1, 2, 3]);
      scripted.list(1, 2, 3);
      await vi.advanceTimersByTimeAsync(THROTTLE_MS * 2);
      expect(aggregator.service('user').current()!.held?.size ?? 0).toBe(0);
    } finally {
      vi.useRealTimers();
      await aggregator.close();
    }
  });
});
