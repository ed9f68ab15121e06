/** Points of one owner slot to merge into a ring; any order. */
export interface RingAddition {
  readonly slot: number;
  readonly points: Uint32Array;
}

/** Slots are packed into the low bits of a float64 sort key next to the 32-bit point. */
const SLOT_LIMIT = 2 ** 21;

/**
 * An immutable hash ring: sorted 32-bit points, each owned by a small integer slot that the caller
 * maps to an owner. Rings are derived from rings, so unchanged owners keep their points (Karger et
 * al., "Consistent Hashing and Random Trees", 1997) and only the keys of owners that come or go
 * move. A change costs one pass over the ring, copying runs of kept points in bulk; only new points
 * are sorted.
 */
export class HashRing {
  /** A ring without points. */
  static readonly EMPTY = new HashRing(new Uint32Array(0), new Int32Array(0));

  private constructor(
    /** Sorted ascending; equal points keep the order they were merged in. */
    readonly points: Uint32Array,
    /** `slots[i]` owns `points[i]`. */
    readonly slots: Int32Array,
  ) {}

  /** Number of points. */
  get size(): number {
    return this.points.length;
  }

  /** Index of the first point at or after `hash`, wrapping to 0 past the last; the ring must not be empty. */
  locate(hash: number): number {
    const points = this.points;
    let low = 0;
    let high = points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (points[middle]! < hash) low = middle + 1;
      else high = middle;
    }
    return low === points.length ? 0 : low;
  }

  /**
   * The ring without the points of slots marked non-zero in `drop` (indexed by slot), with
   * `additions` merged in; on equal points the existing one comes first. Slots must be below 2^21.
   */
  change(drop: Uint8Array | undefined, additions: readonly RingAddition[]): HashRing {
    if (!drop && additions.length === 0) return this;
    const incoming = sortedAdditions(additions);
    const { points: fromPoints, slots: fromSlots } = this;
    let kept = fromPoints.length;
    if (drop) for (let index = 0; index < fromPoints.length; index += 1) if (drop[fromSlots[index]!]) kept -= 1;
    const points = new Uint32Array(kept + incoming.length);
    const slots = new Int32Array(points.length);
    let out = 0;
    /** Copies [from, to) of this ring minus dropped points, in runs. */
    const copyKept = (from: number, to: number) => {
      let runStart = from;
      for (let index = from; index <= to; index += 1) {
        if (index < to && !drop?.[fromSlots[index]!]) continue;
        if (index > runStart) {
          points.set(fromPoints.subarray(runStart, index), out);
          slots.set(fromSlots.subarray(runStart, index), out);
          out += index - runStart;
        }
        runStart = index + 1;
      }
    };
    let mine = 0;
    for (const packed of incoming) {
      const point = Math.floor(packed / SLOT_LIMIT);
      const upTo = upperBound(fromPoints, point, mine);
      copyKept(mine, upTo);
      mine = upTo;
      points[out] = point;
      slots[out] = packed - point * SLOT_LIMIT;
      out += 1;
    }
    copyKept(mine, fromPoints.length);
    return new HashRing(points, slots);
  }
}

/** New points packed with their slot and sorted (a float64 holds a 32-bit point and a 21-bit slot exactly). */
function sortedAdditions(additions: readonly RingAddition[]): Float64Array {
  const packed = new Float64Array(additions.reduce((count, addition) => count + addition.points.length, 0));
  let fill = 0;
  for (const { slot, points } of additions) {
    if (slot < 0 || slot >= SLOT_LIMIT) throw new RangeError(`ring slot ${slot} out of range`);
    for (const point of points) packed[fill++] = point * SLOT_LIMIT + slot;
  }
  return packed.sort();
}

/** Index of the first entry of sorted `points` above `point`, searching from `from`. */
function upperBound(points: Uint32Array, point: number, from: number): number {
  let low = from;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle]! <= point) low = middle + 1;
    else high = middle;
  }
  return low;
}
