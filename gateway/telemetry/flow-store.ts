// Where the per-minute, per-hour and per-day totals of flow statistics live: this gateway's memory,
// or a Redis that several gateways add to (flow-store-redis.ts). Stores take whole seconds of
// counts from the once-a-second roll, never from a request.
import { addCounts, emptyCounts, type FlowCounts } from './flow-series.ts';

/** Totals of one series in the current calendar minute, hour and day (UTC). */
export interface FlowTotals {
  readonly minute: FlowCounts;
  readonly hour: FlowCounts;
  readonly day: FlowCounts;
}

/** Calendar buckets the stores keep, with their length in seconds. */
export const FLOW_BUCKETS = [
  ['minute', 60],
  ['hour', 3_600],
  ['day', 86_400],
] as const;

/** Per-minute, per-hour and per-day totals of every series. */
export interface FlowStore {
  /** `memory` (this gateway only) or `redis` (every gateway that shares the Redis). */
  readonly kind: 'memory' | 'redis';
  /** Adds one rolled second of `key`'s counts; buffers, never waits and never throws. */
  add(key: string, second: number, counts: FlowCounts): void;
  /**
   * The totals of every series in the buckets that hold epoch second `second`. Rejects (within the
   * store's timeout) when the store cannot answer; callers then show this gateway's own totals.
   */
  totals(second: number): Promise<Map<string, FlowTotals>>;
  /**
   * Lets go of the totals of `key`, a series that went (its instance left, its service was
   * forgotten), so that names that churn do not grow memory. A store other gateways share keeps
   * them: they may still count that series, and its buckets expire.
   */
  drop(key: string): void;
  /** Sends what is buffered (bounded by the store's timeout) and releases the store's timer. */
  close(): Promise<void>;
}

/** Totals with every count zero. */
export function emptyTotals(): FlowTotals {
  return { minute: emptyCounts(), hour: emptyCounts(), day: emptyCounts() };
}

/**
 * Totals in this process's memory: for each bucket kind, the current bucket and nothing older (a
 * bucket is replaced when time moves past it), so memory grows with the series, not with time.
 */
export class MemoryFlowStore implements FlowStore {
  readonly kind = 'memory';
  private readonly buckets = FLOW_BUCKETS.map(([, seconds]) => ({ seconds, start: -1, series: new Map<string, FlowCounts>() }));

  add(key: string, second: number, counts: FlowCounts): void {
    for (const bucket of this.buckets) {
      const start = second - (second % bucket.seconds);
      // Late seconds of an older bucket (a roll that lagged across a boundary) are not worth a second map.
      if (start < bucket.start) continue;
      if (start > bucket.start) {
        bucket.start = start;
        bucket.series = new Map();
      }
      let into = bucket.series.get(key);
      if (!into) {
        into = emptyCounts();
        bucket.series.set(key, into);
      }
      addCounts(into, counts);
    }
  }

  totals(second: number): Promise<Map<string, FlowTotals>> {
    const result = new Map<string, FlowTotals>();
    FLOW_BUCKETS.forEach(([name, seconds], index) => {
      const bucket = this.buckets[index]!;
      if (bucket.start !== second - (second % seconds)) return;
      for (const [key, counts] of bucket.series) {
        let totals = result.get(key);
        if (!totals) {
          totals = emptyTotals();
          result.set(key, totals);
        }
        addCounts(totals[name], counts);
      }
    });
    return Promise.resolve(result);
  }

  drop(key: string): void {
    for (const bucket of this.buckets) bucket.series.delete(key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
