import type { BalancerAlgorithm, BalancerEndpoint, BalancerOptions } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import { Member } from './balancer-member.ts';
import { hashKeyOf, type HashKeySource } from './hash-key.ts';
import { murmur3 } from './hash-murmur3.ts';
import { HashRing } from './hash-ring.ts';
import type { PickContext, PickResult, Picker } from './picker.ts';
import { WeightedSampler } from './weighted-sampler.ts';

/** Ring points per unit of weight, as ketama (libmemcached) places 160 per server. */
export const DEFAULT_POINTS_PER_WEIGHT = 160;
/** Ring size above which points per weight are halved (8 MiB of ring); Envoy caps its ring at 8M points. */
export const DEFAULT_MAX_RING_POINTS = 2 ** 20;

/** Options of the consistent-hash balancer. */
export interface ConsistentHashOptions extends BalancerOptions {
  /** Where the key comes from; a request without one gets a weighted random member, as in Envoy. */
  readonly key: HashKeySource;
  /** Points per unit of weight: more points spread load more evenly (relative spread ≈ 1/√points) and cost memory. */
  readonly pointsPerWeight?: number;
  readonly maxRingPoints?: number;
  /**
   * Bounded loads factor c > 1 (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
   * Bounded Loads", 2018; HAProxy's `hash-balance-factor`): no member takes more than
   * ⌈c × (in flight + 1) × its weight share⌉ requests; the walk continues clockwise past full ones.
   */
  readonly balanceFactor?: number;
}

/** A member with the weight and scale its ring points were made for (0: not on the ring). */
export class HashMember extends Member {
  ringWeight = 0;
  ringScale = 0;
}

/**
 * Consistent hashing on a ring with virtual nodes, weight-proportional point counts. A member's
 * points depend only on its address, weight and the points-per-weight scale, so adding an 11th
 * member to 10 moves only the keys the newcomer takes, and removing one moves only its keys. The
 * scale changes (halving or doubling, remapping everything once) only when the ring would outgrow
 * `maxRingPoints`, or when doubling would leave it at most half full; the gap avoids flapping.
 */
export class ConsistentHashBalancer extends BalancerBase<HashMember> {
  readonly algorithm: BalancerAlgorithm = 'consistent-hash';

  private readonly key: HashKeySource;
  private readonly pointsPerWeight: number;
  private readonly maxRingPoints: number;
  private readonly balanceFactor: number | undefined;
  private scale: number;
  private ring = HashRing.empty<HashMember>();
  private readonly onRing = new Set<HashMember>();

  constructor(options: ConsistentHashOptions) {
    super(options);
    this.key = options.key;
    this.pointsPerWeight = Math.max(1, Math.round(options.pointsPerWeight ?? DEFAULT_POINTS_PER_WEIGHT));
    this.maxRingPoints = options.maxRingPoints ?? DEFAULT_MAX_RING_POINTS;
    this.balanceFactor = options.balanceFactor !== undefined && options.balanceFactor > 1 ? options.balanceFactor : undefined;
    this.scale = this.pointsPerWeight;
  }

  /** Points on the ring, over every member with weight above 0 (routable or not). */
  get ringPoints(): number {
    return this.ring.size;
  }

  protected createMember(endpoint: BalancerEndpoint): HashMember {
    return new HashMember(endpoint.address, endpoint.instance, endpoint.routable);
  }

  protected buildPicker(eligible: readonly HashMember[], all: readonly HashMember[]): Picker {
    const weighted = all.filter((member) => member.weight > 0);
    this.rescale(weighted.reduce((total, member) => total + member.weight, 0));
    const current = new Set(weighted);
    const stale = (member: HashMember) => !current.has(member) || member.ringWeight !== member.weight || member.ringScale !== this.scale;
    const leaving = new Set([...this.onRing].filter(stale));
    if (leaving.size > 0) this.ring = this.ring.filter((owner) => !leaving.has(owner));
    for (const member of leaving) {
      member.ringWeight = 0;
      this.onRing.delete(member);
    }
    const joining = weighted.filter((member) => !this.onRing.has(member));
    this.ring = this.ring.with(joining.map((member) => ({ owner: member, points: this.pointsOf(member) })));
    for (const member of joining) {
      member.ringWeight = member.weight;
      member.ringScale = this.scale;
      this.onRing.add(member);
    }
    const routable = new Set(eligible);
    const ring = eligible.length === weighted.length ? this.ring : this.ring.filter((owner) => routable.has(owner));
    return new ConsistentHashPicker(ring, eligible, {
      key: this.key,
      balanceFactor: this.balanceFactor,
      start: (member) => this.attempt(member),
      random: this.random,
      inFlight: () => this.totalInFlight,
    });
  }

  private rescale(totalWeight: number): void {
    while (this.scale > 1 && totalWeight * this.scale > this.maxRingPoints) this.scale = Math.max(1, Math.floor(this.scale / 2));
    while (this.scale < this.pointsPerWeight && totalWeight * this.scale * 4 <= this.maxRingPoints) this.scale = Math.min(this.pointsPerWeight, this.scale * 2);
  }

  private pointsOf(member: HashMember): Uint32Array {
    const points = new Uint32Array(Math.max(1, Math.round(member.weight * this.scale)));
    for (let index = 0; index < points.length; index += 1) points[index] = murmur3(`${member.address}-${index}`);
    return points;
  }
}

interface HashPickerContext {
  readonly key: HashKeySource;
  readonly balanceFactor: number | undefined;
  readonly start: (member: HashMember) => PickResult;
  readonly random: () => number;
  /** Requests in flight across the balancer, for the bounded-load capacity. */
  readonly inFlight: () => number;
}

/** Looks keys up on one immutable ring. */
class ConsistentHashPicker implements Picker {
  private readonly fallback: WeightedSampler;
  private readonly totalWeight: number;

  constructor(
    private readonly ring: HashRing<HashMember>,
    private readonly members: readonly HashMember[],
    private readonly context: HashPickerContext,
  ) {
    this.fallback = new WeightedSampler(members.map((member) => member.weight));
    this.totalWeight = members.reduce((total, member) => total + member.weight, 0);
  }

  pick(request: PickContext): PickResult {
    const { start, balanceFactor } = this.context;
    const key = hashKeyOf(this.context.key, request);
    if (key === undefined) return start(this.members[this.fallback.sample(this.context.random)]!);
    const first = this.ring.locate(murmur3(key));
    if (balanceFactor === undefined) return start(this.ring.owners[first]!);
    return start(this.boundedOwner(first, balanceFactor));
  }

  /** Walks clockwise from `start` to the first member below its capacity. */
  private boundedOwner(start: number, factor: number): HashMember {
    const inFlight = this.context.inFlight();
    const size = this.ring.size;
    for (let step = 0, index = start; step < size; step += 1, index = index + 1 === size ? 0 : index + 1) {
      const owner = this.ring.owners[index]!;
      const capacity = Math.ceil((factor * (inFlight + 1) * owner.weight) / this.totalWeight);
      if (owner.inFlight < capacity) return owner;
    }
    // Unreachable while factor > 1 (capacities then sum above the load); kept for safety.
    return this.ring.owners[start]!;
  }
}
