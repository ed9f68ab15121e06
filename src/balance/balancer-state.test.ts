import { describe, expect, it } from 'vitest';
import type { BalancerEndpoint } from './balancer.ts';
import type { BalancerBase } from './balancer-base.ts';
import { createBalancer } from './balancer-factory.ts';
import type { EwmaMember } from './balancer-p2c-ewma.ts';
import { EVERY_ALGORITHM, pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { PickedEndpoint } from './picker.ts';

const address = (id: string) => `${id}.svc.test:8080`;
const unroutable = (endpoints: BalancerEndpoint[], ...ids: string[]) =>
  endpoints.map((endpoint) => (ids.includes(endpoint.instance.id) ? { ...endpoint, routable: false } : endpoint));

function pickMany(balancer: ReturnType<typeof createBalancer>, count: number): PickedEndpoint[] {
  return Array.from({ length: count }, (_, index) => {
    const result = balancer.picker.pick({ headers: { 'x-user': `user-${index}` } });
    if (result.kind !== 'endpoint') throw new Error(`expected an endpoint, got ${result.reason}`);
    return result;
  });
}

describe.each(EVERY_ALGORITHM)('$algorithm balancer', ({ config }) => {
  it('answers no-instances before any update and for an empty set', () => {
    const balancer = createBalancer(config);
    expect(balancer.picker.pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
    expect(balancer.update([]).pick({})).toEqual({ kind: 'none', reason: 'no-instances' });
  });

  it('answers no-healthy-instances when no member is routable, without throwing', () => {
    const balancer = createBalancer(config);
    const picker = balancer.update(unroutable(testEndpoints('a', 'b'), 'a', 'b'));
    expect(picker.pick({ headers: { 'x-user': 'u' } })).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
  });

  it('answers no-healthy-instances when every member has weight 0', () => {
    const balancer = createBalancer(config);
    expect(balancer.update(testEndpoints(['a', 0], ['b', 0])).pick({})).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
  });

  it('never picks an unroutable member or one with weight 0', () => {
    const balancer = createBalancer(config, { random: seededRandom(3) });
    balancer.update(unroutable(testEndpoints('a', 'b', ['c', 0], 'd'), 'b'));
    const picked = new Set(pickMany(balancer, 2_000).map(pickedId));
    expect(picked).toEqual(new Set(['a', 'd']));
  });

  it('counts a pick in flight until done, and ignores a second done', () => {
    const outcomes: string[] = [];
    const balancer = createBalancer(config, { onOutcome: (picked, outcome) => outcomes.push(`${picked}:${outcome.ok}`) });
    balancer.update(testEndpoints('a'));
    const [pick] = pickMany(balancer, 1);
    const member = balancer.member(address('a'))!;
    expect(member.inFlight).toBe(1);
    pick!.done({ ok: false, latencyMs: 3, errorClass: 'http-5xx' });
    pick!.done({ ok: true, latencyMs: 3 });
    expect(member.inFlight).toBe(0);
    expect(outcomes).toEqual([`${address('a')}:false`]);
  });

  it('keeps in-flight counts of unchanged members when an unrelated member joins', () => {
    const balancer = createBalancer(config, { random: seededRandom(5) });
    balancer.update(testEndpoints('a', 'b'));
    pickMany(balancer, 40);
    const before = ['a', 'b'].map((id) => balancer.member(address(id))!.inFlight);
    expect(before.reduce((sum, count) => sum + count, 0)).toBe(40);
    balancer.update(testEndpoints('a', 'b', 'c'));
    expect(['a', 'b'].map((id) => balancer.member(address(id))!.inFlight)).toEqual(before);
  });

  it('sends no new pick to a draining member, lets its picks in flight finish, and keeps its state', () => {
    const outcomes: string[] = [];
    const balancer = createBalancer(config, { random: seededRandom(4), onOutcome: (picked, outcome) => outcomes.push(`${picked}:${outcome.ok}`) });
    balancer.update(testEndpoints('a', 'b'));
    const onB = pickMany(balancer, 20).filter((pick) => pick.instance.id === 'b');
    expect(onB.length).toBeGreaterThan(0);
    const member = balancer.member(address('b'))!;
    const draining = testEndpoints('a', 'b').map((endpoint) => (endpoint.instance.id === 'b' ? { ...endpoint, instance: { ...endpoint.instance, draining: true } } : endpoint));
    balancer.update(draining);
    expect(new Set(pickMany(balancer, 500).map(pickedId))).toEqual(new Set(['a']));
    expect(balancer.member(address('b'))).toBe(member);
    expect(member.weight).toBe(0);
    for (const pick of onB) pick.done({ ok: true, latencyMs: 1 });
    expect(member.inFlight).toBe(0);
    expect(outcomes).toContain(`${address('b')}:true`);
    balancer.update(draining.filter((endpoint) => endpoint.instance.id === 'b'));
    expect(balancer.picker.pick({ headers: { 'x-user': 'u' } })).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
  });

  it('keeps the in-flight count of a member that leaves the registry and comes back while its picks are open', () => {
    const balancer = createBalancer(config, { random: seededRandom(6) });
    balancer.update(testEndpoints('a', 'b'));
    const onB = pickMany(balancer, 20).filter((pick) => pick.instance.id === 'b');
    expect(onB.length).toBeGreaterThan(1);
    // Re-registered: gone from one snapshot, back in the next (a new session, a restarted agent).
    balancer.update(testEndpoints('a'));
    onB.pop()!.done({ ok: true, latencyMs: 1 });
    balancer.update(testEndpoints('a', 'b'));
    expect(balancer.member(address('b'))!.inFlight).toBe(onB.length);
    for (const pick of onB) pick.done({ ok: true, latencyMs: 1 });
    expect(balancer.member(address('b'))!.inFlight).toBe(0);
  });

  it('routes to a member again once it is routable again, with its state intact', () => {
    const balancer = createBalancer(config, { random: seededRandom(9) });
    balancer.update(testEndpoints('a', 'b'));
    const picks = pickMany(balancer, 10).filter((pick) => pick.instance.id === 'b');
    const member = balancer.member(address('b'))!;
    balancer.update(unroutable(testEndpoints('a', 'b'), 'b'));
    expect(new Set(pickMany(balancer, 200).map(pickedId))).toEqual(new Set(['a']));
    balancer.update(testEndpoints('a', 'b'));
    expect(balancer.member(address('b'))).toBe(member);
    expect(member.inFlight).toBe(picks.length);
    expect(pickMany(balancer, 200).map(pickedId)).toContain('b');
  });
});

describe('state that survives updates', () => {
  it('keeps the latency estimate of a p2c-ewma member when an unrelated member joins', () => {
    let now = 0;
    const balancer = createBalancer({ algorithm: 'p2c-ewma' }, { now: () => now, random: seededRandom(1) });
    balancer.update(testEndpoints('a', 'b'));
    for (const pick of pickMany(balancer, 20)) pick.done({ ok: true, latencyMs: pick.instance.id === 'a' ? 10 : 40 });
    now += 1;
    const estimate = (id: string) => ((balancer as BalancerBase<EwmaMember>).member(address(id))!.ewma.latencyMs);
    const before = [estimate('a'), estimate('b')];
    expect(before[0]).toBeGreaterThan(0);
    balancer.update(testEndpoints('a', 'b', 'c'));
    expect([estimate('a'), estimate('b')]).toEqual(before);
  });

  it('drops the state of a member that leaves once nothing is in flight on it, so a returning address starts afresh', () => {
    const balancer = createBalancer({ algorithm: 'least-connections' });
    balancer.update(testEndpoints('a', 'b'));
    const picks = pickMany(balancer, 4);
    balancer.update(testEndpoints('a'));
    for (const pick of picks) pick.done({ ok: true, latencyMs: 1 });
    const left = picks.find((pick) => pick.instance.id === 'b')!;
    balancer.update(testEndpoints('a', 'b'));
    expect(balancer.member(address('b'))!.inFlight).toBe(0);
    left.done({ ok: true, latencyMs: 1 });
    expect(balancer.member(address('b'))!.inFlight).toBe(0);
  });

  it('keeps the latency estimate of a p2c-ewma member that re-registers while requests are in flight on it', () => {
    let now = 0;
    const balancer = createBalancer({ algorithm: 'p2c-ewma' }, { now: () => now, random: seededRandom(2) });
    balancer.update(testEndpoints('a', 'b'));
    const picks = pickMany(balancer, 20);
    for (const pick of picks.slice(0, 10)) pick.done({ ok: true, latencyMs: pick.instance.id === 'a' ? 10 : 400 });
    now += 1;
    const estimate = () => (balancer as BalancerBase<EwmaMember>).member(address('b'))!.ewma.latencyMs;
    const before = estimate();
    balancer.update(testEndpoints('a'));
    // Back at the same host:port under a new id, as a new registration names itself.
    balancer.update(testEndpoints('a', 'b').map((endpoint) => (endpoint.instance.id === 'b' ? { ...endpoint, instance: { ...endpoint.instance, id: 'b-2' } } : endpoint)));
    expect(estimate()).toBe(before);
    expect(balancer.member(address('b'))!.instance.id).toBe('b-2');
  });
});
