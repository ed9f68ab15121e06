import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
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

describe('jwtAuth', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('verifies a token by the JWKS key its kid names even when a key file without kid fits the same algorithm', async () => {
    const file = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = { keys: [{ ...idp.publicKey.export({ format: 'jwk' }), kid: 'idp-1', use: 'sig' }] };
    const fetch = (async () => new Response(JSON.stringify(jwks))) as typeof globalThis.fetch;
    const settings = settingsWith({
      publicKeyFiles: ['file.pem'],
      jwks: { url: 'http://idp.test/jwks', refreshMs: 60_000, cooldownMs: 0, timeoutMs: 1_000 },
      keys: new KeyMaterial(undefined, [{ key: file.publicKey, kid: undefined, alg: undefined }], 'digest'),
    });
    server = await serveMiddleware([jwtAuth(settings, { fetch })]);
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
    let fetches = 0;
    const fetch = (async () => {
      fetches += 1;
      return new Response(JSON.stringify(jwks));
    }) as typeof globalThis.fetch;
    const settings = settingsWith({
      publicKeyFiles: ['file.pem'],
      jwks: { url: 'http://idp.test/jwks', refreshMs: 60_000, cooldownMs: 0, timeoutMs: 1_000 },
      keys: new KeyMaterial(undefined, [{ key: file.publicKey, kid: undefined, alg: undefined }], 'digest'),
    });
    server = await serveMiddleware([jwtAuth(settings, { fetch })]);
    const sign = (key: typeof file.privateKey, kid: string) => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(key);
    expect((await server.send('/', { headers: bearer(await sign(idp.privateKey, 'idp-1')) })).status).toBe(200);
    const loaded = fetches;
    // Signed by the file's key under a kid the file does not carry: no fetch on the request's path.
    expect((await server.send('/', { headers: bearer(await sign(file.privateKey, 'file-kid')) })).status).toBe(200);
    expect(fetches).toBe(loaded);
    // The provider rotates in a new key: the file key fails as a stand-in, the JWKS is fetched again and verifies it.
    jwks.keys.push({ ...rotated.publicKey.export({ format: 'jwk' }), kid: 'idp-2', use: 'sig' });
    expect((await server.send('/', { headers: bearer(await sign(rotated.privateKey, 'idp-2')) })).status).toBe(200);
    expect(fetches).toBe(loaded + 1);
  });

  it("passes on none of the client's other spellings of the token's header, which CGI-style upstreams read as the token", async () => {
    const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const settings = settingsWith({
      from: { header: 'x-token', cookie: undefined, query: undefined },
      keys: new KeyMaterial(undefined, [{ key: signer.publicKey, kid: undefined, alg: undefined }], 'digest'),
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
});
