import type { BalancerAlgorithm, BalancerEndpoint, BalancerOptions } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { Member } from './balancer-member.ts';
import { peekedEndpoint, type PickContext, type PickResult, type Picker } from './picker.ts';

/**
 * Plain round-robin as grpc-js does it: every member that may take traffic once per cycle, weights
 * ignored except 0. The cursor starts at a random position (so gateways started together do not
 * all hit the same member first) and carries over from one picker to the next. A retry's pick
 * (`PickContext.tried`) takes the first member at or after the cursor that the request has not
 * tried, as nginx's round-robin skips tried peers, and the cursor moves past it.
 */
export class RoundRobinBalancer extends BalancerBase<Member> {
  readonly algorithm: BalancerAlgorithm = 'round-robin';

  private readonly cursor: { next: number };

  constructor(options: BalancerOptions = {}) {
    super(options);
    this.cursor = { next: Math.floor(this.random() * 0x7fffffff) };
  }

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): Member {
    return new Member(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly Member[]): Picker {
    const cursor = this.cursor;
    const size = eligible.length;
    return {
      pick: (context: PickContext): PickResult => {
        // Kept below the member count so the counter never grows without bound.
        let index = cursor.next % size;
        if (context.tried) index = untriedIndexFrom(eligible, index, context.tried);
        cursor.next = index + 1;
        return this.attempt(eligible[index]!);
      },
      peek: () => peekedEndpoint(eligible[cursor.next % size]!),
    };
  }
}

/**
 * The index of the first member at or after `start` (wrapping around) whose address is not in
 * `tried`, or `start` when every member was tried. A retry's rare path: it scans. Moving the cursor
 * past the member found gives that member's turn to the retry, so the next usual pick does not land
 * on it again; the tried members skipped lose their turn of this cycle, having just failed this
 * request (leaving the cursor where it was would give the member found two picks in a row instead).
 */
function untriedIndexFrom(members: readonly Member[], start: number, tried: readonly string[]): number {
  for (let step = 0; step < members.length; step += 1) {
    const index = (start + step) % members.length;
    if (!tried.includes(members[index]!.address)) return index;
  }
  return start;
}
