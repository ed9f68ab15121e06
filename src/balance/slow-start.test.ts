import { Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../test/harness/fake-timers.ts';
import type { HealthSnapshot } from '../health/health-view.ts';
import type { BalancerEndpoint } from './balancer.ts';
import { createBalancer, type BalancerConfig } from './balancer-factory.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import { ServiceBalancer } from './service-balancer.ts';
import { SLOW_START_ALGORITHMS, slowStartFactor, slowStartTickMs, type SlowStartOptions } from './slow-start.ts';

const SLOW: SlowStartOptions = { windowMs: 1_000, aggression: 1, minWeightPercent: 10 };
const address = (id: string) => `${id}.svc.test:8080`;

/** Share of `id` among `count` picks, every pick released at once. */
function shareOf(balancer: ReturnType<typeof createBalancer>, id: string, count = 2_000): number {
  let hits = 0;
  for (let index = 0; index < count; index += 1) {
    const result = balancer.picker.pick({});
    if (result.kind !== 'endpoint') throw new Error(`expected an endpoint, got ${result.reason}`);
    if (result.instance.id === id) hits += 1;
    result.done({ ok: true, latencyMs: 1 });
  }
  return hits / count;
}

describe('slowStartFactor follows Envoy: max(min, (elapsed / window) ^ (1 / aggression))', () => {
  it.each([
    { elapsedMs: 0, options: SLOW, factor: 0.1 },
    { elapsedMs: 50, options: SLOW, factor: 0.1 },
    { elapsedMs: 500, options: SLOW, factor: 0.5 },
    { elapsedMs: 999, options: SLOW, factor: 0.999 },
    { elapsedMs: 1_000, options: SLOW, factor: 1 },
    { elapsedMs: 250, options: { ...SLOW, aggression: 2 }, factor: 0.5 },
    { elapsedMs: 500, options: { ...SLOW, aggression: 0.5 }, factor: 0.25 },
    { elapsedMs: 100, options: { ...SLOW, minWeightPercent: 50 }, factor: 0.5 },
  ])('is $factor at $elapsedMs ms with $options', ({ elapsedMs, options, factor }) => {
    expect(slowStartFactor(elapsedMs, options)).toBeCloseTo(factor, 6);
  });

  it('rebuilds about 20 times per window, between 50 ms and 1 s apart', () => {
    expect([slowStartTickMs(SLOW), slowStartTickMs({ ...SLOW, windowMs: 300 }), slowStartTickMs({ ...SLOW, windowMs: 60_000 })]).toEqual([50, 50, 1_000]);
    expect(slowStartTickMs({ ...SLOW, windowMs: 4_000 })).toBe(200);
  });
});

describe.each(SLOW_START_ALGORITHMS.map((algorithm) => ({ algorithm })))('slow start with $algorithm', ({ algorithm }) => {
  it("ramps a member that joins later from its minimum share to an equal share over the window", () => {
    let now = 0;
    const balancer = createBalancer({ algorithm } as BalancerConfig, { now: () => now, random: seededRandom(7), slowStart: SLOW });
    balancer.update(testEndpoints('a', 'b'));
    expect(balancer.ramping).toBe(false);
    balancer.update(testEndpoints('a', 'b', 'c'));
    expect(balancer.ramping).toBe(true);
    expect(balancer.member(address('c'))).toMatchObject({ weight: 0.1, rampEndsAt: 1_000 });
    // 0.1 of 2.1 total weight: about 4.8 %.
    expect(shareOf(balancer, 'c')).toBeLessThan(0.08);
    now = 500;
    balancer.reweigh();
    const middle = shareOf(balancer, 'c');
    expect(middle).toBeGreaterThan(0.15);
    expect(middle).toBeLessThan(0.27);
    now = 1_000;
    balancer.reweigh();
    expect(balancer.ramping).toBe(false);
    expect(balancer.member(address('c'))).toMatchObject({ weight: 1, rampEndsAt: undefined });
    expect(shareOf(balancer, 'c')).toBeGreaterThan(0.3);
  });
});

describe('slow start', () => {
  it('starts the members of the first set warm, so a gateway that starts does not throttle them', () => {
    const balancer = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => 0, slowStart: SLOW });
    balancer.update([]);
    balancer.update(testEndpoints('a', ['b', 3]));
    expect(balancer.ramping).toBe(false);
    expect(balancer.member(address('b'))!.weight).toBe(3);
  });

  it('starts the ramp of a member that joins unroutable at its first routable update, and never restarts it on a weight change', () => {
    let now = 0;
    const balancer = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => now, slowStart: SLOW });
    balancer.update(testEndpoints('a'));
    const joined = testEndpoints('a', ['c', 4]);
    balancer.update(joined.map((endpoint): BalancerEndpoint => (endpoint.instance.id === 'c' ? { ...endpoint, routable: false } : endpoint)));
    expect(balancer.ramping).toBe(false);
    now = 5_000;
    balancer.update(joined);
    expect(balancer.member(address('c'))).toMatchObject({ weight: 0.4, rampEndsAt: 6_000 });
    now = 5_500;
    balancer.update(testEndpoints('a', ['c', 2]));
    expect(balancer.member(address('c'))).toMatchObject({ weight: 1, rampEndsAt: 6_000 });
  });

  it('gives a member new to a subset the slow start its address has in the service: ramping, waiting to ramp, or none', () => {
    let now = 0;
    const parent = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => now, slowStart: SLOW });
    parent.update(testEndpoints('a'));
    const joined = testEndpoints('a', 'b', ['c', 4]);
    const waiting = joined.map((endpoint): BalancerEndpoint => (endpoint.instance.id === 'c' ? { ...endpoint, routable: false } : endpoint));
    parent.update(waiting);
    now = 400;
    parent.reweigh();
    // Made now, the subset's first set holds a (warm), b (ramping since 0) and c (waiting to ramp).
    const subset = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => now, slowStart: SLOW, slowStartParent: parent });
    subset.update(waiting);
    expect(subset.member(address('a'))).toMatchObject({ weight: 1, rampEndsAt: undefined });
    expect(subset.member(address('b'))).toMatchObject({ weight: 0.4, rampEndsAt: 1_000 });
    now = 600;
    parent.update(joined);
    subset.update(joined);
    expect(subset.member(address('c'))).toMatchObject({ weight: 0.4, rampEndsAt: 1_600 });
    expect(parent.member(address('c'))).toMatchObject({ weight: 0.4, rampEndsAt: 1_600 });
  });

  it('is ignored by round-robin and consistent-hash, whose picks do not follow a ramped weight', () => {
    for (const config of [{ algorithm: 'round-robin' }, { algorithm: 'consistent-hash', key: { from: 'client-ip' } }] as BalancerConfig[]) {
      const balancer = createBalancer(config, { now: () => 0, slowStart: SLOW });
      balancer.update(testEndpoints('a'));
      balancer.update(testEndpoints('a', 'b'));
      expect(balancer.ramping).toBe(false);
      expect(balancer.rampTickMs).toBeUndefined();
    }
  });
});

