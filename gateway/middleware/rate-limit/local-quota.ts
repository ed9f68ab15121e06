import type { RateLimitQuota } from '../../config/types.ts';
import type { LimitDecision, Limiter, QuotaState } from './limiter.ts';
import { RATE_LIMIT_MAX_KEYS } from './token-bucket.ts';

/** Window lengths of a quota. */
export const QUOTA_WINDOW_MS = { hour: 3_600_000, day: 86_400_000 } as const;

/**
 * A limiter with an hourly or daily quota per key in front of another: a key whose count for the
 * current clock window (UTC) reached `limit` is refused as `quota` without touching its bucket,
 * and a request its bucket lets through is counted. Counters of past windows are dropped when the
 * window turns; at most `maxKeys` keys are counted per window (past it the oldest key is forgotten
 * and starts over: a bound on memory, stated in the docs).
 */
export class QuotaLimiter implements Limiter {
  private window = -1;
  private readonly counts = new Map<string, number>();
  private readonly windowMs: number;

  constructor(
    private readonly inner: Limiter,
    private readonly quota: RateLimitQuota,
    private readonly wallClock: () => number = Date.now,
    private readonly maxKeys = RATE_LIMIT_MAX_KEYS,
  ) {
    this.windowMs = QUOTA_WINDOW_MS[quota.per];
  }

  take(key: string): LimitDecision | Promise<LimitDecision> {
    const now = this.wallClock();
    const window = this.turnTo(now);
    const resetMs = (window + 1) * this.windowMs - now;
    const used = this.counts.get(key) ?? 0;
    if (used >= this.quota.limit) {
      return { allowed: false, refusedBy: 'quota', limit: this.quota.limit, remaining: 0, resetMs, retryAfterMs: resetMs, delayMs: 0, quota: this.state(used, resetMs) };
    }
    const decision = this.inner.take(key);
    // A local bucket answers at once: counting in the same tick keeps the count exact under concurrency.
    return decision instanceof Promise ? decision.then((settled) => this.count(key, settled, resetMs)) : this.count(key, decision, resetMs);
  }

  seed(key: string, level: number): void {
    this.inner.seed?.(key, level);
  }

  /**
   * Sets `key`'s count in the current window so that the share of `reported` (a shared quota's state
   * after a request) left is left here, rounded down (as a gateway's share of the limit is): a key
   * over its quota in Redis is over it here too. Only a count of the window counted here is taken:
   * an answer from just before the window turned (or from a Redis clock apart from this one by less
   * than half a window) that counted the one before, or the next, is ignored. A key with its whole
   * quota left and no count is not stored.
   */
  seedQuota(key: string, reported: QuotaState): void {
    const now = this.wallClock();
    // Redis' window ends at now + resetMs on its clock: the window that ends nearest to that is the one it counted.
    if (Math.round((now + reported.resetMs) / this.windowMs) - 1 !== this.turnTo(now)) return;
    const used = this.quota.limit - shareLeft(reported.remaining, reported.limit, this.quota.limit);
    if (used === 0 && !this.counts.has(key)) return;
    this.store(key, used);
  }

  /** The window of `now`, its counters dropped first when it is a new one. */
  private turnTo(now: number): number {
    const window = Math.floor(now / this.windowMs);
    if (window !== this.window) {
      this.window = window;
      this.counts.clear();
    }
    return window;
  }

  private count(key: string, decision: LimitDecision, resetMs: number): LimitDecision {
    const used = this.counts.get(key) ?? 0;
    if (!decision.allowed) return { ...decision, quota: this.state(used, resetMs) };
    this.store(key, used + 1);
    return { ...decision, quota: this.state(used + 1, resetMs) };
  }

  /** Sets `key`'s count, forgetting the oldest key first when a new one would pass `maxKeys`. */
  private store(key: string, used: number): void {
    if (!this.counts.has(key) && this.counts.size >= this.maxKeys) {
      const oldest = this.counts.keys().next().value;
      if (oldest !== undefined) this.counts.delete(oldest);
    }
    this.counts.set(key, used);
  }

  private state(count: number, resetMs: number): QuotaState {
    return { limit: this.quota.limit, remaining: Math.max(0, this.quota.limit - count), resetMs, windowMs: this.windowMs };
  }
}

/**
 * floor(`remaining` / `limit` × `share`), exactly: in whole numbers (a quota may be any safe integer,
 * so the product may pass 2^53 and is then taken in BigInt), `remaining` clamped to 0..`limit`.
 */
export function shareLeft(remaining: number, limit: number, share: number): number {
  const left = Math.min(limit, Math.max(0, remaining));
  const product = left * share;
  if (product <= Number.MAX_SAFE_INTEGER) return (product - (product % limit)) / limit;
  return Number((BigInt(left) * BigInt(share)) / BigInt(limit));
}
