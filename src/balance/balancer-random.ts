import type { BalancerAlgorithm, BalancerEndpoint } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { Member, randomUntried } from './balancer-member.ts';
import { peekedEndpoint, type PickContext, type PickResult, type Picker } from './picker.ts';
import { WeightedSampler } from './weighted-sampler.ts';

/** Weighted random: each pick draws a member with probability weight / total weight, in O(1). */
export class RandomBalancer extends BalancerBase<Member> {
  readonly algorithm: BalancerAlgorithm = 'random';

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): Member {
    return new Member(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly Member[]): Picker {
    const sampler = new WeightedSampler(eligible.map((member) => member.weight));
    return {
      // A retry draws among the members the request has not tried, by their weights.
      pick: (context: PickContext): PickResult => this.attempt((context.tried && randomUntried(eligible, context.tried, this.random)) || eligible[sampler.sample(this.random)]!),
      // A draw of the same distribution: a random pick has no "next" to foretell.
      peek: () => peekedEndpoint(eligible[sampler.sample(this.random)]!),
    };
  }
}
