import { describe, expect, it } from 'vitest';
import { WeightedRoundRobinBalancer } from './balancer-weighted-round-robin.ts';
import { pickedId, testEndpoints } from './balancer-testing.ts';

function sequence(balancer: WeightedRoundRobinBalancer, count: number): string[] {
  return Array.from({ length: count }, () => pickedId(balancer.picker.pick({})));
}

/** Longest run of one id in a pick sequence. */
function longestRun(picks: readonly string[], id: string): number {
  let longest = 0;
  let run = 0;
  for (const pick of picks) {
    run = pick === id ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}

describe('WeightedRoundRobinBalancer (nginx smooth weighted round-robin)', () => {
  it.each([
    { weights: [['a', 5], ['b', 1], ['c', 1]] as Array<[string, number]>, expected: 'a a b a c a a' },
    { weights: [['A', 4], ['B', 3], ['C', 2]] as Array<[string, number]>, expected: 'A B C A B A C B A' },
    { weights: [['a', 1], ['b', 1], ['c', 1]] as Array<[string, number]>, expected: 'a b c a b c' },
  ])('picks $expected for weights $weights', ({ weights, expected }) => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(...weights));
    expect(sequence(balancer, expected.split(' ').length).join(' ')).toBe(expected);
  });

  it('starts the 4,3,2 walkthrough with A, B, C rather than a run of A', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['A', 4], ['B', 3], ['C', 2]));
    expect(sequence(balancer, 3)).toEqual(['A', 'B', 'C']);
  });

  it('keeps the current weights of unchanged members when an unrelated member joins', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1]));
    sequence(balancer, 3);
    const before = ['a', 'b', 'c'].map((id) => balancer.member(`${id}.svc.test:8080`)!.current);
    expect(before).toEqual([1, -4, 3]);
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1], ['d', 1]));
    expect(['a', 'b', 'c'].map((id) => balancer.member(`${id}.svc.test:8080`)!.current)).toEqual(before);
    expect(balancer.member('d.svc.test:8080')!.current).toBe(0);
  });

  it('continues the sequence across an update that changes nothing', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1]));
    const first = sequence(balancer, 3);
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1]));
    expect([...first, ...sequence(balancer, 4)].join(' ')).toBe('a a b a c a a');
  });

  it.each([
    { change: 'raising b from 1 to 5', before: 1, after: 5 },
    { change: 'lowering a from 5 to 1', before: 5, after: 1 },
  ])('applies $change from the next pick without a burst', ({ before, after }) => {
    const id = before < after ? 'b' : 'a';
    const weightsBefore: Array<[string, number]> = id === 'b' ? [['a', 1], ['b', before], ['c', 1]] : [['a', before], ['b', 1], ['c', 1]];
    const weightsAfter: Array<[string, number]> = weightsBefore.map(([name, weight]) => [name, name === id ? after : weight]);
    const total = weightsAfter.reduce((sum, [, weight]) => sum + weight, 0);

    const fresh = new WeightedRoundRobinBalancer();
    fresh.update(testEndpoints(...weightsAfter));
    const freshRun = longestRun(sequence(fresh, total * 4), id);

    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(...weightsBefore));
    // Stop mid-cycle so that current weights are far from zero when the weight changes.
    sequence(balancer, 2);
    balancer.update(testEndpoints(...weightsAfter));
    const picks = sequence(balancer, total * 4);

    // Every window of one cycle already holds the new share, within one pick.
    for (let start = 0; start + total <= picks.length; start += 1) {
      const share = picks.slice(start, start + total).filter((pick) => pick === id).length;
      expect(Math.abs(share - after)).toBeLessThanOrEqual(1);
    }
    expect(longestRun(picks, id)).toBeLessThanOrEqual(freshRun + 1);
  });

  it('sends nothing to a member with weight 0 and keeps its current weight for when it returns', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['a', 1], ['b', 1]));
    sequence(balancer, 1);
    const parked = balancer.member('b.svc.test:8080')!.current;
    balancer.update(testEndpoints(['a', 1], ['b', 0]));
    expect(new Set(sequence(balancer, 10))).toEqual(new Set(['a']));
    expect(balancer.member('b.svc.test:8080')!.current).toBe(parked);
  });

  it('spreads the credit of a departed member evenly, so current weights still sum to zero', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['a', 5], ['b', 1], ['c', 1]));
    sequence(balancer, 3);
    balancer.update(testEndpoints(['a', 5], ['b', 1]));
    const sum = ['a', 'b'].reduce((total, id) => total + balancer.member(`${id}.svc.test:8080`)!.current, 0);
    expect(sum).toBeCloseTo(0, 9);
  });

  it.each([
    { name: 'a scan', others: 2 },
    { name: 'the index', others: 40 },
  ])('sends a retry to a member it has not tried, through $name, and leaves the sequence as it was', ({ others }) => {
    const weights: Array<[string, number]> = [['heavy', 10], ...Array.from({ length: others }, (_, index): [string, number] => [`light-${index}`, 1])];
    const balancer = new WeightedRoundRobinBalancer();
    const control = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(...weights));
    control.update(testEndpoints(...weights));
    const heavy = 'heavy.svc.test:8080';
    for (let step = 0; step < 10 + others; step += 1) {
      const usual = pickedId(balancer.picker.pick({}));
      expect(usual).toBe(pickedId(control.picker.pick({})));
      if (usual === 'heavy') expect(pickedId(balancer.picker.pick({ tried: [heavy] }))).not.toBe('heavy');
    }
  });
});

describe('WeightedRoundRobinBalancer retries', () => {
  it.each([
    { name: 'a scan', others: 0 },
    { name: 'the index', others: 40 },
  ])('shares retries among the untried members by weight with nothing in flight, through $name', ({ others }) => {
    // Weight 1 members listed first: picking the least loaded untried member by list order sent every retry to them.
    const spares = Array.from({ length: others }, (_, index): [string, number] => [`spare-${index}`, 1]);
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['light', 1], ...spares, ['heavyA', 10], ['heavyB', 10]));
    const total = 11 + others;
    const counts = new Map<string, number>();
    for (let step = 0; step < total * 100; step += 1) {
      const pick = balancer.picker.pick({ tried: ['heavyA.svc.test:8080'] });
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      counts.set(pickedId(pick), (counts.get(pickedId(pick)) ?? 0) + 1);
    }
    expect(counts.get('heavyA')).toBeUndefined();
    expect(counts.get('heavyB')).toBe(1_000);
    expect(counts.get('light')).toBe(100);
  });

  it('spreads retries smoothly, as nginx steps over the untried peers', () => {
    const balancer = new WeightedRoundRobinBalancer();
    balancer.update(testEndpoints(['x', 9], ['a', 5], ['b', 1], ['c', 1]));
    const retries = Array.from({ length: 7 }, () => {
      const pick = balancer.picker.pick({ tried: ['x.svc.test:8080'] });
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      return pickedId(pick);
    });
    expect(retries.join(' ')).toBe('a a b a c a a');
  });
});
