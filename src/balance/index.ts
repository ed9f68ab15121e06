// The public face of balancing: algorithms by name, the Picker contract, and the per-service composition.
export { BALANCER_ALGORITHMS } from './balancer.ts';
export type { Balancer, BalancerAlgorithm, BalancerEndpoint, BalancerOptions, MemberView, OutcomeListener } from './balancer.ts';
export { ConsistentHashBalancer, DEFAULT_MAX_RING_POINTS, DEFAULT_POINTS_PER_WEIGHT } from './balancer-consistent-hash.ts';
export type { ConsistentHashOptions } from './balancer-consistent-hash.ts';
export { createBalancer } from './balancer-factory.ts';
export type { BalancerConfig } from './balancer-factory.ts';
export { LeastConnectionsBalancer } from './balancer-least-connections.ts';
export { DEFAULT_EWMA_DECAY_MS, P2cEwmaBalancer } from './balancer-p2c-ewma.ts';
export type { P2cEwmaOptions } from './balancer-p2c-ewma.ts';
export { RandomBalancer } from './balancer-random.ts';
export { RoundRobinBalancer } from './balancer-round-robin.ts';
export { WeightedRoundRobinBalancer } from './balancer-weighted-round-robin.ts';
export type { HashKeySource } from './hash-key.ts';
export { nonePicker } from './picker.ts';
export type { NoEndpoint, PickContext, PickedEndpoint, PickOutcome, PickResult, Picker } from './picker.ts';
export { createServiceBalancer, ServiceBalancer } from './service-balancer.ts';
export type { ServiceBalancerOptions } from './service-balancer.ts';
