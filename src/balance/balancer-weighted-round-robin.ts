import type { BalancerAlgorithm, BalancerEndpoint } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { Member } from './balancer-member.ts';
import { peekedEndpoint, type PickContext, type PickResult, type Picker } from './picker.ts';
import { INDEXED_PICK_MIN_MEMBERS, SmoothWeightedSet, type SmoothWeightedEntry } from './smooth-weighted-set.ts';

/** A member with its nginx current weight. */
export class WeightedMember extends Member implements SmoothWeightedEntry {
  /** nginx's `current_weight`; survives updates while the address stays. Read it through `balancer.member()`, which brings it up to date. */
  current = 0;
  /** The current weight of retries' steps (`smoothWeightedRetryStep`), apart so that retries leave the usual sequence as it was. */
  retryCurrent = 0;
  base = 0;
  slot = 0;
  heapIndex = -1;
  set: SmoothWeightedEntry['set'] = undefined;
  weightClass: unknown = undefined;
}

/**
 * One step of nginx's smooth weighted round-robin (ngx_http_upstream_round_robin.c,
 * `ngx_http_upstream_get_peer`) in one O(n) pass, the reference `SmoothWeightedSet` follows: every
 * member gains its weight, the largest current weight wins (the first in order on a tie) and pays
 * back the total. Weights 5,1,1 give a a b a c a a, never five a's in a row. `members` must be
 * non-empty with weights above 0.
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
 * A retry's pick: nginx's step over the members whose address is not in `tried`, as
 * `ngx_http_upstream_get_peer` skips tried peers, so retries go to the untried members by weight and
 * smoothly; undefined when every member was tried. It runs on `retryCurrent` rather than nginx's
 * shared current weight, so the usual sequence goes on as if no retry had happened. A rare path: it scans.
 */
export function smoothWeightedRetryStep<M extends WeightedMember>(members: readonly M[], tried: readonly string[]): M | undefined {
  let best: M | undefined;
  let total = 0;
  for (const member of members) {
    if (tried.includes(member.address)) continue;
    member.retryCurrent += member.weight;
    total += member.weight;
    if (best === undefined || member.retryCurrent > best.retryCurrent) best = member;
  }
  if (best !== undefined) best.retryCurrent -= total;
  return best;
}

/**
 * The member `smoothWeightedStep(members)` would return, touching nothing: the largest current
 * weight plus weight, the first in order on a tie. Current weights must be up to date (flush a set first).
 */
export function smoothWeightedPeek<M extends WeightedMember>(members: readonly M[]): M {
  let best = members[0]!;
  let bestValue = best.current + best.weight;
  for (let index = 1; index < members.length; index += 1) {
    const member = members[index]!;
    const value = member.current + member.weight;
    if (value > bestValue) [best, bestValue] = [member, value];
  }
  return best;
}

/** Current weights are kept on this grid (2^-16) so that, with integer weights, every later step is exact arithmetic. */
const CURRENT_WEIGHT_GRID = 65_536;

/**
 * Shifts current weights so they sum to zero over `members` (within 2^-16 each), as they always do
 * within one set. After a member leaves or returns, its credit or debt is spread evenly instead of
 * bursting traffic onto whoever holds the surplus. The shift is rounded to 2^-16 so that current
 * weights stay exact binary fractions: sums then never round, and a tie stays a tie that goes to the
 * first in order, as with nginx's integers, however the steps are grouped (`SmoothWeightedSet`).
 */
export function rebalanceCurrentWeights(members: readonly WeightedMember[]): void {
  const sum = members.reduce((total, member) => total + member.current, 0);
  const shift = Math.round((sum / members.length) * CURRENT_WEIGHT_GRID) / CURRENT_WEIGHT_GRID;
  if (shift === 0) return;
  for (const member of members) member.current -= shift;
}

/**
 * nginx smooth weighted round-robin. Current weights survive updates, so a new picker continues
 * the sequence; a weight change takes effect from the next pick, spread evenly (the smoothing is
 * what prevents a burst), and members that join start at 0. From `INDEXED_PICK_MIN_MEMBERS`
 * members, picks go through a `SmoothWeightedSet` (O(distinct weights + log n)); below, and for a
 * picker kept past the next update, they step through the members one by one.
 */
export class WeightedRoundRobinBalancer extends BalancerBase<WeightedMember> {
  readonly algorithm: BalancerAlgorithm = 'weighted-round-robin';
  private set: SmoothWeightedSet<WeightedMember> | undefined;

  /** The member's state with its current weight brought up to date. */
  override member(address: string): Readonly<WeightedMember> | undefined {
    this.set?.flush();
    return super.member(address);
  }

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): WeightedMember {
    return new WeightedMember(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly WeightedMember[]): Picker {
    // The old set holds the current weights; they continue in the new one.
    this.set?.flush();
    this.set = undefined;
    rebalanceCurrentWeights(eligible);
    if (eligible.length === 1) {
      const only = eligible[0]!;
      return { pick: (): PickResult => this.attempt(only), peek: () => peekedEndpoint(only) };
    }
    const peek = () => {
      // Flushing folds the set's steps into the members' current weights; the sequence goes on unchanged.
      this.set?.flush();
      return peekedEndpoint(smoothWeightedPeek(eligible));
    };
    if (eligible.length >= INDEXED_PICK_MIN_MEMBERS) {
      const indexed = new SmoothWeightedSet<WeightedMember>();
      eligible.forEach((member, slot) => {
        member.slot = slot;
        indexed.add(member, member.weight);
      });
      this.set = indexed;
    }
    const set = this.set;
    // A retry's pick goes to an untried member: a heavy member that just failed comes up again in
    // most of the next few steps of its smooth sequence. A picker kept past the next update steps
    // through the members, as its set no longer holds them.
    return {
      pick: (context: PickContext): PickResult =>
        this.attempt((context.tried && smoothWeightedRetryStep(eligible, context.tried)) || (set !== undefined && this.set === set ? set.step() : smoothWeightedStep(eligible))),
      peek,
    };
  }
}
