import { describe, expect, it } from 'vitest';
import { hasDotSegment, normalisePath, type PathNormalisation } from './path-normalise.ts';

const DEFAULTS: PathNormalisation = { mergeSlashes: true, escapedSlashes: 'keep' };

describe('normalisePath with the defaults (merge slashes, keep escaped slashes)', () => {
  it.each([
    ['/', '/'],
    ['/api/user', '/api/user'],
    ['/api/user/x/../private', '/api/user/private'],
    ['/api/user/./private', '/api/user/private'],
    ['/api/user//private', '/api/user/private'],
    ['/api/user/%2e/private', '/api/user/private'],
    ['/api/user/%2E%2e/user/private', '/api/user/private'],
    ['/..', '/'],
    ['/../..', '/'],
    ['/../a', '/a'],
    ['/a/..', '/'],
    ['/a/../', '/'],
    ['/a/.', '/a/'],
    ['/a/b/..', '/a/'],
    ['/a/./b/', '/a/b/'],
    ['/a/b/./', '/a/b/'],
    ['//', '/'],
    ['///a///b//', '/a/b/'],
    ['/%2e%2E/', '/'],
    ['/a/%2e%2E/b', '/b'],
    ['/.hidden/..x/x..', '/.hidden/..x/x..'],
    ['/%2F', '/%2F'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%2f..%2fb', '/a%2F..%2Fb'],
    ['/a%5cb', '/a%5Cb'],
    ['/a\\b', '/a%5Cb'],
    ['/public/..\\admin', '/public/..%5Cadmin'],
    ['/data/..\\x/public', '/data/..%5Cx/public'],
    ['/a\\..\\..\\b', '/a%5C..%5C..%5Cb'],
    ['/a/b\\/../c', '/a/c'],
    ['/%41%7a%30%2d%2e%5f%7e', '/Az0-._~'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/a%20b', '/a%20b'],
    ['/a?x=/../y&z=%zz', '/a?x=/../y&z=%zz'],
    ['/a?x=..\\y', '/a?x=..\\y'],
    ['/a\\b?x=\\', '/a%5Cb?x=\\'],
    ['/a/../b?q=1', '/b?q=1'],
    ['/a//b?', '/a/b?'],
    ['*', '*'],
  ])('normalises %s to %s', (input, expected) => {
    expect(normalisePath(input, DEFAULTS)).toBe(expected);
  });

  it.each([
    ['/%zz', 'invalid-percent-encoding'],
    ['/%0', 'invalid-percent-encoding'],
    ['/a%', 'invalid-percent-encoding'],
    ['/a%g1', 'invalid-percent-encoding'],
    ['/a%0?b', 'invalid-percent-encoding'],
    ['/%00', 'nul-in-path'],
    ['/a\u0000b', 'nul-in-path'],
  ])('refuses %s with %s', (input, error) => {
    expect(normalisePath(input, DEFAULTS)).toEqual({ error });
  });

  it('returns a clean target itself, without building a new string', () => {
    const target = '/api/user/42/orders.json?page=2&x=..//';
    expect(normalisePath(target, DEFAULTS)).toBe(target);
  });
});

describe('normalisePath with its options', () => {
  it.each([
    ['/a//b', '/a//b'],
    ['//', '//'],
    ['/a//../b', '/a/b'],
    ['/a/./b//', '/a/b//'],
  ])('keeps duplicate slashes with mergeSlashes off: %s → %s', (input, expected) => {
    expect(normalisePath(input, { mergeSlashes: false, escapedSlashes: 'keep' })).toBe(expected);
  });

  it.each(['/%2F', '/a%2fb', '/a%5Cb', '/a\\b', '/public/..\\admin'])('refuses %s with escapedSlashes: reject', (input) => {
    expect(normalisePath(input, { mergeSlashes: true, escapedSlashes: 'reject' })).toEqual({ error: 'escaped-slash' });
  });
});

describe('hasDotSegment', () => {
  it.each([
    ['/a/../b', true],
    ['/a/./b', true],
    ['/a/..', true],
    ['/a/.', true],
    ['/..', true],
    ['/a/..?x', true],
    ['/a/...', false],
    ['/a/.b/c', false],
    ['/a/..b', false],
    ['/a/b.', false],
    ['/a/b?x=/../', false],
    ['/', false],
    ['/a/b', false],
    ['/data/%2E%2E/admin', true],
    ['/a/%2e%2e', true],
    ['/a/%2E/b', true],
    ['/a/.%2e/b', true],
    ['/a/%2E./b', true],
    ['/a/%2E%2E?x', true],
    ['/a/%2E%2E%2E/b', false],
    ['/a/%2E%2Eb/c', false],
    ['/a/%2F%2E/b', false],
    ['/a/%2/b', false],
    ['/a/%2', false],
    ['/a/%2E%2', false],
    ['/a/b?x=/%2E%2E/', false],
  ])('%s: %s', (path, expected) => {
    expect(hasDotSegment(path)).toBe(expected);
  });

  // The rewrite's check and the router must read one path: a segment is a dot segment to the first
  // exactly when the second removes it.
  it.each(['.', '..', '...', '%2E', '%2e', '%2E%2E', '%2e%2E', '.%2E', '%2e.', '%2E%2E%2E', '%2E%2Ex', 'x%2E%2E', '.x', '%252E'])(
    'calls the segment %s a dot segment exactly when normalisePath removes it',
    (segment) => {
      const path = `/a/b/${segment}/c`;
      const normalised = normalisePath(path, { mergeSlashes: true, escapedSlashes: 'keep' });
      expect(typeof normalised).toBe('string');
      expect(hasDotSegment(path)).toBe((normalised as string).split('/').length !== path.split('/').length);
    },
  );
});
