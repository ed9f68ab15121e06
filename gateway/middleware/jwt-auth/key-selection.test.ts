import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseKeyFile } from '../../config/access-files.ts';
import { fittingKeys, jwksKeys, keyFits, namedKey, refusedJwksKeyWarning, unnamedKey } from './key-selection.ts';

const key = (publicKey: KeyObject, kid?: string, alg?: string) => ({ key: publicKey, kid, alg });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
const ed = generateKeyPairSync('ed25519').publicKey;
const ed448 = generateKeyPairSync('ed448').publicKey;

describe('keyFits', () => {
  it.each([
    ['an RSA key', rsa, ['RS256', 'RS512', 'PS256'], ['HS256', 'ES256', 'EdDSA']],
    ['a P-256 key', p256, ['ES256'], ['ES384', 'RS256', 'HS256']],
    ['a P-384 key', p384, ['ES384'], ['ES256', 'HS384']],
    ['an Ed25519 key', ed, ['EdDSA'], ['ES256', 'HS512']],
    ['an Ed448 key', ed448, [], ['EdDSA', 'ES512']],
  ] as const)('lets %s verify only the algorithms of its type (never HMAC)', (_name, publicKey, fits, misfits) => {
    for (const alg of fits) expect([alg, keyFits(key(publicKey), alg)]).toEqual([alg, true]);
    for (const alg of misfits) expect([alg, keyFits(key(publicKey), alg)]).toEqual([alg, false]);
  });

  it('honours the alg a JWK pins', () => {
    expect([keyFits(key(rsa, undefined, 'PS256'), 'RS256'), keyFits(key(rsa, undefined, 'PS256'), 'PS256')]).toEqual([false, true]);
  });
});

describe('namedKey and unnamedKey', () => {
  const keys = [key(p256, 'a'), key(p256, 'b'), key(rsa), key(rsa, 'c'), key(p256)];
  it('pick the key that carries the kid and fits, and the first key without a kid that fits, which stands in for a kid no key carries', () => {
    expect([namedKey(keys, 'ES256', 'b'), namedKey(keys, 'RS256', 'c')]).toEqual([keys[1], keys[3]]);
    expect([namedKey(keys, 'ES256', 'c'), namedKey(keys, 'ES256', 'zzz')]).toEqual([undefined, undefined]);
    expect([unnamedKey(keys, 'RS256'), unnamedKey(keys, 'ES256'), unnamedKey(keys, 'EdDSA')]).toEqual([keys[2], keys[4], undefined]);
  });
});

describe('fittingKeys', () => {
  it('keeps every key that fits the algorithm, kid or not, in order', () => {
    const keys = [key(p256, 'a'), key(rsa), key(p256), key(p256, undefined, 'ES384'), key(p384)];
    expect(fittingKeys(keys, 'ES256')).toEqual([keys[0], keys[2]]);
    expect(fittingKeys(keys, 'HS256')).toEqual([]);
  });
});

describe('jwksKeys', () => {
  it('reads signing keys and skips encryption keys, symmetric keys and garbage', () => {
    const document = {
      keys: [
        { ...p256.export({ format: 'jwk' }), kid: 'sig', alg: 'ES256' },
        { ...rsa.export({ format: 'jwk' }), kid: 'enc', use: 'enc' },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
        { kty: 'EC', crv: 'P-256', x: 'nope', kid: 'broken' },
      ],
    };
    expect(jwksKeys(document).keys.map((entry) => [entry.kid, entry.alg])).toEqual([['sig', 'ES256']]);
    expect(jwksKeys({ nokeys: true })).toEqual({ keys: [], refused: [] });
  });

  it('skips the keys jose would not verify with, and tells them apart with their kids and why', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const document = { keys: [{ ...weak.export({ format: 'jwk' }), kid: 'weak' }, { ...ed448.export({ format: 'jwk' }) }, { ...rsa.export({ format: 'jwk' }), kid: 'strong' }] };
    const { keys, refused } = jwksKeys(document);
    expect(keys.map((entry) => entry.kid)).toEqual(['strong']);
    expect(refused).toEqual([
      { kid: 'weak', reason: 'an RSA key of 1024 bits (jose verifies with 2048 bits or more)' },
      { kid: undefined, reason: 'an Ed448 key (jose verifies EdDSA with Ed25519 keys only)' },
    ]);
  });
});

describe('a key file and a JWKS URL follow one rule for which keys verify tokens', () => {
  const jwkOf = (publicKey: KeyObject, extra: object) => ({ ...publicKey.export({ format: 'jwk' }), ...extra });
  it.each([
    { name: 'an encryption key ("use": "enc"), left out without a word', other: jwkOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, { kid: 'other', use: 'enc' }), refused: [] },
    { name: 'a symmetric "oct" key node:crypto does not read as a public key', other: { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', kid: 'other' }, refused: ['other'] },
    { name: 'an RSA key under 2048 bits', other: jwkOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, { kid: 'other' }), refused: ['other'] },
    { name: 'an Ed448 key', other: jwkOf(ed448, { kid: 'other' }), refused: ['other'] },
  ])('beside a signing key: $name', ({ other, refused }) => {
    const document = { keys: [jwkOf(rsa, { kid: 'signing', use: 'sig' }), other] };
    const fromUrl = jwksKeys(document);
    const fromFile = parseKeyFile(JSON.stringify(document));
    expect(fromFile.keys.map((entry) => entry.kid)).toEqual(['signing']);
    expect(fromUrl.keys.map((entry) => entry.kid)).toEqual(['signing']);
    expect(fromFile.refused.map((entry) => entry.kid)).toEqual(refused);
    expect(fromUrl.refused).toEqual(fromFile.refused.map(({ kid, reason }) => ({ kid, reason })));
  });
});

describe('refusedJwksKeyWarning', () => {
  it('names the document, the key (or that it has no kid) and why, as a key file\'s warning does', () => {
    expect(refusedJwksKeyWarning('https://idp.test/keys', { kid: 'legacy', reason: 'an RSA key of 1024 bits' })).toBe('JWKS https://idp.test/keys: the key "legacy" is skipped, it cannot verify tokens: an RSA key of 1024 bits');
    expect(refusedJwksKeyWarning('https://idp.test/keys', { kid: undefined, reason: 'r' })).toBe('JWKS https://idp.test/keys: a key without a kid is skipped, it cannot verify tokens: r');
  });
});
