import { randomUntried, type Member } from './balancer-member.ts';
import { hashKeyOf, type HashKeySource } from './hash-key.ts';
import { murmur3 } from './hash-murmur3.ts';
import type { HashRing } from './hash-ring.ts';
import { peekedEndpoint, type PeekResult, type PickContext, type PickResult, type Picker } from './picker.ts';
import { WeightedSampler } from './weighted-sampler.ts';

/** What a consistent-hash picker needs from its balancer. */
export interface HashPickerContext<M extends Member> {
  readonly key: HashKeySource;
  readonly balanceFactor: number | undefined;
  /** Starts an attempt on the chosen member. */
  readonly start: (member: M) => PickResult;
  readonly random: () => number;
  /** Requests in flight across the balancer, for the bounded-load capacity. */
  readonly inFlight: () => number;
}

/**
 * Looks keys up on one immutable ring: the first point clockwise from the key's hash whose owner is
 * routable (and, with bounded loads, below its capacity) wins. `owners` maps ring slots to the
 * routable members; unroutable slots are empty.
 */
export class ConsistentHashPicker<M extends Member> implements Picker {
  private readonly fallback: WeightedSampler;
  private readonly totalWeight: number;

  constructor(
    private readonly ring: HashRing,
    private readonly owners: ReadonlyArray<M | undefined>,
    private readonly members: readonly M[],
    private readonly context: HashPickerContext<M>,
  ) {
    this.fallback = new WeightedSampler(members.map((member) => member.weight));
    this.totalWeight = members.reduce((total, member) => total + member.weight, 0);
  }

  pick(request: PickContext): PickResult {
    return this.context.start(this.choose(request));
  }

  /** Without a hash key, one draw of the weighted fallback, as a pick would make. */
  peek(request: PickContext): PeekResult {
    return peekedEndpoint(this.choose(request));
  }

  private choose(request: PickContext): M {
    const { balanceFactor } = this.context;
    const key = hashKeyOf(this.context.key, request);
    const tried = request.tried;
    if (key === undefined) return (tried && randomUntried(this.members, tried, this.context.random)) || this.members[this.fallback.sample(this.context.random)]!;
    const { ring, owners } = this;
    const size = ring.size;
    const load = balanceFactor === undefined ? 0 : balanceFactor * (this.context.inFlight() + 1);
    let first: M | undefined;
    let keyOwner: M | undefined;
    let index = ring.locate(murmur3(key));
    for (let step = 0; step < size; step += 1) {
      const owner = owners[ring.slots[index]!];
      keyOwner ??= owner;
      // A retry walks on past the instances it tried, to the next one clockwise (as Envoy's ring hash retries do).
      if (owner && (tried === undefined || !tried.includes(owner.address))) {
        if (balanceFactor === undefined) return owner;
        first ??= owner;
        if (owner.inFlight < Math.ceil((load * owner.weight) / this.totalWeight)) return owner;
      }
      index = index + 1 === size ? 0 : index + 1;
    }
    // Reached when a retry tried every member (a repeat, then, on the key's own member, as a first
    // try would pick), or with bounded loads when every member is full, which c > 1 rules out.
    return first ?? keyOwner ?? this.members[0]!;
  }
}
