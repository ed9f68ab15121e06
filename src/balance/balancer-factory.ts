import type { Balancer, BalancerAlgorithm, BalancerOptions } from './balancer.ts';
import { ConsistentHashBalancer, type ConsistentHashOptions } from './balancer-consistent-hash.ts';
import { LeastConnectionsBalancer } from './balancer-least-connections.ts';
import { P2cEwmaBalancer, type P2cEwmaOptions } from './balancer-p2c-ewma.ts';
import { RandomBalancer } from './balancer-random.ts';
import { RoundRobinBalancer } from './balancer-round-robin.ts';
import { WeightedRoundRobinBalancer } from './balancer-weighted-round-robin.ts';
import { SLOW_START_ALGORITHMS } from './slow-start.ts';

/** A balancer as configuration names it: the algorithm and its own settings. */
export type BalancerConfig =
  | { readonly algorithm: 'random' }
  | { readonly algorithm: 'round-robin' }
  | { readonly algorithm: 'weighted-round-robin' }
  | { readonly algorithm: 'least-connections' }
  | ({ readonly algorithm: 'p2c-ewma' } & Pick<P2cEwmaOptions, 'decayMs'>)
  | ({ readonly algorithm: 'consistent-hash' } & Pick<ConsistentHashOptions, 'key' | 'pointsPerWeight' | 'maxRingPoints' | 'balanceFactor'>);

/**
 * Creates a fresh balancer (no members yet) for `config`; options apply to every algorithm, except
 * `slowStart`, which is dropped for algorithms outside `SLOW_START_ALGORITHMS` (configuration refuses that pairing).
 */
export function createBalancer(config: BalancerConfig, givenOptions: BalancerOptions = {}): Balancer {
  const { slowStart, ...rest } = givenOptions;
  const options: BalancerOptions = slowStart && SLOW_START_ALGORITHMS.includes(config.algorithm) ? givenOptions : rest;
  switch (config.algorithm) {
    case 'random':
      return new RandomBalancer(options);
    case 'round-robin':
      return new RoundRobinBalancer(options);
    case 'weighted-round-robin':
      return new WeightedRoundRobinBalancer(options);
    case 'least-connections':
      return new LeastConnectionsBalancer(options);
    case 'p2c-ewma':
      return new P2cEwmaBalancer({ ...options, ...withoutAlgorithm(config) });
    case 'consistent-hash':
      return new ConsistentHashBalancer({ ...options, ...withoutAlgorithm(config) });
  }
}

function withoutAlgorithm<C extends { algorithm: BalancerAlgorithm }>(config: C): Omit<C, 'algorithm'> {
  const { algorithm: _algorithm, ...rest } = config;
  return rest;
}
