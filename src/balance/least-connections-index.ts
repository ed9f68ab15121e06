import type { WeightedMember } from './balancer-weighted-round-robin.ts';
import { SmoothWeightedSet } from './smooth-weighted-set.ts';

/** The members with one in-flight-per-weight ratio: the ties of nginx least_conn, shared by smooth weighted round-robin. */
class RatioBucket extends SmoothWeightedSet<WeightedMember> {
  heapIndex = -1;

  constructor(
    readonly ratio: number,
    owner: LeastConnectionsIndex,
  ) {
    super(owner);
  }
}

/**
 * nginx weighted least-connections (`leastConnectionsStep`) in O(log n) per pick: members sit in
 * buckets by in-flight requests per unit of weight, buckets in a min-heap by that ratio, and the
 * members of the lowest bucket (the ties) share by smooth weighted round-robin, each bucket a
 * `SmoothWeightedSet`. A member moves between buckets when a pick or a `done()` changes its
 * in-flight count; a member's current weight moves only while it is tied for the least load, as
 * in nginx. Ratios are compared as doubles (`inFlight / weight`), which for integer weights
 * orders and ties exactly as nginx's cross-multiplication.
 */
export class LeastConnectionsIndex {
  private readonly buckets = new Map<number, RatioBucket>();
  private readonly heap: RatioBucket[] = [];
  /** Empty buckets are forgotten past this many known ones, so a burst of load leaves no lasting garbage. */
  private readonly limit: number;

  /** Indexes `eligible` (non-empty, registry order, weights above 0) by their in-flight counts now. */
  constructor(eligible: readonly WeightedMember[]) {
    this.limit = 4 * eligible.length + 64;
    eligible.forEach((member, slot) => {
      member.slot = slot;
      this.place(member);
    });
  }

  /** The member to pick; the caller counts it in flight and then calls `moved(member)`. */
  pick(): WeightedMember {
    let top = this.heap[0]!;
    // Buckets left empty leave the heap when they reach the top (one is never the answer) but stay
    // known for reuse, since in-flight counts come back to the same ratios all the time.
    while (top.size === 0) {
      this.popTop();
      top.heapIndex = -1;
      if (this.buckets.size > this.limit) this.buckets.delete(top.ratio);
      top = this.heap[0]!;
    }
    return top.step();
  }

  /** Re-files `member` after its in-flight count changed; a member this index does not hold is ignored. */
  moved(member: WeightedMember): void {
    const bucket = member.set;
    if (bucket === undefined || bucket.owner !== this) return;
    bucket.remove(member);
    this.place(member);
  }

  /** Brings every member's current weight up to date, for readers and before a rebuild. */
  flush(): void {
    for (const bucket of this.buckets.values()) bucket.flush();
  }

  private place(member: WeightedMember): void {
    const ratio = member.inFlight / member.weight;
    let bucket = this.buckets.get(ratio);
    if (!bucket) {
      bucket = new RatioBucket(ratio, this);
      this.buckets.set(ratio, bucket);
    }
    if (bucket.heapIndex === -1) this.push(bucket);
    bucket.add(member, member.weight);
  }

  private push(bucket: RatioBucket): void {
    const heap = this.heap;
    let index = heap.length;
    heap.push(bucket);
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (parent.ratio <= bucket.ratio) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = bucket;
    bucket.heapIndex = index;
  }

  private popTop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let index = 0;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heap[child + 1]!.ratio < heap[child]!.ratio) child += 1;
      if (heap[child]!.ratio >= last.ratio) break;
      heap[index] = heap[child]!;
      heap[index]!.heapIndex = index;
      index = child;
    }
    heap[index] = last;
    last.heapIndex = index;
  }
}
