// Fixtures shared by the balancer tests; not exported from index.ts.
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import { BALANCER_ALGORITHMS, type BalancerAlgorithm, type BalancerEndpoint } from './balancer.ts';
import type { BalancerConfig } from './balancer-factory.ts';
import type { PeekResult, PickResult } from './picker.ts';

/** An instance named `id` at `<id>.svc.test:8080`, so the address follows from the id. */
export function testInstance(id: string, weight = 1): Instance {
  return { id, service: 'svc', host: `${id}.svc.test`, port: 8080, weight, protocol: 'http', metadata: {} };
}

/** Routable endpoints from `[id, weight]` pairs, in the order given. */
export function testEndpoints(...members: Array<[id: string, weight: number] | string>): BalancerEndpoint[] {
  return members.map((member) => {
    const [id, weight] = typeof member === 'string' ? [member, 1] : member;
    const instance = testInstance(id, weight);
    return { address: instanceAddress(instance), instance, routable: true };
  });
}

/** The id picked, or the `none` reason. */
export function pickedId(result: PickResult | PeekResult): string {
  return result.kind === 'endpoint' ? result.instance.id : `none:${result.reason}`;
}

/** A seeded PRNG (mulberry32) so distribution tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A configuration of each algorithm (consistent-hash keyed by the `x-user` header), for tests run over every balancer. */
const ALGORITHM_CONFIGS: Record<BalancerAlgorithm, BalancerConfig> = {
  random: { algorithm: 'random' },
  'round-robin': { algorithm: 'round-robin' },
  'weighted-round-robin': { algorithm: 'weighted-round-robin' },
  'least-connections': { algorithm: 'least-connections' },
  'p2c-ewma': { algorithm: 'p2c-ewma' },
  'consistent-hash': { algorithm: 'consistent-hash', key: { from: 'header', name: 'x-user' } },
};

/** Every algorithm with its `ALGORITHM_CONFIGS` entry, for `describe.each`. */
export const EVERY_ALGORITHM: ReadonlyArray<{ algorithm: BalancerAlgorithm; config: BalancerConfig }> = BALANCER_ALGORITHMS.map((algorithm) => ({ algorithm, config: ALGORITHM_CONFIGS[algorithm] }));
