/** Points of one owner to merge into a ring; any order. */
export interface RingAddition<T> {
  readonly owner: T;
  readonly points: Uint32Array;
}

/** Owners per merge are indexed in the low bits of a float64 sort key: 2^21 owners at once. */
const OWNER_BITS = 2 ** 21;

/**
 * An immutable hash ring: sorted 32-bit points, each owned by one owner. Rings are derived from
 * rings, so unchanged owners keep their points (Karger et al., "Consistent Hashing and Random
 * Trees", 1997) and only the keys of owners that come or go move. Merges and filters are linear in
 * the ring size; only the new points are sorted.
 */
export class HashRing<T> {
  /** A ring without points. */
  static empty<T>(): HashRing<T> {
    return new HashRing<T>(new Uint32Array(0), []);
  }

  private constructor(
    /** Sorted ascending; equal points keep the order they were merged in. */
    readonly points: Uint32Array,
    /** `owners[i]` owns `points[i]`. */
    readonly owners: readonly T[],
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

  /** The ring with only the points of owners `keep` accepts. */
  filter(keep: (owner: T) => boolean): HashRing<T> {
    const points = new Uint32Array(this.points.length);
    const owners: T[] = [];
    for (let index = 0; index < this.points.length; index += 1) {
      const owner = this.owners[index]!;
      if (!keep(owner)) continue;
      points[owners.length] = this.points[index]!;
      owners.push(owner);
    }
    return new HashRing(points.slice(0, owners.length), owners);
  }

  /** The ring with `additions` merged in; on equal points the existing one comes first. */
  with(additions: readonly RingAddition<T>[]): HashRing<T> {
    if (additions.length === 0) return this;
    if (additions.length > OWNER_BITS) throw new RangeError(`cannot merge more than ${OWNER_BITS} owners at once`);
    const incoming = new Float64Array(additions.reduce((count, addition) => count + addition.points.length, 0));
    let fill = 0;
    additions.forEach((addition, ownerIndex) => {
      for (const point of addition.points) incoming[fill++] = point * OWNER_BITS + ownerIndex;
    });
    incoming.sort();
    const size = this.points.length + incoming.length;
    const points = new Uint32Array(size);
    const owners: T[] = new Array<T>(size);
    let mine = 0;
    let theirs = 0;
    for (let out = 0; out < size; out += 1) {
      const next = theirs < incoming.length ? incoming[theirs]! : Number.POSITIVE_INFINITY;
      const nextPoint = Math.floor(next / OWNER_BITS);
      if (mine < this.points.length && this.points[mine]! <= nextPoint) {
        points[out] = this.points[mine]!;
        owners[out] = this.owners[mine]!;
        mine += 1;
      } else {
        points[out] = nextPoint;
        owners[out] = additions[next - nextPoint * OWNER_BITS]!.owner;
        theirs += 1;
      }
    }
    return new HashRing(points, owners);
  }
}
