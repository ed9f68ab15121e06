import { describe, expect, it } from 'vitest';
import { asksAsCacheWould, isConditional, isNotModified, notModifiedHeaders, refreshedHeaders } from './cache-conditional.ts';

const MODIFIED = 'Wed, 01 Jan 2025 10:00:00 GMT';
const STORED = { etag: '"v1"', 'last-modified': MODIFIED };

describe('isNotModified', () => {
  it.each([
    ['If-None-Match with the stored ETag', { 'if-none-match': '"v1"' }, 200, STORED, true],
    ['If-None-Match with the stored ETag among others', { 'if-none-match': '"v0", "v1"' }, 200, STORED, true],
    ['If-None-Match with the ETag made weak (weak comparison)', { 'if-none-match': 'W/"v1"' }, 200, STORED, true],
    ['If-None-Match with a strong tag for a weak stored ETag', { 'if-none-match': '"v1"' }, 200, { etag: 'W/"v1"' }, true],
    ['If-None-Match: *', { 'if-none-match': '*' }, 200, {}, true],
    ['If-None-Match with a tag holding a comma', { 'if-none-match': '"a,b"' }, 200, { etag: '"a,b"' }, true],
    ['If-None-Match with another ETag', { 'if-none-match': '"v2"' }, 200, STORED, false],
    ['If-None-Match with a tag that only contains the stored one', { 'if-none-match': '"v1x"' }, 200, STORED, false],
    ['If-None-Match for an answer without ETag', { 'if-none-match': '"v1"' }, 200, { 'last-modified': MODIFIED }, false],
    ['If-None-Match that fails, with an If-Modified-Since that would pass (ignored)', { 'if-none-match': '"v2"', 'if-modified-since': MODIFIED }, 200, STORED, false],
    ['If-Modified-Since equal to Last-Modified', { 'if-modified-since': MODIFIED }, 200, STORED, true],
    ['If-Modified-Since later than Last-Modified', { 'if-modified-since': 'Thu, 02 Jan 2025 10:00:00 GMT' }, 200, STORED, true],
    ['If-Modified-Since earlier than Last-Modified', { 'if-modified-since': 'Tue, 31 Dec 2024 10:00:00 GMT' }, 200, STORED, false],
    ['If-Modified-Since that is not a date', { 'if-modified-since': 'yesterday' }, 200, STORED, false],
    ['If-Modified-Since in ISO 8601, no HTTP-date (ignored, as nginx does)', { 'if-modified-since': '2025-06-01T00:00:00Z' }, 200, STORED, false],
    ['If-Modified-Since that is a bare year', { 'if-modified-since': '2099' }, 200, STORED, false],
    ['If-Modified-Since in the obsolete RFC 850 form', { 'if-modified-since': 'Thursday, 02-Jan-25 10:00:00 GMT' }, 200, STORED, true],
    ['If-Modified-Since in the obsolete asctime form', { 'if-modified-since': 'Thu Jan  2 10:00:00 2025' }, 200, STORED, true],
    ['If-Modified-Since for an answer without Last-Modified', { 'if-modified-since': MODIFIED }, 200, { etag: '"v1"' }, false],
    ['a matching If-None-Match on a stored 404 (not a 2xx)', { 'if-none-match': '"v1"' }, 404, STORED, false],
    ['no conditional at all', {}, 200, STORED, false],
  ] as const)('%s: %s', (_what, request, status, stored, expected) => {
    expect(isNotModified(request, status, stored)).toBe(expected);
  });
});

describe('notModifiedHeaders', () => {
  it('keeps the validators, freshness, Vary, Date and Content-Location of the stored answer, nothing of its body', () => {
    const stored = { ...STORED, 'cache-control': 'max-age=60', expires: 'x', vary: 'Accept', date: 'y', 'content-location': '/a.json', 'content-type': 'text/plain', 'content-length': '12', 'x-own': 'z' };
    expect(notModifiedHeaders(stored)).toEqual({ ...STORED, 'cache-control': 'max-age=60', expires: 'x', vary: 'Accept', date: 'y', 'content-location': '/a.json' });
  });
});

describe('refreshedHeaders', () => {
  it('takes the 304\'s headers over the stored ones, except those about the body and Accept-Ranges, and drops the stored Age', () => {
    const stored = { etag: '"v1"', 'cache-control': 'max-age=1', date: 'old', 'content-length': '12', 'content-type': 'text/plain', 'accept-ranges': 'bytes', age: '30' };
    const notModified = { etag: '"v1"', 'cache-control': 'max-age=60', date: 'new', 'content-length': '0', 'accept-ranges': 'none', 'x-added': 'yes' };
    expect(refreshedHeaders(stored, notModified)).toEqual({ etag: '"v1"', 'cache-control': 'max-age=60', date: 'new', 'content-length': '12', 'content-type': 'text/plain', 'accept-ranges': 'bytes', 'x-added': 'yes' });
  });
});

describe('isConditional', () => {
  it.each([['if-none-match'], ['if-modified-since'], ['if-match'], ['if-unmodified-since'], ['if-range']])('sees %s', (name) => {
    expect(isConditional({ [name]: 'x' })).toBe(true);
  });

  it('sees none in a plain request', () => {
    expect(isConditional({ accept: '*/*', 'cache-control': 'max-age=0' })).toBe(false);
  });
});

describe('asksAsCacheWould', () => {
  it.each([
    ['an If-None-Match with the stored ETag', { 'if-none-match': '"v1"' }, true],
    ['an If-Modified-Since at the stored Last-Modified', { 'if-modified-since': MODIFIED }, true],
    ['an If-None-Match with another ETag', { 'if-none-match': '"v2"' }, false],
    ['If-None-Match: *', { 'if-none-match': '*' }, false],
    ['an If-Match beside a met If-None-Match', { 'if-none-match': '"v1"', 'if-match': '"v1"' }, false],
    ['an If-Range beside a met If-Modified-Since', { 'if-modified-since': MODIFIED, 'if-range': '"v1"' }, false],
  ] as const)('%s: %s', (_what, request, expected) => {
    expect(asksAsCacheWould(request, 200, STORED)).toBe(expected);
  });
});
