import { describe, expect, it } from 'vitest';
import type { Balancer, BalancerEndpoint } from './balancer.ts';
import { createBalancer, type BalancerConfig } from './balancer-factory.ts';
import { pickedId, seededRandom, testEndpoints } from './balancer-testing.ts';

const PICKS = 100_000;
/** Allowed gap between a member's share of picks and its share of weight, in percentage points. */
const TOLERANCE_POINTS = 1;

const SKEWED: Array<[string, number]> = [['a', 5], ['b', 1], ['c', 1]];
const MIXED: Array<[string, number]> = [['a', 1], ['b', 2], ['c', 3], ['d', 4], ['e', 10]];
const EQUAL: Array<[string, number]> = [['a', 3], ['b', 3], ['c', 3], ['d', 3]];

interface Case {
  readonly name: string;
  readonly config: BalancerConfig;
  readonly weights: Array<[string, number]>;
  /** How a pick gets a request key (only consistent hashing reads one). */
  readonly context?: (index: number) => { clientIp: string };
}

const cases: Case[] = (
  [
    // Round-robin ignores weights by design (grpc-js round_robin), so its expected shares are equal.
    { algorithm: 'round-robin' },
    { algorithm: 'random' },
    { algorithm: 'weighted-round-robin' },
    { algorithm: 'least-connections' },
    { algorithm: 'p2c-ewma' },
    // Ring arcs vary by about 1/√points per member; 4,096 points per unit of weight bring that under 1%.
    { algorithm: 'consistent-hash', key: { from: 'client-ip' }, pointsPerWeight: 4_096 },
  ] satisfies BalancerConfig[]
).flatMap((config) =>
  (config.algorithm === 'round-robin' ? [EQUAL] : [SKEWED, MIXED, EQUAL]).map((weights) => ({
    name: `${config.algorithm} with weights ${weights.map(([, weight]) => weight).join(',')}`,
    config,
    weights,
    ...(config.algorithm === 'consistent-hash' ? { context: (index: number) => ({ clientIp: `198.51.${index >> 8}.${index & 255}` }) } : {}),
  })),
);

/** Picks PICKS times, finishing each request at once with the same latency, and returns each id's share in percent. */
function shares(balancer: Balancer, endpoints: readonly BalancerEndpoint[], context: Case['context']): Map<string, number> {
  const picker = balancer.update(endpoints);
  const counts = new Map<string, number>();
  for (let index = 0; index < PICKS; index += 1) {
    const result = picker.pick(context?.(index) ?? {});
    counts.set(pickedId(result), (counts.get(pickedId(result)) ?? 0) + 1);
    if (result.kind === 'endpoint') result.done({ ok: true, latencyMs: 5 });
  }
  return new Map([...counts].map(([id, count]) => [id, (count * 100) / PICKS]));
}

describe('pick distribution over 100,000 picks', () => {
  it.each(cases)('$name stays within one percentage point of the weights', ({ config, weights, context }) => {
    const balancer = createBalancer(config, { random: seededRandom(7) });
    const total = weights.reduce((sum, [, weight]) => sum + weight, 0);
    const actual = shares(balancer, testEndpoints(...weights), context);
    for (const [id, weight] of weights) {
      const expected = config.algorithm === 'round-robin' ? 100 / weights.length : (weight * 100) / total;
      expect(Math.abs((actual.get(id) ?? 0) - expected), `${id}: ${actual.get(id)}% vs ${expected}%`).toBeLessThan(TOLERANCE_POINTS);
    }
  });

  it('weighted least-connections with requests left open keeps in-flight counts in proportion to weight', () => {
    const balancer = createBalancer({ algorithm: 'least-connections' });
    const picker = balancer.update(testEndpoints(...SKEWED));
    const counts = new Map<string, number>();
    for (let index = 0; index < 7_000; index += 1) {
      const id = pickedId(picker.pick({}));
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ a: 5_000, b: 1_000, c: 1_000 });
  });
});

describe('retries of weighted random picks', () => {
  it.each([
    { algorithm: 'random' },
    // Without a hash key a consistent-hash pick is a weighted random draw.
    { algorithm: 'consistent-hash', key: { from: 'header', name: 'x-user' } },
  ] satisfies BalancerConfig[])('$algorithm shares retries among the untried members by weight with nothing in flight', (config) => {
    const balancer = createBalancer(config, { random: seededRandom(11) });
    // The weight-1 member first: the least loaded untried member by list order took every retry.
    const picker = balancer.update(testEndpoints(['light', 1], ['heavyA', 10], ['heavyB', 10]));
    const counts = new Map<string, number>();
    for (let index = 0; index < 11_000; index += 1) {
      const pick = picker.pick({ tried: ['heavyA.svc.test:8080'] });
      if (pick.kind === 'endpoint') pick.done({ ok: true, latencyMs: 1 });
      counts.set(pickedId(pick), (counts.get(pickedId(pick)) ?? 0) + 1);
    }
    expect(counts.get('heavyA')).toBeUndefined();
    // 10,000 and 1,000 expected; a draw of 11,000 stays well within ±300.
    expect(Math.abs((counts.get('heavyB') ?? 0) - 10_000)).toBeLessThan(300);
    expect(Math.abs((counts.get('light') ?? 0) - 1_000)).toBeLessThan(300);
  });
});
