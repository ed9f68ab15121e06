import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { KeyMaterial } from '../../config/access-files.ts';
import type { JwtAuthSettings } from '../../config/types.ts';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { jwtAuth } from './index.ts';

function settingsWith(overrides: Partial<JwtAuthSettings>): JwtAuthSettings {
  return {
    algorithms: ['ES256'],
    secretFile: undefined,
    publicKeyFiles: [],
    jwks: undefined,
    issuer: undefined,
    audience: undefined,
    clockSkewMs: 0,
    from: { header: 'authorization', cookie: undefined, query: undefined },
    claimsToHeaders: {},
    stripAuthorization: false,
    consumerRequired: false,
    cacheSize: 0,
    cacheTtlMs: 60_000,
    consumers: [],
    keys: undefined,
    ...overrides,
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

type KeyPair = { publicKey: KeyObject; privateKey: KeyObject };

/** RSA keys: `old` and `current` published side by side without kids (as during a rotation), `file` for a key file, `stranger` published nowhere. */
async function rotationKeys(): Promise<Record<'old' | 'current' | 'file' | 'stranger', KeyPair>> {
  const [old, current, file, stranger] = await Promise.all([0, 1, 2, 3].map(() => promisify(generateKeyPair)('rsa', { modulusLength: 2048 })));
  return { old: old!, current: current!, file: file!, stranger: stranger! };
}

/** A JWKS URL fetched with `fetch`, which serves `document` as it is at each fetch and counts the fetches. */
function jwksServing(document: object) {
  const served = {
    settings: { url: 'http://idp.test/jwks', refreshMs: 60_000, cooldownMs: 0, timeoutMs: 1_000 },
    fetches: 0,
    fetch: (async () => {
      served.fetches += 1;
      return new Response(JSON.stringify(document));
    }) as typeof globalThis.fetch,
  };
  return served;
}

/** Key file entries without kids, as PEM files give them. */
const keyFiles = (...pairs: KeyPair[]) => new KeyMaterial(undefined, pairs.map(({ publicKey }) => ({ key: publicKey, kid: undefined, alg: undefined })), 'digest');

/** An RS256 token without a kid, valid for five minutes unless `expired`. */
function kidless(key: KeyObject, claims: { iss?: string; expired?: boolean } = {}): Promise<string> {
  const jwt = new SignJWT(claims.iss === undefined ? {} : { iss: claims.iss }).setProtectedHeader({ alg: 'RS256' });
  return jwt.setExpirationTime(claims.expired ? '-5m' : '5m').sign(key);
}

/** The status and the denial reason (the error class the gateway logs) of one request with `token`. */
async function outcomeOf(server: MiddlewareServer, token: string): Promise<[number, string | undefined]> {
  const response = await server.send('/', { headers: bearer(token) });
  return [response.status, server.contexts.at(-1)!.outcome.errorClass];
}

describe('jwtAuth', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('verifies a token by the JWKS key its kid names even when a key file without kid fits the same algorithm', async () => {
    const file = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = { keys: [{ ...idp.publicKey.export({ format: 'jwk' }), kid: 'idp-1', use: 'sig' }] };
    const idpJwks = jwksServing(jwks);
    server = await serveMiddleware([jwtAuth(settingsWith({ publicKeyFiles: ['file.pem'], jwks: idpJwks.settings, keys: keyFiles(file) }), { fetch: idpJwks.fetch })]);
    const sign = (key: typeof file.privateKey, kid?: string) => new SignJWT({}).setProtectedHeader(kid ? { alg: 'ES256', kid } : { alg: 'ES256' }).setExpirationTime('5m').sign(key);
    const statuses = [];
    for (const token of [await sign(idp.privateKey, 'idp-1'), await sign(file.privateKey), await sign(file.privateKey, 'file-kid'), await sign(idp.privateKey, 'other')]) {
      statuses.push((await server.send('/', { headers: bearer(token) })).status);
    }
    // The file key also stands in for a kid no key carries, as before; the IdP key only for its own kid.
    expect(statuses).toEqual([200, 200, 200, 401]);
  });

  it('verifies a kid its key file lacks by that file without waiting for the JWKS, and a key rotated in at the provider after a fetch', async () => {
    const file = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rotated = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = { keys: [{ ...idp.publicKey.export({ format: 'jwk' }), kid: 'idp-1', use: 'sig' }] };
    const idpJwks = jwksServing(jwks);
    server = await serveMiddleware([jwtAuth(settingsWith({ publicKeyFiles: ['file.pem'], jwks: idpJwks.settings, keys: keyFiles(file) }), { fetch: idpJwks.fetch })]);
    const sign = (key: typeof file.privateKey, kid: string) => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(key);
    expect((await server.send('/', { headers: bearer(await sign(idp.privateKey, 'idp-1')) })).status).toBe(200);
    const loaded = idpJwks.fetches;
    // Signed by the file's key under a kid the file does not carry: no fetch on the request's path.
    expect((await server.send('/', { headers: bearer(await sign(file.privateKey, 'file-kid')) })).status).toBe(200);
    expect(idpJwks.fetches).toBe(loaded);
    // The provider rotates in a new key: the file key fails as a stand-in, the JWKS is fetched again and verifies it.
    jwks.keys.push({ ...rotated.publicKey.export({ format: 'jwk' }), kid: 'idp-2', use: 'sig' });
    expect((await server.send('/', { headers: bearer(await sign(rotated.privateKey, 'idp-2')) })).status).toBe(200);
    expect(idpJwks.fetches).toBe(loaded + 1);
  });

  it("passes on none of the client's other spellings of the token's header, which CGI-style upstreams read as the token", async () => {
    const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const settings = settingsWith({
      from: { header: 'x-token', cookie: undefined, query: undefined },
      keys: keyFiles(signer),
    });
    server = await serveMiddleware([jwtAuth(settings)]);
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(signer.privateKey);
    const response = await server.send('/', { headers: { 'x-token': token, x_token: 'unchecked' } });
    const { headers } = echoed(response);
    expect([response.status, headers['x-token'], headers.x_token]).toEqual([200, token, undefined]);
  });

  it('passes on no value of the query parameter tokens are read from, whichever source the checked token came from', async () => {
    const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const settings = settingsWith({
      from: { header: 'authorization', cookie: undefined, query: 'token' },
      keys: new KeyMaterial(undefined, [{ key: signer.publicKey, kid: undefined, alg: undefined }], 'digest'),
    });
    server = await serveMiddleware([jwtAuth(settings)]);
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(signer.privateKey);
    const paths = [];
    // Beside a header token, and repeated after the query token read (an upstream reading the last value would take it).
    for (const [path, headers] of [[`/a?token=forged&page=2`, bearer(token)], [`/b?token=${token}&token=forged&page=3`, {}]] as const) {
      const response = await server.send(path, { headers });
      expect(response.status).toBe(200);
      paths.push(echoed(response).path);
    }
    expect(paths).toEqual(['/a?page=2', '/b?page=3']);
  });

  describe('a token without a kid', () => {
    let keys: Awaited<ReturnType<typeof rotationKeys>>;
    beforeAll(async () => {
      keys = await rotationKeys();
    });

    it("is verified by whichever of two key files signed it, and refused for the reason its signer's check gives", async () => {
      const { old, current, stranger } = keys;
      const settings = settingsWith({
        algorithms: ['RS256'],
        issuer: ['https://idp.test'],
        publicKeyFiles: ['old.pem', 'current.pem'],
        keys: keyFiles(old, current),
      });
      server = await serveMiddleware([jwtAuth(settings)]);
      const iss = 'https://idp.test';
      const outcomes = [];
      for (const token of [
        await kidless(old.privateKey, { iss }),
        await kidless(current.privateKey, { iss }),
        await kidless(stranger.privateKey, { iss }),
        await kidless(current.privateKey, { iss, expired: true }),
        await kidless(current.privateKey, { iss: 'https://other.test' }),
      ]) {
        outcomes.push(await outcomeOf(server, token));
      }
      expect(outcomes).toEqual([
        [200, undefined],
        [200, undefined],
        [401, 'invalid-signature'],
        [401, 'token-expired'],
        [401, 'invalid-claims'],
      ]);
    });

    it('is checked against the key files, then every JWKS key that fits, and its verdict is cached', async () => {
      const { old, current, file, stranger } = keys;
      const jwks = { keys: [old, current].map(({ publicKey }) => ({ ...publicKey.export({ format: 'jwk' }), use: 'sig' })) };
      const idpJwks = jwksServing(jwks);
      const settings = settingsWith({ algorithms: ['RS256'], publicKeyFiles: ['file.pem'], jwks: idpJwks.settings, cacheSize: 100, keys: keyFiles(file) });
      server = await serveMiddleware([jwtAuth(settings, { fetch: idpJwks.fetch })]);
      const signedByCurrent = await kidless(current.privateKey);
      const outcomes = [];
      for (const token of [await kidless(file.privateKey), await kidless(old.privateKey), signedByCurrent, await kidless(stranger.privateKey), await kidless(current.privateKey, { expired: true })]) {
        outcomes.push(await outcomeOf(server, token));
      }
      expect(outcomes).toEqual([
        [200, undefined],
        [200, undefined],
        [200, undefined],
        [401, 'invalid-signature'],
        [401, 'token-expired'],
      ]);
      // The provider retires a key, and a token with a kid no key carries has the JWKS fetched again (its stand-in,
      // the file key, fails): a new token signed by the retired key is refused, the one verified before is served from the cache.
      jwks.keys.splice(1, 1);
      const fetched = idpJwks.fetches;
      const unknownKid = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'unknown' }).setExpirationTime('5m').sign(stranger.privateKey);
      expect([await outcomeOf(server, unknownKid), idpJwks.fetches]).toEqual([[401, 'invalid-signature'], fetched + 1]);
      const another = await kidless(current.privateKey, { iss: 'another' });
      expect([await outcomeOf(server, another), await outcomeOf(server, signedByCurrent)]).toEqual([
        [401, 'invalid-signature'],
        [200, undefined],
      ]);
    });

    it('is checked after a fetch against a key it did not fit before, whose alg the provider has corrected', async () => {
      const { current } = keys;
      const jwk: Record<string, unknown> = { ...current.publicKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS384' };
      const idpJwks = jwksServing({ keys: [jwk] });
      server = await serveMiddleware([jwtAuth(settingsWith({ algorithms: ['RS256'], jwks: idpJwks.settings }), { fetch: idpJwks.fetch })]);
      expect(await outcomeOf(server, await kidless(current.privateKey))).toEqual([401, 'unknown-key']);
      delete jwk.alg;
      expect(await outcomeOf(server, await kidless(current.privateKey))).toEqual([200, undefined]);
    });

    it('is verified by a key file without waiting for a JWKS that does not answer', async () => {
      const { file, old } = keys;
      const fetch = (() => new Promise<Response>(() => {})) as typeof globalThis.fetch;
      const settings = settingsWith({
        algorithms: ['RS256'],
        publicKeyFiles: ['old.pem', 'file.pem'],
        jwks: { url: 'http://idp.test/jwks', refreshMs: 60_000, cooldownMs: 0, timeoutMs: 60_000 },
        keys: keyFiles(old, file),
      });
      server = await serveMiddleware([jwtAuth(settings, { fetch })]);
      expect(await outcomeOf(server, await kidless(file.privateKey))).toEqual([200, undefined]);
    });

    it('signed with HS256 and an RSA public key as the secret is refused, whichever of the keys it is', async () => {
      const { old, current } = keys;
      const settings = settingsWith({
        algorithms: ['RS256', 'HS256'],
        publicKeyFiles: ['old.pem', 'current.pem'],
        keys: keyFiles(old, current),
      });
      server = await serveMiddleware([jwtAuth(settings)]);
      const outcomes = [];
      for (const { publicKey } of [old, current]) {
        const secret = new TextEncoder().encode(publicKey.export({ format: 'pem', type: 'spki' }) as string);
        outcomes.push(await outcomeOf(server, await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(secret)));
      }
      expect(outcomes).toEqual([
        [401, 'unknown-key'],
        [401, 'unknown-key'],
      ]);
    });
  });

  describe('with a key in its key file and in its JWKS both', () => {
    afterEach(() => vi.restoreAllMocks());

    it.each([
      { name: 'a token without a kid', kid: undefined },
      { name: 'a token whose kid no key carries (the file key stands in, then the JWKS is fetched again)', kid: 'unknown' },
    ])('checks $name signed by another key once against that key', async ({ kid }) => {
      const { file: shared, stranger } = await rotationKeys();
      const idp = jwksServing({ keys: [{ ...shared.publicKey.export({ format: 'jwk' }), kid: 'shared' }] });
      server = await serveMiddleware([jwtAuth(settingsWith({ algorithms: ['RS256'], publicKeyFiles: ['shared.pem'], jwks: idp.settings, keys: keyFiles(shared) }), { fetch: idp.fetch })]);
      const token = await new SignJWT({}).setProtectedHeader(kid === undefined ? { alg: 'RS256' } : { alg: 'RS256', kid }).setExpirationTime('5m').sign(stranger.privateKey);
      // jose checks every signature through WebCrypto: each call is one key tried.
      const verify = vi.spyOn(crypto.subtle, 'verify');
      expect((await outcomeOf(server, token))[0]).toBe(401);
      expect(verify).toHaveBeenCalledTimes(1);
    });
  });
});
