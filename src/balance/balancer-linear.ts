// The O(n) pickers that SmoothWeightedSet and LeastConnectionsIndex replaced, kept as the reference
// the balancer tests compare against and that bench/balancers measures beside them; not exported
// from index.ts and not used by the gateway.
import type { BalancerAlgorithm, BalancerEndpoint } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { leastConnectionsPeek, leastConnectionsStep } from './balancer-least-connections.ts';
import { rebalanceCurrentWeights, smoothWeightedPeek, smoothWeightedStep, WeightedMember } from './balancer-weighted-round-robin.ts';
import { peekedEndpoint, type PickResult, type Picker } from './picker.ts';

/** nginx smooth weighted round-robin, one pass over the members per pick. */
export class LinearWeightedRoundRobinBalancer extends BalancerBase<WeightedMember> {
  readonly algorithm: BalancerAlgorithm = 'weighted-round-robin';

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): WeightedMember {
    return new WeightedMember(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly WeightedMember[]): Picker {
    rebalanceCurrentWeights(eligible);
    if (eligible.length === 1) {
      const only = eligible[0]!;
      return { pick: (): PickResult => this.attempt(only), peek: () => peekedEndpoint(only) };
    }
    return { pick: (): PickResult => this.attempt(smoothWeightedStep(eligible)), peek: () => peekedEndpoint(smoothWeightedPeek(eligible)) };
  }
}

/** nginx weighted least-connections, one or two passes over the members per pick. */
export class LinearLeastConnectionsBalancer extends BalancerBase<WeightedMember> {
  readonly algorithm: BalancerAlgorithm = 'least-connections';

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): WeightedMember {
    return new WeightedMember(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly WeightedMember[]): Picker {
    return { pick: (): PickResult => this.attempt(leastConnectionsStep(eligible)), peek: () => peekedEndpoint(leastConnectionsPeek(eligible)) };
  }
}
