import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, sendRequest, startBackend, startGateway, type BackendProcess, type GatewayProcess, type HttpAnswer } from '../harness/index.ts';

const SECRET = 'an-hmac-secret-of-at-least-thirty-two-bytes!';
const KEY = 'alice-key-4f1d9a7c2b8e6053';

/** The header names of `headers` that CGI-style upstreams (PHP, Rack, WSGI) read as `HTTP_<name>`, with that value. */
const asCgiVariables = (headers: IncomingHttpHeaders) => Object.entries(headers).map(([name, value]) => [`HTTP_${name.toUpperCase().replaceAll('-', '_')}`, value] as const);

/**
 * Every header the gateway states upstream (a consumer, a claim, the auth service's word, the
 * client's address, a route's own header) is the only one of its CGI variable the upstream gets:
 * a client's `X_User` beside the gateway's `X-User` is the same `HTTP_X_USER` to PHP or Django.
 */
describe('the headers the gateway sets, against a client that spells them with underscores', () => {
  let api: BackendProcess;
  let canary: BackendProcess;
  let gateway: GatewayProcess;
  let authService: Server;
  const seenByAuth = new Map<string, IncomingHttpHeaders>();

  beforeAll(async () => {
    [api, canary] = await Promise.all([startBackend({ name: 'api' }), startBackend({ name: 'canary' })]);
    authService = createServer((request, response) => {
      seenByAuth.set(String(request.headers['x-request-id']), request.headers);
      response.writeHead(204, { 'x-auth-user': 'ticket-holder' }).end();
    });
    await new Promise<void>((resolve) => authService.listen(0, '127.0.0.1', resolve));
    const dir = await makeTempDir('sb-spellings-');
    await writeFile(join(dir, 'hs.secret'), SECRET);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
services:
  api: { instances: [127.0.0.1:${api.port}] }
  versions: { instances: [{ host: 127.0.0.1, port: ${api.port}, id: v1, metadata: { version: v1 } }, { host: 127.0.0.1, port: ${canary.port}, id: v2, metadata: { version: v2 } }] }
consumers:
  alice: { keys: ["sha256:${createHash('sha256').update(KEY).digest('hex')}"] }
middlewares:
  keys: { keyAuth: { header: X-API-Key } }
  jwt: { jwtAuth: { algorithms: [HS256], secretFile: ${join(dir, 'hs.secret')}, claimsToHeaders: { sub: X-User, tenant: X_Tenant_Id } } }
  guard: { forwardAuth: { address: "http://127.0.0.1:${(authService.address() as { port: number }).port}/check", authResponseHeaders: [X-Auth-User], timeout: 5s } }
routes:
  - { name: keyed, path: /keyed, service: api, middlewares: [keys] }
  - { name: jwt, path: /jwt, service: api, middlewares: [jwt] }
  - { name: guarded, path: /guarded, service: api, middlewares: [guard] }
  - { name: edited, path: /edited, service: api, requestHeaders: { set: { X-Role: reader }, remove: [X-Internal-Token] } }
  - { name: tenant-a, path: /tenant, headers: { X-Tenant: a }, service: api }
  - { name: zoned, path: /zoned, headers: { X_Zone: eu }, service: api }
  - name: canary
    path: /canary
    service: versions
    canary: { by: version, split: { v1: 100, v2: 0 }, lanes: [{ header: X-Canary, value: "on", to: v2 }] }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await api?.process.kill();
    await canary?.process.kill();
    await new Promise((resolve) => authService?.close(resolve));
  });

  const upstreamOf = (answer: HttpAnswer) => {
    expect(answer.status).toBe(200);
    return (JSON.parse(answer.body) as { headers: IncomingHttpHeaders }).headers;
  };
  /** The CGI variables among `names` the upstream got, with every value it got for each. */
  const variables = (headers: IncomingHttpHeaders, names: readonly string[]) => {
    const found: Record<string, unknown[]> = {};
    for (const [variable, value] of asCgiVariables(headers)) if (names.includes(variable)) (found[variable] ??= []).push(value);
    return found;
  };

  it('sends the identified consumer and the forwarding headers without the client\'s X_Consumer, X_Forwarded_For or X_Real_IP', async () => {
    const forged = { X_Consumer: 'root', X_Forwarded_For: '10.0.0.1', 'X-Forwarded_Proto': 'https', X_Forwarded_Host: 'admin.test', X_Real_IP: '10.0.0.1', X_Other: 'kept' };
    const headers = upstreamOf(await sendRequest(gateway.port, '/keyed/x', { headers: { ...forged, 'x-api-key': KEY, host: 'shop.test' } }));
    expect(variables(headers, ['HTTP_X_CONSUMER', 'HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_PROTO', 'HTTP_X_FORWARDED_HOST', 'HTTP_X_REAL_IP', 'HTTP_X_OTHER'])).toEqual({
      HTTP_X_CONSUMER: ['alice'],
      HTTP_X_FORWARDED_FOR: ['127.0.0.1'],
      HTTP_X_FORWARDED_PROTO: ['http'],
      HTTP_X_FORWARDED_HOST: ['shop.test'],
      HTTP_X_REAL_IP: ['127.0.0.1'],
      // A header the gateway does not set is the client's to send, underscores and all.
      HTTP_X_OTHER: ['kept'],
    });
  });

  it("sends a token's claims without the client's spellings of their headers, either way round", async () => {
    const token = await new SignJWT({ tenant: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setSubject('user-1').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
    const forged = { X_User: 'admin', 'x-User_': 'other', 'X-Tenant-Id': 'evil', authorization: `Bearer ${token}` };
    const headers = upstreamOf(await sendRequest(gateway.port, '/jwt/x', { headers: forged }));
    expect(variables(headers, ['HTTP_X_USER', 'HTTP_X_USER_', 'HTTP_X_TENANT_ID'])).toEqual({ HTTP_X_USER: ['user-1'], HTTP_X_USER_: ['other'], HTTP_X_TENANT_ID: ['acme'] });
  });

  it("sends the auth service's headers without the client's X_Auth_User, and the auth service the gateway's X-Forwarded-Uri alone", async () => {
    const forged = { X_Auth_User: 'admin', X_Forwarded_Uri: '/public', X_Forwarded_Method: 'GET', 'x-request-id': 'spelt-1' };
    const headers = upstreamOf(await sendRequest(gateway.port, '/guarded/admin', { method: 'DELETE', headers: forged }));
    expect(variables(headers, ['HTTP_X_AUTH_USER'])).toEqual({ HTTP_X_AUTH_USER: ['ticket-holder'] });
    expect(variables(seenByAuth.get('spelt-1')!, ['HTTP_X_AUTH_USER', 'HTTP_X_FORWARDED_URI', 'HTTP_X_FORWARDED_METHOD'])).toEqual({ HTTP_X_FORWARDED_URI: ['/guarded/admin'], HTTP_X_FORWARDED_METHOD: ['DELETE'] });
  });

  it("sends no X-Forwarded-Uri, -Method or -Tls-Client-Cert of an untrusted client's to the upstream, in any spelling", async () => {
    // An upstream behind the gateway (Authelia, oauth2-proxy, an app written for Traefik) takes these from its proxy: a client must not write them.
    const forged = { 'X-Forwarded-Uri': '/public', X_Forwarded_Method: 'GET', 'X-Forwarded-Tls-Client-Cert': 'forged', 'X-Forwarded-Tls-Client-Cert-Info': 'Subject="CN=admin"' };
    const headers = upstreamOf(await sendRequest(gateway.port, '/edited/admin', { method: 'DELETE', headers: forged }));
    expect(variables(headers, ['HTTP_X_FORWARDED_URI', 'HTTP_X_FORWARDED_METHOD', 'HTTP_X_FORWARDED_TLS_CLIENT_CERT', 'HTTP_X_FORWARDED_TLS_CLIENT_CERT_INFO'])).toEqual({});
  });

  it("sends a route's set header without the client's spelling of it, and removes every spelling of a removed one", async () => {
    const headers = upstreamOf(await sendRequest(gateway.port, '/edited/x', { headers: { X_Role: 'admin', X_Internal_Token: 'forged', 'X-Internal-Token': 'forged' } }));
    expect(variables(headers, ['HTTP_X_ROLE', 'HTTP_X_INTERNAL_TOKEN'])).toEqual({ HTTP_X_ROLE: ['reader'] });
  });

  it("sends the header a route matched on without the client's other spellings of it, which the router never looked at", async () => {
    // Either order: a CGI-style upstream takes one of them for HTTP_X_TENANT, often the last.
    for (const forged of [{ 'X-Tenant': 'a', X_Tenant: 'b', 'x-Tenant_': 'c' }, { X_Tenant: 'b', 'x-Tenant_': 'c', 'X-Tenant': 'a' }]) {
      const headers = upstreamOf(await sendRequest(gateway.port, '/tenant/x', { headers: forged }));
      expect(variables(headers, ['HTTP_X_TENANT', 'HTTP_X_TENANT_'])).toEqual({ HTTP_X_TENANT: ['a'], HTTP_X_TENANT_: ['c'] });
    }
    // A condition spelt with `_` keeps that spelling and drops the dashed one.
    const zoned = upstreamOf(await sendRequest(gateway.port, '/zoned/x', { headers: { 'X-Zone': 'us', X_Zone: 'eu' } }));
    expect(variables(zoned, ['HTTP_X_ZONE'])).toEqual({ HTTP_X_ZONE: ['eu'] });
    // Another spelling alone is not the header the route matches on.
    expect((await sendRequest(gateway.port, '/tenant/x', { headers: { X_Tenant: 'a' } })).status).toBe(404);
  });

  it("sends the header a canary lane chose the upstream by without the client's other spellings of it, lane taken or not", async () => {
    const nameOf = (answer: HttpAnswer) => (JSON.parse(answer.body) as { name: string }).name;
    for (const [forged, backend, expected] of [
      [{ 'X-Canary': 'on', X_Canary: 'off' }, 'canary', { HTTP_X_CANARY: ['on'] }],
      [{ X_Canary: 'on', 'X-Canary': 'off' }, 'api', { HTTP_X_CANARY: ['off'] }],
      [{ X_Canary: 'on' }, 'api', {}],
    ] as const) {
      const answer = await sendRequest(gateway.port, '/canary/x', { headers: forged });
      expect(nameOf(answer), JSON.stringify(forged)).toBe(backend);
      expect(variables(upstreamOf(answer), ['HTTP_X_CANARY']), JSON.stringify(forged)).toEqual(expected);
    }
  });
});