describe('ServiceBalancer with slow start', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rebuilds the picker every tick while a member ramps, then stops its timer', () => {
    vi.useFakeTimers();
    const snapshots = new Subject<HealthSnapshot>();
    const balancer = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => Date.now(), slowStart: SLOW });
    const service = new ServiceBalancer({ endpoints$: snapshots }, balancer);
    const send = (...ids: string[]) =>
      snapshots.next({ service: 'svc', panic: false, endpoints: testEndpoints(...ids).map((endpoint) => ({ ...endpoint, inRegistry: true, active: 'unknown', ejected: false })) });
    // Timers counted around the calls alone: other code in this process may arm its own meanwhile.
    expect(timersArmedBy(() => send('a'))).toBe(0);
    expect(timersArmedBy(() => send('a', 'b'))).toBe(1);
    const first = service.picker;
    const reweigh = vi.spyOn(balancer, 'reweigh');
    vi.advanceTimersByTime(50);
    expect(service.picker).not.toBe(first);
    expect(balancer.member(address('b'))!.weight).toBeCloseTo(0.1, 6);
    vi.advanceTimersByTime(450);
    expect(balancer.member(address('b'))!.weight).toBeCloseTo(0.5, 6);
    vi.advanceTimersByTime(500);
    expect(balancer.member(address('b'))!.weight).toBe(1);
    // The ramp is over and its timer with it: no more ticks reweigh.
    const ticks = reweigh.mock.calls.length;
    vi.advanceTimersByTime(1_000);
    expect(reweigh).toHaveBeenCalledTimes(ticks);
    const picks = Array.from({ length: 4 }, () => {
      const result = service.picker.pick({});
      if (result.kind === 'endpoint') result.done({ ok: true, latencyMs: 1 });
      return pickedId(result);
    });
    expect(picks.sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(timersArmedBy(() => send('a', 'b', 'c'))).toBe(1);
    expect(timersArmedBy(() => service.close())).toBe(-1);
    vi.advanceTimersByTime(1_000);
    expect(reweigh).toHaveBeenCalledTimes(ticks);
  });
});
