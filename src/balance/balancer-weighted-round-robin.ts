import type { BalancerAlgorithm, BalancerEndpoint } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import { Member } from './balancer-member.ts';
import type { PickResult, Picker } from './picker.ts';

/** A member with its nginx current weight. */
export class WeightedMember extends Member {
  /** nginx's `current_weight`; survives updates while the address stays. */
  current = 0;
}

/**
 * One step of nginx's smooth weighted round-robin (ngx_http_upstream_round_robin.c,
 * `ngx_http_upstream_get_peer`): every member gains its weight, the largest current weight wins
 * (the first in order on a tie) and pays back the total. Weights 5,1,1 give a a b a c a a, never
 * five a's in a row. `members` must be non-empty with weights above 0.
 */
export function smoothWeightedStep<M extends WeightedMember>(members: readonly M[]): M {
  let best = members[0]!;
  let total = 0;
  for (const member of members) {
    member.current += member.weight;
    total += member.weight;
    if (member.current > best.current) best = member;
  }
  best.current -= total;
  return best;
}

/**
 * Shifts current weights so they sum to zero over `members`, as they always do within one set.
 * After a member leaves or returns, its credit or debt is spread evenly instead of bursting
 * traffic onto whoever holds the surplus.
 */
export function rebalanceCurrentWeights(members: readonly WeightedMember[]): void {
  const sum = members.reduce((total, member) => total + member.current, 0);
  if (sum === 0) return;
  const shift = sum / members.length;
  for (const member of members) member.current -= shift;
}

/**
 * nginx smooth weighted round-robin. Current weights survive updates, so a new picker continues
 * the sequence; a weight change takes effect from the next pick, spread evenly (the smoothing is
 * what prevents a burst), and members that join start at 0.
 */
export class WeightedRoundRobinBalancer extends BalancerBase<WeightedMember> {
  readonly algorithm: BalancerAlgorithm = 'weighted-round-robin';

  protected createMember(endpoint: BalancerEndpoint): WeightedMember {
    return new WeightedMember(endpoint.address, endpoint.instance, endpoint.routable);
  }

  protected buildPicker(eligible: readonly WeightedMember[]): Picker {
    rebalanceCurrentWeights(eligible);
    if (eligible.length === 1) {
      const only = eligible[0]!;
      return { pick: (): PickResult => this.attempt(only) };
    }
    return { pick: (): PickResult => this.attempt(smoothWeightedStep(eligible)) };
  }
}
