import { describe, expect, it } from 'vitest';
import { REDACTED, redactionMarkers, redactSecrets } from './redaction.ts';

const KEY_DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Config store objects as written, each with its secrets (`secret-N`) and the places they sit. */
const STORED: [string, unknown, string[]][] = [
  [
    'a route with credential header conditions, header edits and a fallback answer',
    {
      name: 'r',
      path: '/r',
      service: 'a',
      headers: { 'X-Api-Key': 'secret-1', 'x-env': 'eu' },
      requestHeaders: { set: { Authorization: 'Bearer secret-2', 'x-tenant': 'acme' }, remove: ['cookie'] },
      responseHeaders: { set: { 'Set-Cookie': 'sid=secret-3' } },
      circuitBreaker: { fallback: { status: 503, headers: { 'x-auth-token': 'secret-4', 'retry-after': '5' }, body: 'down' } },
    },
    ['headers.X-Api-Key', 'requestHeaders.set.Authorization', 'responseHeaders.set.Set-Cookie', 'circuitBreaker.fallback.headers.x-auth-token'],
  ],
  ['a headers middleware', { headers: { request: { set: { 'proxy-authorization': 'Basic secret-5', host: 'x' } } } }, ['headers.request.set.proxy-authorization']],
  ['a forwardAuth middleware whose address holds a password', { forwardAuth: { address: 'http://gw:secret-6@auth.internal:4181/check' } }, ['forwardAuth.address']],
  ['a jwtAuth middleware whose JWKS URL holds a password', { jwtAuth: { algorithms: ['RS256'], jwks: { url: 'https://:secret-7@idp/jwks.json' } } }, ['jwtAuth.jwks.url']],
  ['a consumer with API key digests', { keys: [KEY_DIGEST, KEY_DIGEST.replace('ab', 'cd')], labels: { team: 'x' } }, ['keys[0]', 'keys[1]']],
];

describe('redactSecrets', () => {
  it.each(STORED)('leaves no secret in %s, and keeps the rest', (_name, stored, places) => {
    const redacted = redactSecrets(stored);
    expect(JSON.stringify(redacted)).not.toMatch(/secret-\d|abab/);
    expect(JSON.stringify(redacted)).toContain(REDACTED);
    expect(redactionMarkers(stored)).toEqual([]);
    expect(redactionMarkers(redacted)).toEqual(places);
  });

  it('redacts the values of credential headers, a password and a token wherever they sit, a resolved Map included', () => {
    const resolved = { routes: new Map([['a', { headers: { cookie: 's=secret-1' } }]]), redis: { password: 'secret-2' }, admin: { token: 'secret-3' }, consumers: [{ keyHashes: ['ab'.repeat(32)], passwordHashes: ['$2b$04$x'] }] };
    expect(redactSecrets(resolved)).toEqual({ routes: { a: { headers: { cookie: REDACTED } } }, redis: { password: REDACTED }, admin: { token: REDACTED }, consumers: [{ keyHashes: [REDACTED], passwordHashes: [REDACTED] }] });
  });

  it('leaves header names, non-credential values, plain URLs and undefined (as null) readable', () => {
    const route = { path: '/a', headers: { 'x-env': 'eu' }, requestHeaders: { remove: ['authorization'] }, service: 'a', note: 'http://docs.internal/a', host: undefined };
    expect(redactSecrets(route)).toEqual({ ...route, host: null });
    expect(redactionMarkers(route)).toEqual([]);
  });

  it('finds the marker only where a secret goes: a header named plainly or a path may say [redacted]', () => {
    expect(redactionMarkers({ headers: { 'x-note': REDACTED }, path: '/[redacted]', keys: [REDACTED] })).toEqual(['keys[0]']);
    expect(redactionMarkers({ forwardAuth: { address: `http://gw:${REDACTED}@auth/check?x=1` } })).toEqual(['forwardAuth.address']);
  });

  it.each([
    ['a query value', `http://h/?q=${REDACTED}`, []],
    ['a path segment', `http://h/${REDACTED}/x`, []],
    ['a query value beside a user with no password', `http://gw@auth/check?q=${REDACTED}`, []],
    ['a password query parameter', `redis://h:6379?db=0&password=${REDACTED}`, ['url']],
    ['a userinfo that is all password', `redis://${REDACTED}@h:6379`, ['url']],
    ['a userinfo password beside a query value that says it too', `redis://default:${REDACTED}@h?q=${REDACTED}`, ['url']],
  ])('in a URL, counts [redacted] in %s only where redactSecrets writes it', (_name, url, places) => {
    expect(redactionMarkers({ url })).toEqual(places);
  });
});
