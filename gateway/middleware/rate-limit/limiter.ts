/** The state of a key's quota after a request. */
export interface QuotaState {
  readonly limit: number;
  /** Requests left in the current window. */
  readonly remaining: number;
  /** Milliseconds until the window (clock hour or day, UTC) ends and the count starts over. */
  readonly resetMs: number;
  /** Window length in milliseconds (3 600 000 or 86 400 000). */
  readonly windowMs: number;
}

/** What a limiter decided for one request. */
export interface LimitDecision {
  readonly allowed: boolean;
  /**
   * What refused it: the token bucket (`rate`), the hourly/daily count (`quota`), or no count at all
   * (`unavailable`: a `policy: redis` limit with `onRedisError: deny` whose Redis is away, so its
   * `limit` and `remaining` were never read); undefined when allowed.
   */
  readonly refusedBy: 'rate' | 'quota' | 'unavailable' | undefined;
  /**
   * True when no bucket decided: a `policy: redis` limit whose Redis is away let the request through
   * (`onRedisError: allow`) or refused it (`deny`) without counting it, so `limit`, `remaining` and
   * `resetMs` are no bucket's figures and no limit header may repeat them.
   */
  readonly uncounted?: true;
  /** The bucket size (burst): the most requests that may pass at once. */
  readonly limit: number;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /**
   * Milliseconds the bucket that decided takes to fill from empty (burst / rate), when it is not the
   * configured shape's: a share of it rounded to whole tokens (a fallback's, a worker's) fills faster
   * or slower than the whole.
   */
  readonly fillMs?: number;
  /** Milliseconds until the request could pass; 0 when allowed. */
  readonly retryAfterMs: number;
  /** With `delay`: milliseconds the request waits for its token before it goes on; 0 passes at once. */
  readonly delayMs: number;
  /** The key's quota after this request, when the limit has one. */
  readonly quota?: QuotaState;
}

/**
 * Takes one token for a key. The rate-limit middleware talks to limiters only through this, so a
 * shared (Redis) limiter can stand in for the local one; a limiter must answer (or reject) in
 * bounded time, since the request waits for it.
 */
export interface Limiter {
  /** Takes one token from `key`'s bucket (and one from its quota) if there is one; a refusal leaves both as they were. */
  take(key: string): LimitDecision | Promise<LimitDecision>;
  /**
   * Sets `key`'s bucket to `level` (0 to 1) of full, as a local bucket that stands in for a shared
   * one does with the shared one's last reported level; limiters that cannot ignore it.
   */
  seed?(key: string, level: number): void;
  /**
   * Sets `key`'s count in the current quota window so that the share of `reported` left is left, as
   * a local quota that stands in for a shared one does with the shared one's last reported state
   * (only when it counted the same window); limiters without a quota ignore it.
   */
  seedQuota?(key: string, reported: QuotaState): void;
}

/** A bucket's shape: `average` tokens per `periodMs` into a bucket of `burst`. */
export interface BucketShape {
  readonly average: number;
  readonly periodMs: number;
  readonly burst: number;
}

/**
 * `shape` scaled to a `share` of it (1/workers, 1/gateways): the rate times `share`, the burst
 * `wholeShareOf` it (a bucket under one token admits nothing).
 */
export function shareOf<Shape extends BucketShape>(shape: Shape, share: number, part?: number): Shape {
  if (share >= 1) return shape;
  return { ...shape, average: shape.average * share, burst: wholeShareOf(shape.burst, share, part) };
}

/**
 * A `share` (1/parts) of a whole count (a burst, a quota), at least 1. With `part` (a worker's slot,
 * 0 to parts - 1) the count is dealt out as evenly as whole numbers allow, the first parts taking one
 * of the remainder each, so that the parts add up to the count (5 over 2 workers: 3 and 2); without
 * it (a gateway's share: gateways have no index), every part takes the count rounded down.
 */
export function wholeShareOf(count: number, share: number, part?: number): number {
  if (share >= 1) return count;
  const parts = Math.round(1 / share);
  const even = Math.floor(count / parts);
  const extra = part !== undefined && part >= 0 && part < count % parts ? 1 : 0;
  return Math.max(1, even + extra);
}
