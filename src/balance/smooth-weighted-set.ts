/** The bookkeeping a `SmoothWeightedSet` keeps on each entry it holds. */
export interface SmoothWeightedEntry {
  /** nginx's `current_weight`. While the entry is in a set it is up to date only after `flush()`; the set keeps `base`. */
  current: number;
  /** `current` minus the set's steps times the entry's weight: steps move every entry of a set at once without touching them. */
  base: number;
  /** Registry order among the entries of one set: on equal current weights the first in order wins, as in nginx. */
  slot: number;
  heapIndex: number;
  /** The set holding the entry, if any. */
  set: SmoothWeightedSet<SmoothWeightedEntry> | undefined;
  weightClass: unknown;
}

/**
 * Below this many members a balancer steps through them one by one instead: measured on this
 * machine, a scan is as fast as the index up to about 32 members for least-connections and 16 for
 * smooth weighted round-robin, and faster below.
 */
export const INDEXED_PICK_MIN_MEMBERS = 32;

/**
 * After this many steps a set folds its steps into its entries, so that `base` stays small enough
 * (below 2^37 with weights up to 10^6) for current weights on a 2^-16 grid to stay exact.
 */
const RENORMALISE_STEPS = 1 << 12;

/** The entries of one weight: they gain the same amount per step, so their order changes only when one of them is picked. */
class WeightClass<E extends SmoothWeightedEntry> {
  /** A max-heap by current weight, then registry order. */
  readonly items: E[] = [];
  constructor(readonly weight: number) {}
}

/**
 * nginx smooth weighted round-robin (ngx_http_upstream_round_robin.c) over a changing set, in
 * O(weight classes + log n) per step instead of O(n): a step adds each entry's weight to its
 * current weight, picks the largest (the first in registry order on a tie) and takes the total
 * off it. Entries of one weight are kept in a heap, since a step moves them all by the same
 * amount, and a step counter stands for the additions (`current = base + steps × weight`). With
 * integer weights and current weights on a binary grid (`rebalanceCurrentWeights`) all of this is
 * exact arithmetic, so the picks are exactly those of nginx's step; with the fractional weights of
 * a slow-start ramp, a near tie may be broken the other way by rounding.
 */
export class SmoothWeightedSet<E extends SmoothWeightedEntry> {
  private readonly classes: WeightClass<E>[] = [];
  private readonly byWeight = new Map<number, WeightClass<E>>();
  private steps = 0;
  private total = 0;
  /** Entries held. */
  size = 0;

  /** @param owner whoever built the set, so that it can tell its own sets from those of an index it replaced. */
  constructor(readonly owner?: object) {}

  /** Adds `entry` with `weight` (above 0) and its `current` weight as it stands. */
  add(entry: E, weight: number): void {
    let weightClass = this.byWeight.get(weight);
    if (!weightClass) {
      weightClass = new WeightClass<E>(weight);
      this.byWeight.set(weight, weightClass);
      this.classes.push(weightClass);
    }
    entry.base = entry.current - this.steps * weight;
    entry.weightClass = weightClass;
    entry.set = this as unknown as SmoothWeightedSet<SmoothWeightedEntry>;
    const items = weightClass.items;
    entry.heapIndex = items.length;
    items.push(entry);
    siftUp(items, entry.heapIndex);
    this.total += weight;
    this.size += 1;
  }

  /** Takes `entry` (held by this set) out, with its `current` weight brought up to date. */
  remove(entry: E): void {
    const weightClass = entry.weightClass as WeightClass<E>;
    entry.current = entry.base + this.steps * weightClass.weight;
    const items = weightClass.items;
    const last = items.pop()!;
    if (last !== entry) {
      const index = entry.heapIndex;
      items[index] = last;
      last.heapIndex = index;
      siftDown(items, index);
      siftUp(items, last.heapIndex);
    }
    // An emptied class stays (steps skip it): members move in and out of least-connections buckets on every pick.
    entry.set = undefined;
    entry.weightClass = undefined;
    this.size -= 1;
    this.total = this.size === 0 ? 0 : this.total - weightClass.weight;
    if (this.size === 0) this.steps = 0;
  }

  /** One nginx step over the entries (at least one); returns the winner, which stays in the set. */
  step(): E {
    if (this.steps >= RENORMALISE_STEPS) this.flush();
    const steps = ++this.steps;
    const classes = this.classes;
    let bestClass: WeightClass<E> | undefined;
    let best: E | undefined;
    let bestValue = 0;
    for (let index = 0; index < classes.length; index += 1) {
      const weightClass = classes[index]!;
      const top = weightClass.items[0];
      if (top === undefined) continue;
      const value = top.base + steps * weightClass.weight;
      if (best === undefined || value > bestValue || (value === bestValue && top.slot < best.slot)) {
        bestClass = weightClass;
        best = top;
        bestValue = value;
      }
    }
    best!.base -= this.total;
    siftDown(bestClass!.items, 0);
    return best!;
  }

  /** Brings every entry's `current` up to date (for readers and for a rebuild); the sequence goes on unchanged. */
  flush(): void {
    const steps = this.steps;
    if (steps === 0) return;
    for (const weightClass of this.classes) {
      for (const entry of weightClass.items) {
        entry.current = entry.base + steps * weightClass.weight;
        entry.base = entry.current;
      }
    }
    this.steps = 0;
  }
}

/** True when `a` goes before `b`: a larger current weight, or the same and earlier in registry order. */
function before(a: SmoothWeightedEntry, b: SmoothWeightedEntry): boolean {
  return a.base > b.base || (a.base === b.base && a.slot < b.slot);
}

function siftUp<E extends SmoothWeightedEntry>(items: E[], start: number): void {
  const entry = items[start]!;
  let index = start;
  while (index > 0) {
    const parentIndex = (index - 1) >> 1;
    const parent = items[parentIndex]!;
    if (!before(entry, parent)) break;
    items[index] = parent;
    parent.heapIndex = index;
    index = parentIndex;
  }
  items[index] = entry;
  entry.heapIndex = index;
}

function siftDown<E extends SmoothWeightedEntry>(items: E[], start: number): void {
  const length = items.length;
  const entry = items[start]!;
  let index = start;
  for (;;) {
    let child = 2 * index + 1;
    if (child >= length) break;
    if (child + 1 < length && before(items[child + 1]!, items[child]!)) child += 1;
    const candidate = items[child]!;
    if (!before(candidate, entry)) break;
    items[index] = candidate;
    candidate.heapIndex = index;
    index = child;
  }
  items[index] = entry;
  entry.heapIndex = index;
}
