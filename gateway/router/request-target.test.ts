import { describe, expect, it } from 'vitest';
import { authorityBounds, splitAbsoluteTarget } from './request-target.ts';

describe('authorityBounds', () => {
  it.each([
    ['http://a.test/x', 7, 'a.test', ''],
    ['http://alice:secret@a.test:8080/x?q', 7, 'a.test:8080', 'alice:secret@'],
    ['http://a.test?q', 7, 'a.test', ''],
    ['http://a.test#f', 7, 'a.test', ''],
    ['alice@a.test:443', 0, 'a.test:443', 'alice@'],
    ['http://a.test/path@not-userinfo', 7, 'a.test', ''],
    ['http://x@y@a.test/', 7, 'a.test', 'x@y@'],
  ])('finds the host and the end of the authority in %s', (target, start, host, userinfo) => {
    const bounds = authorityBounds(target, start);
    expect(target.slice(bounds.host, bounds.end)).toBe(host);
    expect(target.slice(start, bounds.host)).toBe(userinfo);
  });
});

describe('splitAbsoluteTarget', () => {
  it('splits an absolute-form target into its authority without userinfo and an origin-form path', () => {
    expect(splitAbsoluteTarget('http://alice:secret@a.test/x?q')).toEqual({ authority: 'a.test', path: '/x?q' });
    expect(splitAbsoluteTarget('HTTPS://a.test?q')).toEqual({ authority: 'a.test', path: '/?q' });
  });

  it('leaves other schemes and an empty authority alone', () => {
    expect(splitAbsoluteTarget('ftp://a.test/x')).toBeUndefined();
    expect(splitAbsoluteTarget('http:///x')).toBeUndefined();
    expect(splitAbsoluteTarget('http://alice@/x')).toBeUndefined();
  });
});
