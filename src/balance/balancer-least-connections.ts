import type { BalancerAlgorithm, BalancerEndpoint } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { peekedEndpoint, type PickContext, type PickResult, type Picker } from './picker.ts';
import { WeightedMember } from './balancer-weighted-round-robin.ts';
import { leastLoadedUntried } from './balancer-member.ts';
import { LeastConnectionsIndex } from './least-connections-index.ts';
import { INDEXED_PICK_MIN_MEMBERS } from './smooth-weighted-set.ts';

/**
 * One pick of nginx's weighted least-connections (ngx_http_upstream_least_conn_module.c): the member
 * with the fewest in-flight requests per unit of weight wins; members tied with it share by smooth
 * weighted round-robin, so an idle service still gets the weighted distribution. O(n) per pick:
 * the reference that `LeastConnectionsIndex` follows in O(log n).
 * `members` must be non-empty with weights above 0.
 */
export function leastConnectionsStep(members: readonly WeightedMember[]): WeightedMember {
  let best = members[0]!;
  let bestIndex = 0;
  let tied = false;
  for (let index = 1; index < members.length; index += 1) {
    const member = members[index]!;
    // Cross-multiplied so that no division rounds: a.inFlight / a.weight < b.inFlight / b.weight.
    const left = member.inFlight * best.weight;
    const right = best.inFlight * member.weight;
    if (left < right) {
      best = member;
      bestIndex = index;
      tied = false;
    } else if (left === right) {
      tied = true;
    }
  }
  if (!tied) return best;
  // Only members after the first best can tie with it: a smaller one would have replaced it.
  let chosen = best;
  let total = 0;
  for (let index = bestIndex; index < members.length; index += 1) {
    const member = members[index]!;
    if (member.inFlight * best.weight !== best.inFlight * member.weight) continue;
    member.current += member.weight;
    total += member.weight;
    if (member.current > chosen.current) chosen = member;
  }
  chosen.current -= total;
  return chosen;
}

/**
 * The member `leastConnectionsStep(members)` would return, touching nothing. Tie-break weights must
 * be up to date (flush an index first).
 */
export function leastConnectionsPeek(members: readonly WeightedMember[]): WeightedMember {
  let best = members[0]!;
  for (const member of members) if (member.inFlight * best.weight < best.inFlight * member.weight) best = member;
  let chosen: WeightedMember | undefined;
  let chosenValue = 0;
  for (const member of members) {
    if (member.inFlight * best.weight !== best.inFlight * member.weight) continue;
    const value = member.current + member.weight;
    if (chosen === undefined || value > chosenValue) [chosen, chosenValue] = [member, value];
  }
  return chosen!;
}

/**
 * Weighted least-connections after nginx; in-flight counts and tie-break weights survive updates.
 * From `INDEXED_PICK_MIN_MEMBERS` members, picks go through a `LeastConnectionsIndex`; below, and
 * for a picker kept past the next update, they scan the members.
 */
export class LeastConnectionsBalancer extends BalancerBase<WeightedMember> {
  readonly algorithm: BalancerAlgorithm = 'least-connections';
  private index: LeastConnectionsIndex | undefined;

  /** The member's state with its tie-break weight brought up to date. */
  override member(address: string): Readonly<WeightedMember> | undefined {
    this.index?.flush();
    return super.member(address);
  }

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): WeightedMember {
    return new WeightedMember(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly WeightedMember[]): Picker {
    // The old index holds the tie-break weights; they continue in the new one.
    this.index?.flush();
    this.index = undefined;
    const peek = () => {
      // Flushing brings the tie-break weights up to date; the sequence goes on unchanged.
      this.index?.flush();
      return peekedEndpoint(leastConnectionsPeek(eligible));
    };
    if (eligible.length < INDEXED_PICK_MIN_MEMBERS) {
      return { pick: (context: PickContext): PickResult => this.attempt((context.tried && leastLoadedUntried(eligible, context.tried)) || leastConnectionsStep(eligible)), peek };
    }
    const index = new LeastConnectionsIndex(eligible);
    this.index = index;
    return {
      pick: (context: PickContext): PickResult => {
        const member = (context.tried && leastLoadedUntried(eligible, context.tried)) || (this.index === index ? index.pick() : leastConnectionsStep(eligible));
        const attempt = this.attempt(member);
        this.index?.moved(member);
        return attempt;
      },
      peek,
    };
  }

  // A release here, or a subset's pick or release (or the service's, for a subset) on the host, moved the member's ratio.
  protected override loadMoved(member: WeightedMember): void {
    this.index?.moved(member);
  }
}

