/** What a limiter decided for one request. */
export interface LimitDecision {
  readonly allowed: boolean;
  /** The bucket size (burst): the most requests that may pass at once. */
  readonly limit: number;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** Milliseconds until one token is available; 0 when allowed. */
  readonly retryAfterMs: number;
}

/**
 * Takes one token for a key. The rate-limit middleware talks to limiters only through this, so a
 * shared (Redis) limiter can stand in for the local one; a limiter must answer (or reject) in
 * bounded time, since the request waits for it.
 */
export interface Limiter {
  /** Takes one token from `key`'s bucket if one is there; a refusal leaves the bucket as it was. */
  take(key: string): LimitDecision | Promise<LimitDecision>;
}
