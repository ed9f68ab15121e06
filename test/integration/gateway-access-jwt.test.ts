import { writeFile } from 'node:fs/promises';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { logOf, makeTempDir, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess, type HttpAnswer } from '../harness/index.ts';

/** One request with the path sent exactly as written (node:http does not normalise it). */
const send = (port: number, path: string, headers: Record<string, string> = {}) => sendRequest(port, path, { headers });

const base64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const SECRET = 'an-hmac-secret-of-at-least-thirty-two-bytes!';
const ISSUER = 'https://idp.test';
const AUDIENCE = 'switchboard';
const nowS = () => Math.floor(Date.now() / 1_000);
/** The `kidless` route's JWKS cooldown. */
const KIDLESS_COOLDOWN_MS = 2_000;

/** A JWKS endpoint whose keys the test swaps, and which it can take down and bring back on the same port. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((_request, response) => {
      this.fetches += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

describe('JWT authentication in the running gateway', () => {
  let api: BackendProcess;
  let admin: BackendProcess;
  let gateway: GatewayProcess;
  const jwks = new JwksServer();
  /** The JWKS of a provider that signs without kids, for the `kidless` route. */
  const kidlessJwks = new JwksServer();
  let es: { privateKey: CryptoKey; publicKey: CryptoKey };
  let rotated1: { privateKey: CryptoKey; publicKey: CryptoKey };
  let rotated2: { privateKey: CryptoKey; publicKey: CryptoKey };
  /** RSA keys of the `kidless` provider: the one it signs with at start, the one it rotates in, one it never publishes, and the one of its saved key file. */
  let rsa: Record<'old' | 'next' | 'stranger' | 'saved', { privateKey: CryptoKey; publicKey: CryptoKey }>;
  let esPem: string;
  /** The folder of the key files. */
  let dir: string;

  const sign = (alg: 'HS256' | 'ES256', claims: Record<string, unknown> = {}, options: { exp?: number; aud?: string; kid?: string; key?: CryptoKey } = {}) => {
    const jwt = new SignJWT({ role: 'ops', jti: randomUUID(), ...claims })
      .setProtectedHeader(options.kid ? { alg, kid: options.kid } : { alg })
      .setIssuer(ISSUER)
      .setSubject('user-1')
      .setAudience(options.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.exp ?? nowS() + 600);
    return jwt.sign(alg === 'HS256' ? new TextEncoder().encode(SECRET) : (options.key ?? es.privateKey));
  };
  /** A token whose header says `alg` but whose signature is an HMAC-SHA256 with `secret` (the key-confusion attack). */
  const hmacForged = (alg: string, secret: string, payload: Record<string, unknown>) => {
    const input = `${base64url(JSON.stringify({ alg, typ: 'JWT' }))}.${base64url(JSON.stringify(payload))}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const claims = () => ({ iss: ISSUER, sub: 'user-1', aud: AUDIENCE, exp: nowS() + 600, role: 'ops' });
  const get = (path: string, token?: string, headers: Record<string, string> = {}) => send(gateway.port, path, token ? { ...headers, authorization: `Bearer ${token}` } : headers);
  const echoed = (answer: HttpAnswer) => JSON.parse(answer.body) as { name: string; url: string; headers: IncomingHttpHeaders };

  beforeAll(async () => {
    [api, admin] = await Promise.all([startBackend({ name: 'api' }), startBackend({ name: 'admin' })]);
    [es, rotated1, rotated2] = await Promise.all([generateKeyPair('ES256', { extractable: true }), generateKeyPair('ES256', { extractable: true }), generateKeyPair('RS256', { extractable: true })]);
    esPem = await exportSPKI(es.publicKey);
    const [old, next, stranger, saved] = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair('RS256', { extractable: true })));
    rsa = { old: old!, next: next!, stranger: stranger!, saved: saved! };
    jwks.keys = [{ ...(await exportJWK(rotated1.publicKey)), kid: 'k1', use: 'sig', alg: 'ES256' }];
    // Before its signing key, a key of 1024 bits that jose does not verify with.
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    kidlessJwks.keys = [{ ...weak, kid: 'legacy-1024', use: 'sig' } as JWK, { ...(await exportJWK(rsa.old.publicKey)), use: 'sig' }];
    await Promise.all([jwks.start(), kidlessJwks.start()]);
    dir = await makeTempDir('sb-jwt-');
    await writeFile(join(dir, 'hs.secret'), `${SECRET}\n`);
    await writeFile(join(dir, 'es256.pem'), esPem);
    // A JWKS saved to a file with a legacy key jose does not verify with beside a usable one.
    await writeFile(join(dir, 'saved.json'), JSON.stringify({ keys: [{ ...weak, kid: 'legacy-file' }, await exportJWK(rsa.saved.publicKey)] }));
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  api: { instances: [127.0.0.1:${api.port}] }
  admin: { instances: [127.0.0.1:${admin.port}] }
consumers:
  ops-user: { jwt: [{ issuer: "${ISSUER}", subject: user-1 }], labels: { team: ops } }
middlewares:
  jwt:
    jwtAuth:
      algorithms: [HS256, ES256]
      secretFile: ${join(dir, 'hs.secret')}
      publicKeyFiles: [${join(dir, 'es256.pem')}]
      issuer: "${ISSUER}"
      audience: ${AUDIENCE}
      clockSkew: 5s
      claimsToHeaders: { sub: X-User, role: X-Role }
      stripAuthorization: true
  jwks:
    jwtAuth:
      algorithms: [ES256, RS256]
      jwks: { url: "http://127.0.0.1:${jwks.port}/keys", refresh: 1s, cooldown: 0s, timeout: 2s }
      audience: ${AUDIENCE}
      from: { cookie: session }
  kidless:
    jwtAuth:
      algorithms: [RS256]
      publicKeyFiles: [${join(dir, 'saved.json')}]
      jwks: { url: "http://127.0.0.1:${kidlessJwks.port}/keys", refresh: 1h, cooldown: ${KIDLESS_COOLDOWN_MS}ms, timeout: 2s }
routes:
  - { name: admin, path: /admin, service: admin, middlewares: [jwt] }
  - { name: api, path: /api, service: api }
  - { name: jwks, path: /jwks, service: api, middlewares: [jwks] }
  - { name: kidless, path: /kidless, service: api, middlewares: [kidless] }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([api?.process.kill(), admin?.process.kill(), jwks.stop(), kidlessJwks.stop()]);
  });

  it('never lets a dot-segment, duplicate-slash or percent-encoded path reach the admin service without a token', async () => {
    for (const path of ['/admin', '/api/../admin', '/api/%2e%2e/admin', '/api/%2E%2E/admin', '//admin', '/api/..%2Fadmin', '/api/..%2fadmin', '/./admin', '/api/./../admin/x']) {
      const answer = await get(path);
      const reached = answer.status < 300 ? echoed(answer).name : undefined;
      expect({ path, status: answer.status, reached }).toSatisfy(({ status, reached }: { status: number; reached?: string }) => status === 401 || (status === 200 && reached === 'api'));
      expect({ path, reached }).not.toEqual({ path, reached: 'admin' });
    }
    // The same paths with a valid token do reach the admin service: the refusals above were the auth rule's.
    const token = await sign('HS256');
    expect(echoed(await get('/api/../admin', token))).toMatchObject({ name: 'admin', url: '/admin' });
  });

  it('passes valid HS256 and ES256 tokens with their claims as headers and without the Authorization header', async () => {
    for (const alg of ['HS256', 'ES256'] as const) {
      const answer = await get('/admin/report', await sign(alg), { 'x-user': 'spoofed', 'x-consumer': 'spoofed' });
      expect(answer.status).toBe(200);
      const { name, headers } = echoed(answer);
      expect({ alg, name, user: headers['x-user'], role: headers['x-role'], consumer: headers['x-consumer'], authorization: headers.authorization }).toEqual({ alg, name: 'admin', user: 'user-1', role: 'ops', consumer: 'ops-user', authorization: undefined });
    }
  });

  it('sends a claim beyond ASCII upstream as its UTF-8 bytes', async () => {
    const answer = await get('/admin/report', await sign('HS256', { role: 'José 运维' }));
    expect(answer.status).toBe(200);
    // node:http reads header bytes as Latin-1: turned back into bytes, they are the claim's UTF-8.
    expect(Buffer.from(String(echoed(answer).headers['x-role']), 'latin1').toString('utf8')).toBe('José 运维');
  });

  it('refuses expired, wrong-audience, alg-none, key-confusion and tampered tokens with 401, a challenge and the request id', async () => {
    const valid = await sign('HS256');
    const [header, payload, signature] = valid.split('.');
    const tampered = `${header}.${base64url(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), role: 'root' }))}.${signature}`;
    const cases: [string, string, string][] = [
      ['expired', await sign('ES256', {}, { exp: nowS() - 60 }), 'token-expired'],
      ['wrong audience', await sign('HS256', {}, { aud: 'someone-else' }), 'invalid-claims'],
      ['alg none', `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(claims()))}.`, 'algorithm-not-allowed'],
      ['HS secret claiming RS256', hmacForged('RS256', SECRET, claims()), 'algorithm-not-allowed'],
      ['HS secret claiming ES256', hmacForged('ES256', SECRET, claims()), 'invalid-signature'],
      ['HS256 signed with the ES256 public key', hmacForged('HS256', esPem, claims()), 'invalid-signature'],
      ['tampered payload', tampered, 'invalid-signature'],
      ['garbage', 'not.a.jwt', 'invalid-token'],
    ];
    for (const [label, token, reason] of cases) {
      const answer = await get('/admin', token, { 'x-request-id': `case-${reason}` });
      expect({ label, status: answer.status, body: JSON.parse(answer.body) as unknown }).toEqual({ label, status: 401, body: expect.objectContaining({ error: reason, status: 401, requestId: `case-${reason}` }) });
      expect(answer.headers['www-authenticate']).toMatch(/^Bearer realm="switchboard", error="invalid_token"/);
    }
    const missing = await get('/admin');
    expect([missing.status, missing.headers['www-authenticate'], JSON.parse(missing.body).error]).toEqual([401, 'Bearer realm="switchboard"', 'missing-token']);
    // Signed with the HS secret but claiming RS256 on a route that does accept RS256 (from a JWKS): still refused.
    const confused = await send(gateway.port, '/jwks', { cookie: `session=${hmacForged('RS256', SECRET, claims())}` });
    expect(confused.status).toBe(401);
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    expect(sampleValue(metrics, 'switchboard_access_denied_total', { route: 'admin', reason: 'token-expired' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(metrics, 'switchboard_access_denied_total', { route: 'admin', reason: 'invalid-signature' })).toBeGreaterThanOrEqual(3);
    const log = await logOf(gateway.process);
    expect(log).not.toContain(valid.split('.')[2]);
    expect(log).not.toContain(SECRET);
  });

  it('picks up rotated JWKS keys, and keeps verifying with the cached keys while the JWKS server is down', async () => {
    const viaCookie = async (token: string) => (await send(gateway.port, '/jwks/x', { cookie: `theme=dark; session=${token}` })).status;
    // A fresh jti per token: RS256 signatures are deterministic, and an equal token would be a verdict-cache hit.
    const signed = (key: CryptoKey, kid: string, alg: 'ES256' | 'RS256' = 'ES256') =>
      new SignJWT({}).setProtectedHeader({ alg, kid }).setJti(randomUUID()).setAudience(AUDIENCE).setExpirationTime(nowS() + 600).sign(key);
    expect(await viaCookie(await signed(rotated1.privateKey, 'k1'))).toBe(200);
    expect(await viaCookie(await signed(rotated2.privateKey, 'k2', 'RS256'))).toBe(401);
    jwks.keys = [{ ...(await exportJWK(rotated2.publicKey)), kid: 'k2', use: 'sig', alg: 'RS256' }];
    // A token with the new kid makes the gateway fetch again (cooldown 0 s here): it passes now.
    await waitFor(async () => (await viaCookie(await signed(rotated2.privateKey, 'k2', 'RS256'))) === 200, { timeoutMs: 15_000, message: 'a token of the rotated key to pass' });
    expect(await viaCookie(await signed(rotated1.privateKey, 'k1'))).toBe(401);
    await jwks.stop();
    // The keys are older than `refresh` (1 s) by now; a request starts a refresh, which fails and is logged.
    await waitFor(
      async () => {
        expect(await viaCookie(await signed(rotated2.privateKey, 'k2', 'RS256'))).toBe(200);
        return (await logOf(gateway.process)).includes('JWKS fetch failed');
      },
      { timeoutMs: 20_000, intervalMs: 300, message: 'a failed JWKS refresh' },
    );
    // Fresh tokens (not in the verdict cache) still verify with the last keys fetched.
    for (let index = 0; index < 3; index += 1) expect(await viaCookie(await signed(rotated2.privateKey, 'k2', 'RS256'))).toBe(200);
    await jwks.start();
  });

  /** The status of a request to the `kidless` route with a fresh token without a kid signed by `key`. */
  const kidless = async (key: CryptoKey) => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setJti(randomUUID()).setExpirationTime(nowS() + 600).sign(key);
    return (await get('/kidless', token)).status;
  };

  it('skips a JWKS key jose does not verify with, saying which and why, and checks a token without a kid against the others', async () => {
    expect(await kidless(rsa.old.privateKey)).toBe(200);
    const warning = /JWKS \S+: the key \\"legacy-1024\\" is skipped/;
    await waitFor(async () => warning.test(await logOf(gateway.process)), { timeoutMs: 5_000, message: 'the warning about the skipped key' });
    const line = (await logOf(gateway.process)).split('\n').find((entry) => warning.test(entry));
    const url = `http://127.0.0.1:${kidlessJwks.port}/keys`;
    expect(line).toContain(`"url":"${url}","kid":"legacy-1024","reason":"an RSA key of 1024 bits (jose verifies with 2048 bits or more)"`);
    expect(line).toContain(`"msg":"JWKS ${url}: the key \\"legacy-1024\\" is skipped, it cannot verify tokens: an RSA key of 1024 bits (jose verifies with 2048 bits or more)"`);
  });

  it('skips a key file key jose does not verify with beside a usable one, saying which and why, and verifies with the usable one', async () => {
    expect(await kidless(rsa.saved.privateKey)).toBe(200);
    const warning = /saved\.json: the key \\"legacy-file\\" is skipped, it cannot verify tokens: an RSA key of 1024 bits/;
    await waitFor(async () => warning.test(await logOf(gateway.process)), { timeoutMs: 5_000, message: 'the warning about the skipped key' });
    const line = (await logOf(gateway.process)).split('\n').find((entry) => warning.test(entry));
    expect(line).toContain(`"file":"${join(dir, 'saved.json')}","key":"the key \\"legacy-file\\"","reason":"an RSA key of 1024 bits (jose verifies with 2048 bits or more)"`);
    expect(line).toContain(`"msg":"${join(dir, 'saved.json')}: the key \\"legacy-file\\" is skipped, it cannot verify tokens: an RSA key of 1024 bits (jose verifies with 2048 bits or more); the file's other keys are used"`);
  });

  it('fetches the JWKS again, at most once per cooldown, for a token without a kid that no key verifies: a key the provider rotated in passes', async () => {
    expect(await kidless(rsa.old.privateKey)).toBe(200);
    // The provider publishes its next key beside the old one, then signs with it: the gateway's copy
    // (refreshed only every hour) lacks it until a token no key verifies has it fetched again.
    kidlessJwks.keys = [...kidlessJwks.keys, { ...(await exportJWK(rsa.next.publicKey)), use: 'sig' }];
    const fetched = kidlessJwks.fetches;
    let triedAt = 0;
    await waitFor(
      async () => {
        triedAt = performance.now();
        return (await kidless(rsa.next.privateKey)) === 200;
      },
      { timeoutMs: 15_000, message: 'a token of the key rotated in to pass' },
    );
    expect(kidlessJwks.fetches).toBe(fetched + 1);
    // A flood of tokens no key verifies: each is refused, and the JWKS is fetched no more than once per
    // cooldown since that fetch, which came at the earliest when the request that passed was sent.
    for (let index = 0; index < 50; index += 1) expect(await kidless(rsa.stranger.privateKey)).toBe(401);
    expect(kidlessJwks.fetches - fetched - 1).toBeLessThanOrEqual(Math.floor((performance.now() - triedAt) / KIDLESS_COOLDOWN_MS));
  });
});
