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

describe('QuotaLimiter.seedQuota and the window', () => {
  const midnight = Date.UTC(2026, 11, 8);
  it.each([
    // Counted at 23:59:59.990, seeded at 00:00:00.005: yesterday's count.
    ['an answer of the day before that arrives after midnight', midnight - 10, midnight + 5],
    // A Redis clock 2 s behind this one: still yesterday there.
    ['an answer from a Redis clock 2 s behind, 1 s after midnight', midnight - 1_000, midnight + 1_000],
    // A Redis clock 2 s ahead: tomorrow there already, and its count is of tomorrow's window.
    ['an answer from a Redis clock 2 s ahead, 1 s before midnight', midnight + 1_000, midnight - 1_000],
  ])('ignores the count of another window than its own: %s', (_, redisNow, now) => {
    const { clock, limiter } = quotaOf(5);
    clock.now = now;
    // A key Redis counted over its quota, in its window.
    limiter.seedQuota('k', reported(10, 0, redisNow));
    expect(limiter.take('k')).toMatchObject({ allowed: true, quota: { remaining: 4 } });
  });

  it('takes the count of its own window, with a Redis clock apart from its own', () => {
    const { clock, limiter } = quotaOf(5);
    for (const skewMs of [-60_000, 0, 60_000]) {
      clock.now = NOON + skewMs;
      limiter.seedQuota(`k${skewMs}`, reported(10, 0, NOON));
      expect(limiter.take(`k${skewMs}`)).toMatchObject({ allowed: false, refusedBy: 'quota' });
    }
  });
});
