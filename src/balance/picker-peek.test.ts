import { describe, expect, it } from 'vitest';
import type { Balancer, BalancerEndpoint } from './balancer.ts';
import { createBalancer, type BalancerConfig } from './balancer-factory.ts';
import { LinearLeastConnectionsBalancer, LinearWeightedRoundRobinBalancer } from './balancer-linear.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import type { PickContext, PickedEndpoint } from './picker.ts';
import { canaryPicker, fallbackPicker, SmoothSplit } from './picker-subset.ts';

/** Endpoints a0…a<n-1> with weights cycling 1..4 (enough members, past 32, for the indexed pickers). */
function manyEndpoints(count: number): BalancerEndpoint[] {
  return testEndpoints(...Array.from({ length: count }, (_, index) => [`a${index}`, (index % 4) + 1] as [string, number]));
}

const DETERMINISTIC: [string, () => Balancer, BalancerEndpoint[]][] = [
  ['round-robin', () => createBalancer({ algorithm: 'round-robin' }, { random: () => 0.5 }), testEndpoints('a', 'b', 'c')],
  ['weighted-round-robin', () => createBalancer({ algorithm: 'weighted-round-robin' }), testEndpoints(['a', 5], ['b', 1], ['c', 1])],
  ['weighted-round-robin, indexed (40 members)', () => createBalancer({ algorithm: 'weighted-round-robin' }), manyEndpoints(40)],
  ['least-connections', () => createBalancer({ algorithm: 'least-connections' }), testEndpoints(['a', 3], ['b', 1], ['c', 2])],
  ['least-connections, indexed (40 members)', () => createBalancer({ algorithm: 'least-connections' }), manyEndpoints(40)],
  ['linear weighted-round-robin', () => new LinearWeightedRoundRobinBalancer(), testEndpoints(['a', 2], ['b', 3])],
  ['linear least-connections', () => new LinearLeastConnectionsBalancer(), testEndpoints(['a', 2], ['b', 3], ['c', 1])],
  ['consistent-hash by header', () => createBalancer({ algorithm: 'consistent-hash', key: { from: 'header', name: 'x-user' } }), testEndpoints('a', 'b', 'c', 'd')],
  ['consistent-hash with bounded loads', () => createBalancer({ algorithm: 'consistent-hash', key: { from: 'header', name: 'x-user' }, balanceFactor: 1.25 }), testEndpoints('a', 'b', 'c')],
];

const contextOf = (step: number): PickContext => ({ headers: { 'x-user': `user-${step % 7}` } });

describe('Picker.peek', () => {
  it.each(DETERMINISTIC)('%s: a peek names exactly the next pick, and peeking leaves the sequence unchanged', (_name, build, endpoints) => {
    const peeked = build();
    const plain = build();
    peeked.update(endpoints);
    plain.update(endpoints);
    const held: PickedEndpoint[] = [];
    for (let step = 0; step < 120; step += 1) {
      const context = contextOf(step);
      const first = pickedId(peeked.picker.peek(context));
      // Peeking again must not move anything either.
      expect(pickedId(peeked.picker.peek(context))).toBe(first);
      const picked = peeked.picker.pick(context);
      expect(pickedId(picked)).toBe(first);
      const reference = plain.picker.pick(context);
      expect(pickedId(reference)).toBe(first);
      // Keep some attempts open so that least-connections sees in-flight counts move.
      if (picked.kind === 'endpoint' && reference.kind === 'endpoint') {
        if (step % 3 === 0) held.push(picked, reference);
        else {
          picked.done({ ok: true, latencyMs: 1 });
          reference.done({ ok: true, latencyMs: 1 });
        }
      }
      if (held.length > 10) for (const attempt of held.splice(0, 4)) attempt.done({ ok: true, latencyMs: 1 });
    }
  });

  it.each<[string, BalancerConfig]>([
    ['random', { algorithm: 'random' }],
    ['p2c-ewma', { algorithm: 'p2c-ewma' }],
    ['consistent-hash without a key in the request', { algorithm: 'consistent-hash', key: { from: 'header', name: 'x-user' } }],
  ])('%s: a peek draws a routable member and counts nothing in flight', (_name, config) => {
    const balancer = createBalancer(config, { random: seededRandom(7) });
    balancer.update([...testEndpoints(['a', 1], ['b', 3]), { ...testEndpoints('down')[0]!, routable: false }]);
    const seen = new Set<string>();
    for (let step = 0; step < 200; step += 1) seen.add(pickedId(balancer.picker.peek({})));
    expect([...seen].sort()).toEqual(['a', 'b']);
    for (const address of ['a.svc.test:8080', 'b.svc.test:8080']) expect(balancer.member(address)?.inFlight).toBe(0);
  });

  it('answers the same none as pick when nothing may take traffic', () => {
    const balancer = createBalancer({ algorithm: 'weighted-round-robin' });
    expect(balancer.picker.peek({})).toEqual({ kind: 'none', reason: 'no-instances' });
    balancer.update([{ ...testEndpoints('a')[0]!, routable: false }]);
    expect(balancer.picker.peek({})).toEqual({ kind: 'none', reason: 'no-healthy-instances' });
  });

  it('SmoothSplit.peek names the next index without turning the rotation', () => {
    const split = new SmoothSplit([3, 0, 1]);
    const sequence = Array.from({ length: 12 }, () => {
      const peeked = split.peek();
      expect(split.peek()).toBe(peeked);
      const next = split.next();
      expect(next).toBe(peeked);
      return next;
    });
    expect(sequence).toEqual([0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0]);
  });

  it('subset pickers peek through to the picker that a pick would use', () => {
    const stable = createBalancer({ algorithm: 'round-robin' }, { random: () => 0 });
    const canary = createBalancer({ algorithm: 'round-robin' }, { random: () => 0 });
    const empty = createBalancer({ algorithm: 'round-robin' });
    stable.update(testEndpoints('s1', 's2'));
    canary.update(testEndpoints('c1'));
    const split = new SmoothSplit([2, 1]);
    const picker = canaryPicker({ split: [{ weight: 2, source: stable }, { weight: 1, source: canary }], lanes: [{ header: 'x-canary', to: canary }], fallback: undefined }, split);
    for (let step = 0; step < 9; step += 1) {
      const peeked = pickedId(picker.peek({}));
      expect(pickedId(picker.pick({}))).toBe(peeked);
    }
    expect(pickedId(picker.peek({ headers: { 'x-canary': 'yes' } }))).toBe('c1');
    const fallback = fallbackPicker(empty, stable);
    const peeked = pickedId(fallback.peek({}));
    expect(pickedId(fallback.pick({}))).toBe(peeked);
  });
});
