import { describe, expect, it } from 'vitest';
import { TokenCache } from './token-cache.ts';

describe('TokenCache', () => {
  it('keeps a verdict until the token expires, then forgets it', () => {
    let now = 1_000_000;
    const cache = new TokenCache<string>(10, 60_000, () => now);
    cache.set('t', 'ok', now + 5_000);
    now += 4_999;
    expect(cache.get('t')).toBe('ok');
    now += 1;
    expect(cache.get('t')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('caps a long-lived or expiry-less token at the cache lifetime', () => {
    let now = 0;
    const cache = new TokenCache<string>(10, 1_000, () => now);
    cache.set('long', 'a', now + 3_600_000);
    cache.set('forever', 'b', undefined);
    now = 999;
    expect([cache.get('long'), cache.get('forever')]).toEqual(['a', 'b']);
    now = 1_000;
    expect([cache.get('long'), cache.get('forever')]).toEqual([undefined, undefined]);
  });

  it('evicts the oldest entry at its bound, stores nothing with size 0, and never stores an expired token', () => {
    const now = 0;
    const cache = new TokenCache<number>(2, 10_000, () => now);
    cache.set('a', 1, 5_000);
    cache.set('b', 2, 5_000);
    cache.set('c', 3, 5_000);
    expect([cache.get('a'), cache.get('b'), cache.get('c'), cache.size]).toEqual([undefined, 2, 3, 2]);
    cache.set('old', 4, -1);
    expect(cache.get('old')).toBeUndefined();
    const off = new TokenCache<number>(0, 10_000, () => now);
    off.set('a', 1, 5_000);
    expect(off.get('a')).toBeUndefined();
  });
});
