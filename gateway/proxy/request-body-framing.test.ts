import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { announcedLength, announcesBody } from './request-body-framing.ts';

describe('announcesBody', () => {
  it.each<[string, IncomingHttpHeaders, boolean]>([
    ['a head with neither content-length nor transfer-encoding', { host: 'example.test' }, false],
    ['content-length: 0', { 'content-length': '0' }, false],
    ['content-length: 00, which is zero too', { 'content-length': '00' }, false],
    ['content-length: 5', { 'content-length': '5' }, true],
    ['transfer-encoding: chunked', { 'transfer-encoding': 'chunked' }, true],
    ['transfer-encoding beside content-length: 0 (RFC 9112 §6.3: the encoding wins)', { 'transfer-encoding': 'chunked', 'content-length': '0' }, true],
    ['a content-length that is no number', { 'content-length': 'five' }, true],
  ])('tells whether %s announces a body', (_name, headers, expected) => {
    expect(announcesBody(headers)).toBe(expected);
  });
});

describe('announcedLength', () => {
  it('reads content-length as a number, NaN when it is none, and undefined without one', () => {
    expect(announcedLength({ 'content-length': '12' })).toBe(12);
    expect(announcedLength({ 'content-length': 'twelve' })).toBeNaN();
    expect(announcedLength({})).toBeUndefined();
  });
});
