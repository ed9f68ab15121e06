import type { BalancerAlgorithm, BalancerEndpoint, BalancerOptions } from './balancer.ts';
import { BalancerBase } from './balancer-base.ts';
import type { HostLoad } from './host-load.ts';
import { Member } from './balancer-member.ts';
import { ConsistentHashPicker } from './consistent-hash-picker.ts';
import type { HashKeySource } from './hash-key.ts';
import { murmur3 } from './hash-murmur3.ts';
import { HashRing } from './hash-ring.ts';
import type { Picker } from './picker.ts';

/** Ring points per unit of weight, as ketama (libmemcached) places 160 per server. */
export const DEFAULT_POINTS_PER_WEIGHT = 160;
/** Ring size above which points per weight are halved, below one when weights are large (8 MiB of ring); Envoy caps its ring at 8M points. */
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

/** A member with its place on the ring. */
export class HashMember extends Member {
  /** Index into the balancer's slot table while on the ring, -1 otherwise. */
  slot = -1;
  /** Weight, scale and point count the ring points were made for. */
  ringWeight = 0;
  ringScale = 0;
  ringPoints = 0;
}

/**
 * Consistent hashing on a ring with virtual nodes, weight-proportional point counts. A member's
 * points depend only on its address, weight and the points-per-weight scale, so adding an 11th
 * member to 10 moves only the keys the newcomer takes, and removing one moves only its keys. The
 * scale changes (halving or doubling, remapping everything once) only when the ring would outgrow
 * `maxRingPoints`, or when doubling would leave it at most half full; the gap avoids flapping.
 * The ring holds every member with weight above 0; pickers skip the unroutable ones, which maps
 * keys exactly as a ring without them would.
 */
export class ConsistentHashBalancer extends BalancerBase<HashMember> {
  readonly algorithm: BalancerAlgorithm = 'consistent-hash';

  private readonly key: HashKeySource;
  private readonly pointsPerWeight: number;
  private readonly maxRingPoints: number;
  private readonly balanceFactor: number | undefined;
  private scale: number;
  private ring = HashRing.EMPTY;
  /** Slot → member on the ring; freed slots are reused. */
  private readonly slots: Array<HashMember | undefined> = [];
  private readonly freeSlots: number[] = [];

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

  protected createMember(endpoint: BalancerEndpoint, load: HostLoad): HashMember {
    return new HashMember(endpoint.address, endpoint.instance, endpoint.routable, load);
  }

  protected buildPicker(eligible: readonly HashMember[], all: readonly HashMember[]): Picker {
    const weighted = all.filter((member) => member.weight > 0);
    this.rescale(weighted.reduce((total, member) => total + member.weight, 0));
    const drop = this.takeOffStale(new Set(weighted));
    this.ring = this.ring.change(drop, weighted.filter((member) => member.slot === -1).map((member) => this.place(member)));

    const owners: Array<HashMember | undefined> = new Array<HashMember | undefined>(this.slots.length).fill(undefined);
    let eligiblePoints = 0;
    for (const member of eligible) {
      owners[member.slot] = member;
      eligiblePoints += member.ringPoints;
    }
    let ring = this.ring;
    // Pickers walk past unroutable points; when most are unroutable, a ring without them keeps walks short.
    if (eligiblePoints * 2 < ring.size) ring = ring.change(Uint8Array.from(owners, (owner) => (owner ? 0 : 1)), []);
    return new ConsistentHashPicker(ring, owners, eligible, {
      key: this.key,
      balanceFactor: this.balanceFactor,
      start: (member) => this.attempt(member),
      random: this.random,
      inFlight: () => this.totalInFlight,
    });
  }

  /** Frees the slots of every member that left, changed weight, or was placed at another scale; returns them marked for dropping. */
  private takeOffStale(current: ReadonlySet<HashMember>): Uint8Array | undefined {
    const drop = new Uint8Array(this.slots.length);
    let dropping = false;
    this.slots.forEach((member, slot) => {
      if (!member || (current.has(member) && member.ringWeight === member.weight && member.ringScale === this.scale)) return;
      drop[slot] = 1;
      dropping = true;
      member.slot = -1;
      this.slots[slot] = undefined;
      this.freeSlots.push(slot);
    });
    return dropping ? drop : undefined;
  }

  private place(member: HashMember): { slot: number; points: Uint32Array } {
    const slot = this.freeSlots.pop() ?? this.slots.length;
    this.slots[slot] = member;
    const points = new Uint32Array(Math.max(1, Math.round(member.weight * this.scale)));
    for (let index = 0; index < points.length; index += 1) points[index] = murmur3(`${member.address}-${index}`);
    member.slot = slot;
    member.ringWeight = member.weight;
    member.ringScale = this.scale;
    member.ringPoints = points.length;
    return { slot, points };
  }

  private rescale(totalWeight: number): void {
    // Below one point per weight the scale keeps halving (exact binary fractions): registry weights
    // go up to 10^6, and 20 such members made a ring of 20M points that blocked the process for 16 s.
    while (totalWeight * this.scale > this.maxRingPoints) this.scale = this.scale > 1 ? Math.max(1, Math.floor(this.scale / 2)) : this.scale / 2;
    while (this.scale < this.pointsPerWeight && totalWeight * this.scale * 4 <= this.maxRingPoints) this.scale = Math.min(this.pointsPerWeight, this.scale * 2);
  }
}
