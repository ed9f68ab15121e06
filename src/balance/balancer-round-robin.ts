import type { BalancerAlgorithm, BalancerEndpoint, BalancerOptions } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { Member } from './balancer-member.ts';
import { peekedEndpoint, type PickResult, type Picker } from './picker.ts';

/**
 * Plain round-robin as grpc-js does it: every member that may take traffic once per cycle, weights
 * ignored except 0. The cursor starts at a random position (so gateways started together do not
 * all hit the same member first) and carries over from one picker to the next.
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
      pick: (): PickResult => {
        // Kept below the member count so the counter never grows without bound.
        const index = cursor.next % size;
        cursor.next = index + 1;
        return this.attempt(eligible[index]!);
      },
      peek: () => peekedEndpoint(eligible[cursor.next % size]!),
    };
  }
}
