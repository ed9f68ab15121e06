import { describe, expect, it } from 'vitest';
import { TokenBucketLimiter, type TokenBucketOptions } from './token-bucket.ts';

/** A limiter on a fake monotonic clock the test moves by hand. */
function limiterAt(options: Omit<TokenBucketOptions, 'now'>) {
  const clock = { ms: 1_000 };
  const limiter = new TokenBucketLimiter({ ...options, now: () => clock.ms });
  return { limiter, clock };
}

/** `count` takes of `key`, as allowed flags. */
function takes(limiter: TokenBucketLimiter, count: number, key = 'k'): boolean[] {
  return Array.from({ length: count }, () => limiter.take(key).allowed);
}

describe('TokenBucketLimiter', () => {
  it('lets a burst through at once, then refuses until a token refills', () => {
    const { limiter } = limiterAt({ average: 1, periodMs: 1_000, burst: 3 });
    expect(takes(limiter, 4)).toEqual([true, true, true, false]);
  });

  it('reports limit, remaining, reset and retry-after in exact token arithmetic', () => {
    const { limiter, clock } = limiterAt({ average: 2, periodMs: 1_000, burst: 4 });
    expect(limiter.take('k')).toEqual({ allowed: true, refusedBy: undefined, limit: 4, remaining: 3, resetMs: 500, fillMs: 2_000, retryAfterMs: 0, delayMs: 0 });
    takes(limiter, 3);
    expect(limiter.take('k')).toEqual({ allowed: false, refusedBy: 'rate', limit: 4, remaining: 0, resetMs: 2_000, fillMs: 2_000, retryAfterMs: 500, delayMs: 0 });
    clock.ms += 250; // half a token
    const refused = limiter.take('k');
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeCloseTo(250, 9);
    expect(refused.resetMs).toBeCloseTo(1_750, 9);
    clock.ms += 250; // the token is whole now
    expect(limiter.take('k')).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('refills at average per period and never above burst', () => {
    const { limiter, clock } = limiterAt({ average: 10, periodMs: 60_000, burst: 2 });
    takes(limiter, 2);
    clock.ms += 6_000; // exactly one token
    expect(takes(limiter, 2)).toEqual([true, false]);
    clock.ms += 3_600_000; // far more than the bucket holds
    expect(takes(limiter, 3)).toEqual([true, true, false]);
  });

  it('handles fractional rates: 1 request per 3 s admits on the third second, not before', () => {
    const { limiter, clock } = limiterAt({ average: 1, periodMs: 3_000, burst: 1 });
    expect(limiter.take('k').allowed).toBe(true);
    for (const step of [1_000, 1_000]) {
      clock.ms += step;
      expect(limiter.take('k').allowed).toBe(false);
    }
    clock.ms += 1_000;
    expect(limiter.take('k').allowed).toBe(true);
  });

  it('handles an average below one: 0.5 per second is one request every 2 s', () => {
    const { limiter, clock } = limiterAt({ average: 0.5, periodMs: 1_000, burst: 1 });
    expect(limiter.take('k').allowed).toBe(true);
    clock.ms += 1_999;
    expect(limiter.take('k')).toMatchObject({ allowed: false });
    expect(limiter.take('k').retryAfterMs).toBeCloseTo(1, 6);
    clock.ms += 1;
    expect(limiter.take('k').allowed).toBe(true);
  });

  it('keeps a bucket per key', () => {
    const { limiter } = limiterAt({ average: 1, periodMs: 1_000, burst: 1 });
    expect([limiter.take('a').allowed, limiter.take('b').allowed, limiter.take('a').allowed]).toEqual([true, true, false]);
  });

  it('does not count a refused request against the bucket', () => {
    const { limiter, clock } = limiterAt({ average: 1, periodMs: 1_000, burst: 1 });
    limiter.take('k');
    for (let index = 0; index < 10; index += 1) {
      clock.ms += 50;
      limiter.take('k');
    }
    clock.ms += 500; // 1 000 ms since the only allowed take
    expect(limiter.take('k').allowed).toBe(true);
  });

  it('survives a clock that steps back without minting tokens', () => {
    const { limiter, clock } = limiterAt({ average: 1, periodMs: 1_000, burst: 1 });
    limiter.take('k');
    clock.ms -= 10_000;
    expect(limiter.take('k').allowed).toBe(false);
  });

  it('drops idle keys once their bucket has refilled, a few per request', () => {
    const { limiter, clock } = limiterAt({ average: 1, periodMs: 1_000, burst: 2 });
    takes(limiter, 1, 'a');
    takes(limiter, 2, 'b');
    expect(limiter.size).toBe(2);
    clock.ms += 1_000; // a is full again, b holds one token of two
    limiter.take('c');
    expect(limiter.size).toBe(2); // a expired, b kept: it would still refuse a burst of 2
    clock.ms += 1_000;
    limiter.take('c');
    expect(limiter.size).toBe(1);
  });

  it('forgets the least recently used key past maxKeys, so memory stays bounded', () => {
    const { limiter } = limiterAt({ average: 1, periodMs: 3_600_000, burst: 1, maxKeys: 2 });
    limiter.take('a');
    limiter.take('b');
    limiter.take('a'); // a is now the most recently used
    limiter.take('c'); // evicts b
    expect(limiter.size).toBe(2);
    expect(limiter.take('a').allowed).toBe(false);
    expect(limiter.take('b').allowed).toBe(true); // forgotten, so it starts full
  });

  it('refuses settings that could never admit a request', () => {
    expect(() => new TokenBucketLimiter({ average: 0, periodMs: 1_000, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBucketLimiter({ average: 1, periodMs: 1_000, burst: 0 })).toThrow(RangeError);
  });

  it('with maxWait lends tokens ahead up to maxWait, so at most maxWait × rate + 1 requests wait per key', () => {
    const clock = { ms: 0 };
    const limiter = new TokenBucketLimiter({ average: 10, periodMs: 1_000, burst: 2, now: () => clock.ms, maxWaitMs: 300 });
    const delays = Array.from({ length: 7 }, () => limiter.take('k')).map((decision) => (decision.allowed ? Math.round(decision.delayMs) : 'refused'));
    // Two from the burst at once, then one every 100 ms up to 300 ms, then refusals.
    expect(delays).toEqual([0, 0, 100, 200, 300, 'refused', 'refused']);
    clock.ms = 100; // one token repaid: one more may queue, at the back (300 ms)
    const next = limiter.take('k');
    expect([next.allowed, Math.round(next.delayMs)]).toEqual([true, 300]);
    expect(limiter.take('k').retryAfterMs).toBeCloseTo(100, 6);
  });

  it('seeds a key at a level of full: it starts there and refills from then, not full', () => {
    const { limiter, clock } = limiterAt({ average: 10, periodMs: 1_000, burst: 10 });
    limiter.seed('k', 0.3);
    expect(takes(limiter, 4)).toEqual([true, true, true, false]);
    clock.ms += 200; // two tokens
    expect(takes(limiter, 3)).toEqual([true, true, false]);
    // A key seeded again is set, whatever it held; the level is kept within 0 to 1.
    limiter.seed('k', 2);
    expect(limiter.take('k').remaining).toBe(9);
    limiter.seed('k', -1);
    expect(limiter.take('k').allowed).toBe(false);
  });

  it('tracks no key seeded full that it did not have (a new key starts full anyway)', () => {
    const { limiter } = limiterAt({ average: 1, periodMs: 1_000, burst: 3 });
    limiter.seed('full', 1);
    expect(limiter.size).toBe(0);
    limiter.seed('drained', 0);
    expect(limiter.size).toBe(1);
  });
});
