import { describe, expect, it } from 'vitest';
import type { Balancer, BalancerEndpoint } from './balancer.ts';
import type { BalancerBase } from './balancer-base.ts';
import { LeastConnectionsBalancer } from './balancer-least-connections.ts';
import { LinearLeastConnectionsBalancer, LinearWeightedRoundRobinBalancer } from './balancer-linear.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';
import { WeightedRoundRobinBalancer, type WeightedMember } from './balancer-weighted-round-robin.ts';
import type { PickedEndpoint } from './picker.ts';
import { INDEXED_PICK_MIN_MEMBERS } from './smooth-weighted-set.ts';

/** Enough ids that random sets fall on both sides of INDEXED_PICK_MIN_MEMBERS, so pickers switch between scan and index. */
const IDS = Array.from({ length: 2 * INDEXED_PICK_MIN_MEMBERS }, (_, index) => `m${index}`);

/**
 * Every endpoint `randomSet` hands out, built once (by id, weight 0 to 6, then routable, unroutable,
 * draining): a set is a choice among them, so an update costs the balancers' diff, not the making
 * of a thousand objects. The balancers key members by address and never by object, so fresh
 * objects would test nothing more.
 */
const ENDPOINTS = IDS.map((id) =>
  Array.from({ length: 7 }, (_, weight) => {
    const [endpoint] = testEndpoints([id, weight]) as [BalancerEndpoint];
    return [endpoint, { ...endpoint, routable: false }, { ...endpoint, instance: { ...endpoint.instance, draining: true } }] as const;
  }),
);

/** A random endpoint set over IDS: some members left out, weights 0 to 6, some unroutable or draining. */
function randomSet(random: () => number): BalancerEndpoint[] {
  const share = 0.2 + random() * 0.8;
  const chosen = ENDPOINTS.filter(() => random() < share);
  const weights = chosen.map(() => Math.floor(random() * 7));
  return chosen.map((byWeight, index) => {
    const roll = random();
    return byWeight[weights[index]!]![roll < 0.08 ? 1 : roll < 0.12 ? 2 : 0];
  });
}

/**
 * Random runs of 400 steps compared per balancer. Each costs about 24 updates of both balancers,
 * most of the test's time; the bugs we planted in the index (a tie broken the other way, a heap
 * sift left out, a flush that kept stale bases, a bucket taken from another index) were all
 * caught within the first 4 runs, so 100 leave a wide margin (300 took 7 s at load 10 on 2 cores).
 */
const RANDOM_RUNS = 100;

/**
 * Drives the indexed balancer and its linear reference through the same random picks, done() calls,
 * updates (members joining, leaving, changing weight, health and drain) and reads, and returns the
 * first difference in what they picked or report, or undefined.
 */
function firstDifference(indexed: Balancer, linear: Balancer, seed: number, steps: number): string | undefined {
  const random = seededRandom(seed);
  const open: Array<[PickedEndpoint, PickedEndpoint]> = [];
  for (let step = 0; step < steps; step += 1) {
    const roll = random();
    if (roll < 0.06) {
      const endpoints = randomSet(random);
      indexed.update(endpoints);
      linear.update(endpoints);
    } else if (roll < 0.4 && open.length > 0) {
      const [a, b] = open.splice(Math.floor(random() * open.length), 1)[0]!;
      a.done({ ok: true, latencyMs: 1 });
      b.done({ ok: true, latencyMs: 1 });
    } else if (roll < 0.45) {
      const address = `${IDS[Math.floor(random() * IDS.length)]}.svc.test:8080`;
      const [a, b] = [indexed, linear].map((balancer) => balancer.member(address) as WeightedMember | undefined);
      if (a?.current !== b?.current || a?.inFlight !== b?.inFlight) return `step ${step}: ${address} reads ${a?.current}/${a?.inFlight} instead of ${b?.current}/${b?.inFlight}`;
    } else {
      const [a, b] = [indexed.picker.pick({}), linear.picker.pick({})];
      if (pickedId(a) !== pickedId(b)) return `step ${step}: picked ${pickedId(a)} instead of ${pickedId(b)}`;
      if (a.kind === 'endpoint' && b.kind === 'endpoint') open.push([a, b]);
    }
  }
  return undefined;
}

describe.each([
  { name: 'weighted round-robin', indexed: () => new WeightedRoundRobinBalancer(), linear: () => new LinearWeightedRoundRobinBalancer() },
  { name: 'least-connections', indexed: () => new LeastConnectionsBalancer(), linear: () => new LinearLeastConnectionsBalancer() },
])('$name through its index', ({ indexed, linear }) => {
  it('picks exactly what the one-pass nginx step picks, through random picks, completions and updates', () => {
    for (let seed = 1; seed <= RANDOM_RUNS; seed += 1) {
      expect(firstDifference(indexed(), linear(), seed, 400), `seed ${seed}`).toBeUndefined();
    }
  });

  it('picks exactly what the one-pass nginx step picks at 1,000 members with weights 1 to 5, in flight or not', () => {
    const endpoints = testEndpoints(...Array.from({ length: 1_000 }, (_, index): [string, number] => [`m${index}`, 1 + (index % 5)]));
    const [a, b] = [indexed(), linear()];
    a.update(endpoints);
    b.update(endpoints);
    const picks = Array.from({ length: 20_000 }, (_, index) => {
      const [x, y] = [a.picker.pick({}) as PickedEndpoint, b.picker.pick({}) as PickedEndpoint];
      // Every third pick stays open, so least-connections sees members at several loads.
      if (index % 3 !== 0) for (const pick of [x, y]) pick.done({ ok: true, latencyMs: 1 });
      return [x.instance.id, y.instance.id];
    });
    expect(picks.filter(([x, y]) => x !== y).length).toBe(0);
    expect((a as BalancerBase<WeightedMember>).member('m7.svc.test:8080')!.current).toBe((b as BalancerBase<WeightedMember>).member('m7.svc.test:8080')!.current);
  });

  it('keeps answering from a picker kept past an update, from the members it was built over', () => {
    const balancer = indexed();
    const many = testEndpoints(...IDS.map((id): [string, number] => [id, 1]));
    const stale = balancer.update(many);
    balancer.update(testEndpoints(['c', 1]));
    const picked = new Set(Array.from({ length: IDS.length }, () => pickedId(stale.pick({}))));
    expect(picked).toEqual(new Set(IDS));
    expect(pickedId(balancer.picker.pick({}))).toBe('c');
  });
});
