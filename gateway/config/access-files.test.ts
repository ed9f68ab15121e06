import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { compactVerify, errors } from 'jose';
import { describe, expect, it } from 'vitest';
import { joseRefusal } from './access-files.ts';

/** What jose answers for a token of `alg` with a made-up signature: a bad signature when it takes the key, else the reason it refuses it. */
async function joseVerdict(key: KeyObject, alg: string): Promise<string> {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  try {
    await compactVerify(`${part({ alg })}.${part({})}.AAAA`, key);
    return 'verified';
  } catch (error) {
    return error instanceof errors.JWSSignatureVerificationFailed ? 'takes the key' : `refuses the key: ${(error as Error).message}`;
  }
}

describe('joseRefusal', () => {
  it.each([
    ['an RSA key of 2048 bits', generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, ['RS256', 'PS512'], undefined],
    ['an RSA key of 1024 bits', generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, ['RS256', 'PS256'], 'an RSA key of 1024 bits (jose verifies with 2048 bits or more)'],
    ['an RSA key of 2047 bits', generateKeyPairSync('rsa', { modulusLength: 2047 }).publicKey, ['RS512'], 'an RSA key of 2047 bits (jose verifies with 2048 bits or more)'],
    ['an RSA-PSS key', generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey, ['PS256'], expect.stringContaining('an RSA-PSS key (id-RSASSA-PSS)')],
    ['an Ed25519 key', generateKeyPairSync('ed25519').publicKey, ['EdDSA'], undefined],
    ['an Ed448 key', generateKeyPairSync('ed448').publicKey, ['EdDSA'], 'an Ed448 key (jose verifies EdDSA with Ed25519 keys only)'],
    ['a P-256 key', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, ['ES256'], undefined],
    ['a P-521 key', generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey, ['ES512'], undefined],
  ] as const)('tells %s apart exactly when jose refuses to verify with it', async (_name, key, algs, refusal) => {
    expect(joseRefusal(key)).toEqual(refusal);
    for (const alg of algs) expect([alg, await joseVerdict(key, alg)]).toEqual([alg, refusal === undefined ? 'takes the key' : expect.stringMatching(/^refuses the key/)]);
  });
});
