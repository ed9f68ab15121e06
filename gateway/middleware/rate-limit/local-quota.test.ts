import { describe, expect, it } from 'vitest';
import type { QuotaState } from './limiter.ts';
import { QUOTA_WINDOW_MS, QuotaLimiter, shareLeft } from './local-quota.ts';
import { TokenBucketLimiter } from './token-bucket.ts';

const DAY = QUOTA_WINDOW_MS.day;
/** Noon, UTC: half a day from either turn of the daily window. */
const NOON = Date.UTC(2026, 11, 7, 12);

/** A daily quota of `limit` over a roomy bucket, on a wall clock the test sets. */
function quotaOf(limit: number) {
  const clock = { now: NOON };
  const limiter = new QuotaLimiter(new TokenBucketLimiter({ average: 100, periodMs: 1_000, burst: 100 }), { limit, per: 'day' }, () => clock.now);
  return { clock, limiter };
}

/** What Redis reports of a daily quota of `limit` with `remaining` left, asked at `now` (its window ends at the next UTC midnight). */
const reported = (limit: number, remaining: number, now: number): QuotaState => ({ limit, remaining, resetMs: DAY - (now % DAY), windowMs: DAY });

describe('QuotaLimiter.seedQuota', () => {
  it.each([
    ['a whole share of a small quota', 100, 29, 100, 29],
    ['a quota of 10^8 taken over as it is', 100_000_000, 30_881_674, 100_000_000, 30_881_674],
    ['a third of a quota of 3 × 10^8', 300_000_000, 92_708_271, 100_000_000, 30_902_757],
    ['half of the largest quota, past 2^53 when multiplied', Number.MAX_SAFE_INTEGER, 12_345_678_901_234, (Number.MAX_SAFE_INTEGER - 1) / 2, 6_172_839_450_616],
    ['more left than the limit, as a whole quota', 10, 11, 5, 5],
  ])('leaves the share of what Redis has left rounded down exactly: %s', (_, redisLimit, remaining, limit, left) => {
    expect(shareLeft(remaining, redisLimit, limit)).toBe(left);
    const { limiter } = quotaOf(limit);
    limiter.seedQuota('k', reported(redisLimit, remaining, NOON));
    expect(limiter.take('k')).toMatchObject({ allowed: true, quota: { remaining: left - 1 } });
  });
});
