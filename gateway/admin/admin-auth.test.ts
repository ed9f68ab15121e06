import { describe, expect, it } from 'vitest';
import { bearerToken, isAuthorized, isLoopbackHostHeader, tokenMatches } from './admin-auth.ts';

const TOKEN = 'correct-horse-battery';

describe('bearerToken', () => {
  it.each([
    ['Bearer abc', 'abc'],
    ['bearer abc', 'abc'],
    ['Bearer   abc  ', 'abc'],
    ['Basic abc', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    [undefined, undefined],
  ])('reads %s as %s', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe('tokenMatches', () => {
  it.each([
    [TOKEN, true],
    [`${TOKEN}x`, false],
    ['short', false],
    ['', false],
    [undefined, false],
    [null, false],
  ])('compares %s with the token: %s', (given, expected) => {
    expect(tokenMatches(TOKEN, given)).toBe(expected);
  });
});

describe('isAuthorized', () => {
  it('takes the token from the Authorization header, or from the query where the caller allows it', () => {
    expect(isAuthorized(TOKEN, { headers: { authorization: `Bearer ${TOKEN}` } })).toBe(true);
    expect(isAuthorized(TOKEN, { headers: {}, queryToken: TOKEN })).toBe(true);
    expect(isAuthorized(TOKEN, { headers: {}, queryToken: null })).toBe(false);
    expect(isAuthorized(TOKEN, { headers: { authorization: 'Bearer nope' }, queryToken: 'nope' })).toBe(false);
  });
});

describe('isLoopbackHostHeader', () => {
  it.each([
    ['127.0.0.1:9180', true],
    ['localhost', true],
    ['LOCALHOST:80', true],
    ['[::1]:9180', true],
    ['127.8.9.10', true],
    ['evil.example:9180', false],
    ['10.0.0.1:9180', false],
    ['[::2]:9180', false],
    [undefined, false],
  ])('calls Host %s loopback: %s', (host, expected) => {
    expect(isLoopbackHostHeader(host)).toBe(expected);
  });
});
