import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import { LoadBalanceConf } from '../discovery/load-balance-conf.ts';
import { pickedId, testInstance } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';
import { createServiceBalancer } from './service-balancer.ts';
import { createSubsetBalancer, matchesSubset, subsetKey } from './subset.ts';

const FAIL = { ok: false, latencyMs: 2, errorClass: 'connect-refused' } as const;

function tagged(id: string, metadata: Record<string, string>): Instance {
  return { ...testInstance(id), metadata };
}

function publish(conf: LoadBalanceConf, ...instances: Instance[]): void {
  conf.push({ service: 'svc', instances, sources: new Map(), version: (conf.current()?.version ?? 0) + 1 });
}

function idsOf(picks: number, pick: () => string): Set<string> {
  return new Set(Array.from({ length: picks }, pick));
}

describe('matchesSubset', () => {
  it.each([
    [{ version: 'v2' }, { version: 'v2', zone: 'a' }, true],
    [{ version: 'v2', zone: 'a' }, { version: 'v2', zone: 'a' }, true],
    [{ version: 'v2', zone: 'b' }, { version: 'v2', zone: 'a' }, false],
    [{ version: 'v2' }, { zone: 'a' }, false],
    [{ version: 'v2' }, {}, false],
  ])('matches selector %j against metadata %j: %s', (selector, metadata, expected) => {
    expect(matchesSubset(tagged('a', metadata), selector)).toBe(expected);
  });
});

describe('subsetKey', () => {
  it('is the same whatever the key order and tells apart values that would collide when joined naively', () => {
    expect(subsetKey({ zone: 'a', version: 'v2' })).toBe(subsetKey({ version: 'v2', zone: 'a' }));
    expect(subsetKey({ a: 'b,c=d' })).not.toBe(subsetKey({ a: 'b', c: 'd' }));
  });
});

