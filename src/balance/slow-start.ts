import type { BalancerAlgorithm } from './balancer.ts';

/**
 * Envoy's `slow_start_config`: an instance that joins a service ramps its effective weight from
 * `minWeightPercent` to 100 % of its registered weight over `windowMs`.
 */
export interface SlowStartOptions {
  /** How long the ramp lasts, in milliseconds; above 0. */
  readonly windowMs: number;
  /** Shape of the ramp: 1 is linear, above 1 ramps faster early, below 1 slower. Above 0. */
  readonly aggression: number;
  /** The share of its weight a new instance starts with, in percent; above 0, at most 100. */
  readonly minWeightPercent: number;
}

/** Envoy's defaults for the fields a configuration leaves out. */
export const DEFAULT_SLOW_START: Omit<SlowStartOptions, 'windowMs'> = { aggression: 1, minWeightPercent: 10 };

/**
 * Algorithms whose picks follow member weights, so a ramped weight ramps traffic. `round-robin`
 * ignores weights, and `consistent-hash` would move ring points (remap keys) at every step.
 */
export const SLOW_START_ALGORITHMS: readonly BalancerAlgorithm[] = ['weighted-round-robin', 'random', 'least-connections', 'p2c-ewma'];

/**
 * The share of its weight a member `elapsedMs` into its ramp gets, Envoy's formula:
 * `max(minWeightPercent / 100, (elapsed / window) ^ (1 / aggression))`, and 1 once the window is over.
 */
export function slowStartFactor(elapsedMs: number, options: SlowStartOptions): number {
  if (elapsedMs >= options.windowMs) return 1;
  const progress = Math.max(0, elapsedMs) / options.windowMs;
  return Math.max(options.minWeightPercent / 100, progress ** (1 / options.aggression));
}

/** Coarsest rebuild period that still ramps in about 20 steps: a twentieth of the window, between 50 ms and 1 s. */
export function slowStartTickMs(options: SlowStartOptions): number {
  return Math.min(1_000, Math.max(50, Math.round(options.windowMs / 20)));
}
