import CachePolicy from 'http-cache-semantics';
import { describe, expect, it } from 'vitest';
import { ResponseCache } from './cache-store.ts';

const POLICY = new CachePolicy({ method: 'GET', url: '/a', headers: {} }, { status: 200, headers: { 'cache-control': 'max-age=60' } }, { shared: true });

describe('ResponseCache', () => {
  it('keeps a small body in memory of its own, not the pool slab the body was cut from', () => {
    const cache = new ResponseCache(1_048_576);
    const body = Buffer.from('a small answer');
    // Node's pool: the slice shares an 8 KiB slab with every other small buffer made around it.
    expect(body.buffer.byteLength).toBeGreaterThan(body.length);
    cache.store('GET http://a/a', {}, { status: 200, headers: {}, body, policy: POLICY });
    const found = cache.find('GET http://a/a', {});
    expect(found?.body.toString()).toBe('a small answer');
    expect(found?.body.buffer.byteLength).toBe(body.length);
  });

  it('keeps a body that owns its memory as it is, without a copy', () => {
    const cache = new ResponseCache(1_048_576);
    const body = Buffer.alloc(16 * 1024, 'x');
    cache.store('GET http://a/b', {}, { status: 200, headers: {}, body, policy: POLICY });
    expect(cache.find('GET http://a/b', {})?.body).toBe(body);
  });

  it('tells whether a purge or an invalidation since a count took a key, and says yes past the purges it remembers', () => {
    const cache = new ResponseCache(1_048_576);
    const before = cache.drops;
    cache.purge((key) => key.startsWith('GET http://a/b'));
    expect([cache.droppedSince('GET http://a/a', before), cache.droppedSince('GET http://a/b', before)]).toEqual([false, true]);
    const later = cache.drops;
    cache.invalidate('GET http://a/a');
    expect([cache.droppedSince('GET http://a/a', later), cache.droppedSince('GET http://a/b', later)]).toEqual([true, false]);
    // A write-heavy route's invalidations of other URIs keep no answer from being stored.
    const start = cache.drops;
    for (let n = 0; n < 1_000; n += 1) cache.invalidate(`GET http://a/other-${n}`);
    expect(cache.droppedSince('GET http://a/a', start)).toBe(false);
    for (let n = 0; n < 64; n += 1) cache.purge((key) => key === `GET http://a/purged-${n}`);
    expect(cache.droppedSince('GET http://a/a', start)).toBe(false);
    cache.purge((key) => key === 'GET http://a/one-more');
    expect(cache.droppedSince('GET http://a/a', start)).toBe(true);
  });
});