describe('createSubsetBalancer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('picks only matching instances, and follows the registry as instances join and leave the subset', () => {
    const conf = new LoadBalanceConf('svc');
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'round-robin' } });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'round-robin' });
    publish(conf, tagged('a', { version: 'v1' }), tagged('b', { version: 'v2' }), tagged('c', { version: 'v2' }));
    expect(idsOf(8, () => pickedId(v2.picker.pick({})))).toEqual(new Set(['b', 'c']));
    expect(idsOf(8, () => pickedId(parent.picker.pick({})))).toEqual(new Set(['a', 'b', 'c']));
    publish(conf, tagged('a', { version: 'v1' }), tagged('c', { version: 'v1' }));
    expect(v2.picker.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    v2.close();
    parent.close();
  });

  it('shares passive health with the service: failures through the subset eject the instance for the whole service', () => {
    const conf = new LoadBalanceConf('svc');
    const parent = createServiceBalancer(conf, {
      balancer: { algorithm: 'round-robin' },
      health: { outlier: { consecutiveErrors: 3, baseEjectionMs: 5_000, maxEjectionPercent: 50 } },
    });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'round-robin' });
    publish(conf, tagged('a', { version: 'v1' }), tagged('b', { version: 'v2' }));
    for (let attempt = 0; attempt < 3; attempt += 1) (v2.picker.pick({}) as PickedEndpoint).done(FAIL);
    expect(idsOf(6, () => pickedId(parent.picker.pick({})))).toEqual(new Set(['a']));
    expect(v2.picker.pick({})).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
    v2.close();
    parent.close();
  });

  it('ramps an instance that joins the subset later, as the service does, when given the service slow start', () => {
    const conf = new LoadBalanceConf('svc');
    const slowStart = { windowMs: 30_000, aggression: 1, minWeightPercent: 10 };
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'weighted-round-robin' }, slowStart });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'weighted-round-robin' }, slowStart);
    publish(conf, tagged('a', { version: 'v2' }));
    const joining = tagged('b', { version: 'v2' });
    publish(conf, tagged('a', { version: 'v2' }), joining);
    const address = instanceAddress(joining);
    expect(parent.balancer.member(address)?.weight).toBeCloseTo(0.1 * joining.weight, 6);
    expect(v2.balancer.member(address)?.weight).toBeCloseTo(0.1 * joining.weight, 6);
    expect(v2.balancer.member(instanceAddress(tagged('a', {})))?.weight).toBe(1);
    v2.close();
    parent.close();
  });

  it('gives a subset made while an instance ramps in the service that instance\'s ramp, not its full weight', () => {
    const conf = new LoadBalanceConf('svc');
    const slowStart = { windowMs: 30_000, aggression: 1, minWeightPercent: 10 };
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'weighted-round-robin' }, slowStart });
    publish(conf, tagged('a', { version: 'v2' }));
    const joining = tagged('b', { version: 'v2' });
    publish(conf, tagged('a', { version: 'v2' }), joining);
    const address = instanceAddress(joining);
    // Made lazily, as at a route's first request or after a reload: b is in its first set.
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'weighted-round-robin' }, slowStart);
    expect(v2.balancer.member(address)?.weight).toBeCloseTo(0.1 * joining.weight, 2);
    expect(v2.balancer.member(address)?.rampEndsAt).toBe(parent.balancer.member(address)?.rampEndsAt);
    expect(v2.balancer.member(instanceAddress(tagged('a', {})))?.weight).toBe(1);
    expect(v2.balancer.ramping).toBe(true);
    v2.close();
    parent.close();
  });

  it('counts picks through the subset and through the service in flight on the same hosts (least-connections)', () => {
    const conf = new LoadBalanceConf('svc');
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'least-connections' } });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'least-connections' });
    publish(conf, tagged('a', { version: 'v1' }), tagged('b', { version: 'v2' }), tagged('c', { version: 'v2' }));
    const throughSubset = Array.from({ length: 4 }, () => v2.picker.pick({}) as PickedEndpoint);
    expect(throughSubset.map(pickedId).sort()).toEqual(['b', 'b', 'c', 'c']);
    expect(parent.balancer.member(instanceAddress(tagged('b', {})))?.inFlight).toBe(2);
    // b and c carry two requests each: the service sends its next two to a, not one of them to b.
    const throughService = [parent.picker.pick({}), parent.picker.pick({})] as PickedEndpoint[];
    expect(throughService.map(pickedId)).toEqual(['a', 'a']);
    for (const pick of [...throughSubset, ...throughService]) pick.done({ ok: true, latencyMs: 1 });
    // The other way: with every host idle, three picks of the service land on a, b and c; the one on b stays open.
    const open = Array.from({ length: 3 }, () => parent.picker.pick({}) as PickedEndpoint);
    for (const pick of open) if (pick.instance.id !== 'b') pick.done({ ok: true, latencyMs: 1 });
    expect(pickedId(v2.picker.pick({}))).toBe('c');
    v2.close();
    parent.close();
  });

  it('shares the latency estimate of a host between the service and the subset (p2c-ewma)', () => {
    const conf = new LoadBalanceConf('svc');
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'p2c-ewma' } });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'p2c-ewma' });
    publish(conf, tagged('a', { version: 'v1' }), tagged('b', { version: 'v2' }));
    const pick = v2.picker.pick({}) as PickedEndpoint;
    expect(parent.balancer.member(pick.address)?.inFlight).toBe(1);
    pick.done({ ok: true, latencyMs: 250 });
    expect(parent.balancer.member(pick.address)?.latencyMs).toBe(250);
    v2.close();
    parent.close();
  });

  it('leaves the service balancer and its health running when closed', () => {
    const conf = new LoadBalanceConf('svc');
    const parent = createServiceBalancer(conf, { balancer: { algorithm: 'round-robin' } });
    const v2 = createSubsetBalancer(parent, { version: 'v2' }, { algorithm: 'round-robin' });
    v2.close();
    publish(conf, tagged('b', { version: 'v2' }));
    expect(pickedId(parent.picker.pick({}))).toBe('b');
    parent.close();
  });
});
