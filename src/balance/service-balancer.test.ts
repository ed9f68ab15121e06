import { Subject } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../test/harness/fake-timers.ts';
import { LoadBalanceConf } from '../discovery/load-balance-conf.ts';
import type { HealthSnapshot, HealthView } from '../health/health-view.ts';
import type { Balancer } from './balancer.ts';
import { createBalancer } from './balancer-factory.ts';
import { pickedId, testEndpoints, testInstance } from './balancer-testing.ts';
import type { PickedEndpoint, Picker } from './picker.ts';
import { createServiceBalancer, ServiceBalancer } from './service-balancer.ts';

const FAIL = { ok: false, latencyMs: 2, errorClass: 'connect-refused' } as const;

function publish(conf: LoadBalanceConf, ...ids: string[]): void {
  conf.push({ service: 'svc', instances: ids.map((id) => testInstance(id)), sources: new Map(), version: (conf.current()?.version ?? 0) + 1 });
}

describe('ServiceBalancer', () => {
  it('answers no-instances until the health view has a snapshot, then picks from it', () => {
    const snapshots = new Subject<HealthSnapshot>();
    const service = new ServiceBalancer({ endpoints$: snapshots }, createBalancer({ algorithm: 'round-robin' }));
    expect(service.picker.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    snapshots.next({ service: 'svc', panic: false, endpoints: testEndpoints('a').map((endpoint) => ({ ...endpoint, inRegistry: true, active: 'healthy', ejected: false })) });
    expect(pickedId(service.picker.pick({}))).toBe('a');
    service.close();
  });

  it('skips snapshots that change nothing the balancer sees', () => {
    const snapshots = new Subject<HealthSnapshot>();
    const balancer = createBalancer({ algorithm: 'round-robin' });
    const update = vi.spyOn(balancer, 'update');
    const service = new ServiceBalancer({ endpoints$: snapshots } satisfies HealthView, balancer as Balancer);
    const endpoints = testEndpoints('a', 'b').map((endpoint) => ({ ...endpoint, inRegistry: true, active: 'unknown' as const, ejected: false }));
    snapshots.next({ service: 'svc', panic: false, endpoints });
    // Only the active-check state changed: same addresses, instances and routability.
    snapshots.next({ service: 'svc', panic: false, endpoints: endpoints.map((endpoint) => ({ ...endpoint, active: 'healthy' as const })) });
    expect(update).toHaveBeenCalledTimes(1);
    service.close();
  });

  it('publishes a new picker on picker$ for every update and completes it on close', () => {
    const snapshots = new Subject<HealthSnapshot>();
    const service = new ServiceBalancer({ endpoints$: snapshots }, createBalancer({ algorithm: 'random' }));
    const seen: Picker[] = [];
    let completed = false;
    service.picker$.subscribe({ next: (picker) => seen.push(picker), complete: () => (completed = true) });
    for (const ids of [['a'], ['a', 'b']]) {
      snapshots.next({ service: 'svc', panic: false, endpoints: testEndpoints(...ids).map((endpoint) => ({ ...endpoint, inRegistry: true, active: 'unknown', ejected: false })) });
    }
    service.close();
    expect(seen).toHaveLength(3);
    expect(completed).toBe(true);
    expect(snapshots.observed).toBe(false);
  });
});

describe('createServiceBalancer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('follows the registry: members that join get traffic, members that leave lose it', () => {
    const conf = new LoadBalanceConf('svc');
    const service = createServiceBalancer(conf, { balancer: { algorithm: 'round-robin' } });
    publish(conf, 'a', 'b');
    expect(new Set(Array.from({ length: 4 }, () => pickedId(service.picker.pick({}))))).toEqual(new Set(['a', 'b']));
    publish(conf, 'b', 'c');
    expect(new Set(Array.from({ length: 4 }, () => pickedId(service.picker.pick({}))))).toEqual(new Set(['b', 'c']));
    publish(conf);
    expect(service.picker.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    service.close();
  });

  it('reports pick outcomes to outlier detection, which ejects a failing member and returns it later', async () => {
    const conf = new LoadBalanceConf('svc');
    const service = createServiceBalancer(conf, {
      balancer: { algorithm: 'round-robin' },
      health: { outlier: { consecutiveErrors: 3, baseEjectionMs: 5_000, maxEjectionPercent: 50 } },
    });
    publish(conf, 'a', 'b');
    for (let attempt = 0; attempt < 10; attempt += 1) {
      const pick = service.picker.pick({}) as PickedEndpoint;
      pick.done(pick.instance.id === 'b' ? FAIL : { ok: true, latencyMs: 1 });
    }
    expect(new Set(Array.from({ length: 6 }, () => pickedId(service.picker.pick({}))))).toEqual(new Set(['a']));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(new Set(Array.from({ length: 6 }, () => pickedId(service.picker.pick({}))))).toEqual(new Set(['a', 'b']));
    service.close();
  });

  it('answers no-healthy-instances when every member fails its checks and panic is off', async () => {
    const conf = new LoadBalanceConf('svc');
    const service = createServiceBalancer(conf, {
      balancer: { algorithm: 'least-connections' },
      health: { active: { probe: async () => ({ healthy: false, detail: 'down' }), intervalMs: 100, jitterMs: 0, unhealthyThreshold: 1 }, panicThresholdPercent: 0 },
    });
    publish(conf, 'a', 'b');
    await vi.advanceTimersByTimeAsync(100);
    expect(service.picker.pick({})).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
    service.close();
  });

  it('tears down checks and timers on close while the last picker stays usable', async () => {
    const conf = new LoadBalanceConf('svc');
    const probe = vi.fn(async () => ({ healthy: true, detail: 'ok' }));
    const service = createServiceBalancer(conf, { balancer: { algorithm: 'p2c-ewma' }, health: { active: { probe, intervalMs: 100, jitterMs: 0 } } });
    publish(conf, 'a', 'b');
    await vi.advanceTimersByTimeAsync(250);
    // One pending check per instance, cleared by close(); counted around close() alone, as other code
    // in this process may arm timers of its own while the test awaits.
    expect(timersArmedBy(() => service.close())).toBe(-2);
    const calls = probe.mock.calls.length;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(probe.mock.calls).toHaveLength(calls);
    publish(conf, 'c');
    expect(['a', 'b']).toContain(pickedId(service.picker.pick({})));
  });
});
