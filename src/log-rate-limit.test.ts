import { describe, expect, it } from 'vitest';
import { LogRateLimit } from './log-rate-limit.ts';

describe('LogRateLimit', () => {
  it('allows a key once per period, and again once the period has passed, each key on its own', () => {
    const limit = new LogRateLimit(30_000);
    const at = 1_000_000;
    expect([
      limit.allow('a', at),
      limit.allow('a', at + 29_999),
      limit.allow('b', at + 1),
      limit.allow('a', at + 30_000),
      limit.allow('b', at + 30_000),
      limit.allow('b', at + 30_001),
    ]).toEqual([true, false, true, true, false, true]);
  });

  it('forgets keys whose period passed as later keys are allowed, so memory follows the keys of one period', () => {
    const limit = new LogRateLimit(1_000);
    for (let key = 0; key < 100; key += 1) limit.allow(`k${key}`, key * 100);
    // At 9,900 only the keys allowed in the last second (9,000 to 9,900) are kept.
    expect(limit.size).toBe(10);
  });

  it('keeps at most maxKeys keys, forgetting the oldest first, which may then log again early', () => {
    const limit = new LogRateLimit(60_000, 3);
    for (const key of ['a', 'b', 'c', 'd']) expect(limit.allow(key, 1_000)).toBe(true);
    expect(limit.size).toBe(3);
    expect(limit.allow('b', 2_000)).toBe(false);
    expect(limit.allow('a', 2_000)).toBe(true);
  });

  it('allows a key again when the clock went back before its last warning (a wall-clock step)', () => {
    const limit = new LogRateLimit(30_000);
    expect(limit.allow('a', 1_000_000)).toBe(true);
    expect(limit.allow('a', 999_000)).toBe(true);
  });
});
