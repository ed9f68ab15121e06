/**
 * Counters over a rolling time window split into buckets (Hystrix's rolling number): each bucket
 * covers `windowMs / buckets`, a bucket older than the window is cleared lazily when time reaches
 * its slot again, and the totals are kept as running sums. No timer and no allocation after
 * construction: recording is an index computation and two additions.
 */
export class RollingWindow {
  private readonly bucketMs: number;
  /** `counters` values per bucket, bucket-major. */
  private readonly values: Float64Array;
  private readonly sums: Float64Array;
  private latest = -1;

  constructor(
    windowMs: number,
    private readonly buckets: number,
    private readonly counters: number,
  ) {
    this.bucketMs = Math.max(1, windowMs / buckets);
    this.values = new Float64Array(buckets * counters);
    this.sums = new Float64Array(counters);
  }

  /** Adds `amount` to counter `index` at time `nowMs`; returns the counter's total over the window then. */
  add(nowMs: number, index: number, amount = 1): number {
    const slot = this.advance(nowMs);
    this.values[slot * this.counters + index]! += amount;
    return (this.sums[index]! += amount);
  }

  /** Counter `index` summed over the window that ends at `nowMs`. */
  total(nowMs: number, index: number): number {
    this.advance(nowMs);
    return this.sums[index]!;
  }

  /** Forgets everything (a breaker that closes starts a fresh window). */
  reset(): void {
    this.values.fill(0);
    this.sums.fill(0);
    this.latest = -1;
  }

  /** Clears the slots that fell out of the window and returns the slot of the current bucket. */
  private advance(nowMs: number): number {
    const epoch = Math.floor(nowMs / this.bucketMs);
    // A time at or before the latest bucket (the clock is monotonic; callers may read it early) counts there.
    if (epoch <= this.latest) return this.latest % this.buckets;
    // Each slot between the last bucket and now is reused for a newer bucket: drop its old counts.
    const steps = this.latest < 0 ? this.buckets : Math.min(this.buckets, epoch - this.latest);
    // `+ buckets`: early in a process the clock is below one window, and `%` keeps the sign.
    for (let step = 0; step < steps; step += 1) this.clear((epoch - step + this.buckets) % this.buckets);
    this.latest = epoch;
    return epoch % this.buckets;
  }

  private clear(slot: number): void {
    const base = slot * this.counters;
    for (let index = 0; index < this.counters; index += 1) {
      this.sums[index]! -= this.values[base + index]!;
      this.values[base + index] = 0;
    }
  }
}
