import { createHash } from 'node:crypto';
import { hashSync } from 'bcrypt';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { logOf, sendRequest, startBackend, startGateway, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** One request from `host` (127.0.0.1 or ::1) on a fresh connection. */
/** Sends raw bytes and collects the answer until the gateway closes the connection. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
    socket.write(bytes);
  });
}

const send = (port: number, path: string, headers: Record<string, string> = {}, host = '127.0.0.1') => sendRequest(port, path, { headers, host });

const sha256 = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;
const ALICE_KEY = 'alice-key-4f1d9a7c2b8e6053';
const BOB_KEY = 'bob-key-9c3e7a1f5d2b8046';
const CAROL_KEY = 'carol-key-2a6f8c0e4b1d7395';
const UNKNOWN_KEY = 'mallory-key-7e5c3a1f9b2d4068';
const DAVE_PASSWORD = 'dave-pass-8d2b6f0a4c1e9357';
/** As `htpasswd -nbB` writes it: `$2y$` (cost 4, the lowest, to keep the test quick). */
const DAVE_HASH = hashSync(DAVE_PASSWORD, 4).replace(/^\$2b\$/, '$2y$');
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

const IP_MIDDLEWARES = `
  deny-v4: { ipDenyList: { sourceRange: [127.0.0.0/8] } }
  allow-v6-loopback: { ipAllowList: { sourceRange: ["::1"] } }
  allow-mapped: { ipAllowList: { sourceRange: ["::ffff:127.0.0.1"] } }
  allow-ten: { ipAllowList: { sourceRange: [10.0.0.0/8, "fd00::/8"] } }
  allow-depth: { ipAllowList: { sourceRange: [203.0.113.0/24], depth: 2 } }`;
const IP_ROUTES = `
  - { name: deny-v4, path: /ip/deny-v4, service: api, middlewares: [deny-v4] }
  - { name: allow-v6, path: /ip/allow-v6, service: api, middlewares: [allow-v6-loopback] }
  - { name: allow-mapped, path: /ip/allow-mapped, service: api, middlewares: [allow-mapped] }
  - { name: allow-ten, path: /ip/allow-ten, service: api, middlewares: [allow-ten] }
  - { name: allow-depth, path: /ip/allow-depth, service: api, middlewares: [allow-depth] }`;

describe('API keys, consumer limits, IP lists and forward auth in the running gateway', () => {
  let api: BackendProcess;
  let gateway: GatewayProcess;
  let behindProxy: GatewayProcess;
  let authService: Server;
  /** The headers of every request the auth service got, by the request id the client sent. */
  const seenByAuth = new Map<string, IncomingHttpHeaders>();

  beforeAll(async () => {
    api = await startBackend({ name: 'api' });
    authService = createServer((request, response) => {
      seenByAuth.set(String(request.headers['x-request-id']), request.headers);
      const uri = String(request.headers['x-forwarded-uri']);
      // An auth service that decides by path: /guarded/admin is for nobody.
      if (request.headers['x-ticket'] === 'let-me-in' && uri.startsWith('/guarded') && !uri.startsWith('/guarded/admin')) response.writeHead(204, { 'x-auth-user': 'ticket-holder' }).end();
      else if (request.headers['x-ticket'] === 'gzip') response.writeHead(401, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }).end(gzipSync('no ticket, compressed'));
      else if (request.headers['x-ticket'] === 'odd-status') response.writeHead(999, { 'content-type': 'text/plain' }).end('odd');
      // A 2xx whose body never comes whole: cut off by a crash, or still coming when the timeout ends.
      else if (request.headers['x-ticket'] === 'cut-off') response.writeHead(200, { 'content-length': '100', 'x-auth-user': 'cut-off' }).write('{"user":', () => response.socket?.destroy());
      else if (request.headers['x-ticket'] === 'stalled') response.writeHead(200, { 'x-auth-user': 'stalled' }).write('{"user":');
      else response.writeHead(401, { 'www-authenticate': 'Ticket realm="auth"', 'content-type': 'text/plain' }).end('no ticket');
    });
    await new Promise<void>((resolve) => authService.listen(0, '127.0.0.1', resolve));
    // Listening on every address of both families: a client on 127.0.0.1 arrives as ::ffff:127.0.0.1, one on ::1 as ::1.
    gateway = await startGateway(`
listen: "[::]:{{port}}"
admin: 127.0.0.1:{{adminPort}}
services:
  api: { instances: [127.0.0.1:${api.port}] }
consumers:
  alice: { keys: ["${sha256(ALICE_KEY)}"], labels: { plan: free }, rateLimit: { average: 1, period: 1h, burst: 2 } }
  bob: { keys: ["${sha256(BOB_KEY)}"], labels: { plan: pro }, rateLimit: { average: 1, period: 1h, burst: 4 } }
  carol: { keys: ["${sha256(CAROL_KEY)}"] }
  dave: { passwords: ["${DAVE_HASH}"] }
middlewares:
  keys: { keyAuth: { header: X-API-Key, query: api_key } }
  staff: { basicAuth: { realm: staff } }
  per-consumer: { rateLimit: { average: 1, period: 1h, burst: 50, key: consumer } }
  guard: { forwardAuth: { address: "http://127.0.0.1:${(authService.address() as { port: number }).port}/check", authResponseHeaders: [X-Auth-User], timeout: 5s } }
${IP_MIDDLEWARES}
routes:
  - { name: keyed, path: /keyed, service: api, middlewares: [keys, per-consumer] }
  - { name: guarded, path: /guarded, service: api, middlewares: [guard] }
  - { name: keyed-guarded, path: /keyed-guarded, service: api, middlewares: [keys, guard] }
  - { name: staff, path: /staff, service: api, middlewares: [staff] }
${IP_ROUTES}
`);
    behindProxy = await startGateway(`
listen: "[::]:{{port}}"
admin: false
forwarding: { trustedProxies: [loopback] }
services:
  api: { instances: [127.0.0.1:${api.port}] }
middlewares:
  guard: { forwardAuth: { address: "http://127.0.0.1:${(authService.address() as { port: number }).port}/check", timeout: 2s } }
${IP_MIDDLEWARES}
routes:
  - { name: guarded, path: /guarded, service: api, middlewares: [guard] }
${IP_ROUTES}
`);
  });
  afterAll(async () => {
    await Promise.all([gateway?.process.stop(), behindProxy?.process.stop()]);
    await api?.process.kill();
    await new Promise((resolve) => authService?.close(resolve));
  });

  const statuses = async (key: string, count: number) => {
    const seen: number[] = [];
    for (let index = 0; index < count; index += 1) seen.push((await send(gateway.port, '/keyed', { 'x-api-key': key })).status);
    return seen;
  };

  it('gives each API-key consumer its own 429 threshold through a rate limit keyed by consumer', async () => {
    expect(await statuses(ALICE_KEY, 4)).toEqual([200, 200, 429, 429]);
    expect(await statuses(BOB_KEY, 6)).toEqual([200, 200, 200, 200, 429, 429]);
    const passed = await send(gateway.port, '/keyed/me', { 'x-api-key': CAROL_KEY, 'x-consumer': 'alice' });
    const echoed = JSON.parse(passed.body) as { headers: IncomingHttpHeaders };
    // The consumer is named upstream (the client's own X-Consumer is replaced) and the key goes no further.
    expect([passed.status, echoed.headers['x-consumer'], echoed.headers['x-api-key']]).toEqual([200, 'carol', undefined]);
  });

  it('refuses an unknown or missing key with 401, and takes a key from the query without passing it on', async () => {
    const unknown = await send(gateway.port, '/keyed', { 'x-api-key': UNKNOWN_KEY, 'x-request-id': 'unknown-key-1' });
    expect([unknown.status, unknown.headers['www-authenticate'], JSON.parse(unknown.body)]).toEqual([
      401,
      'ApiKey realm="switchboard", header="x-api-key"',
      expect.objectContaining({ error: 'invalid-key', requestId: 'unknown-key-1' }),
    ]);
    const missing = await send(gateway.port, '/keyed');
    expect([missing.status, JSON.parse(missing.body).error]).toEqual([401, 'missing-credentials']);
    const viaQuery = await send(gateway.port, `/keyed/q?a=1&api_key=${CAROL_KEY}&b=2`);
    expect([viaQuery.status, (JSON.parse(viaQuery.body) as { url: string }).url]).toEqual([200, '/keyed/q?a=1&b=2']);
    // The header's key decides; the query's goes no further either, whatever it holds.
    const both = await send(gateway.port, `/keyed/both?a=1&api_key=${ALICE_KEY}&b=2`, { 'x-api-key': CAROL_KEY });
    const bothEchoed = JSON.parse(both.body) as { url: string; headers: IncomingHttpHeaders };
    expect([both.status, bothEchoed.url, bothEchoed.headers['x-api-key'], bothEchoed.headers['x-consumer']]).toEqual([200, '/keyed/both?a=1&b=2', undefined, 'carol']);
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    expect(sampleValue(metrics, 'switchboard_access_denied_total', { route: 'keyed', reason: 'invalid-key' })).toBe(1);
    expect(sampleValue(metrics, 'switchboard_access_denied_total', { route: 'keyed', reason: 'missing-credentials' })).toBe(1);
  });

  it('decides IPv4, IPv6 and IPv4-mapped clients by CIDR without a trusted proxy, ignoring their X-Forwarded-For', async () => {
    const at = (path: string, host: string, headers: Record<string, string> = {}) => send(gateway.port, path, headers, host).then((answer) => answer.status);
    const spoof = { 'x-forwarded-for': '10.1.2.3' };
    expect({
      denyV4: [await at('/ip/deny-v4', '127.0.0.1'), await at('/ip/deny-v4', '::1'), await at('/ip/deny-v4', '127.0.0.1', spoof)],
      allowV6: [await at('/ip/allow-v6', '::1'), await at('/ip/allow-v6', '127.0.0.1')],
      allowMapped: [await at('/ip/allow-mapped', '127.0.0.1'), await at('/ip/allow-mapped', '::1')],
      allowTen: [await at('/ip/allow-ten', '127.0.0.1', spoof), await at('/ip/allow-ten', '::1', { 'x-forwarded-for': 'fd00::1' })],
      depth: [await at('/ip/allow-depth', '127.0.0.1', { 'x-forwarded-for': '203.0.113.5, 10.0.0.1' })],
    }).toEqual({ denyV4: [403, 200, 403], allowV6: [200, 403], allowMapped: [200, 403], allowTen: [403, 403], depth: [403] });
    const denied = await send(gateway.port, '/ip/deny-v4', { 'x-request-id': 'ip-1' });
    expect(JSON.parse(denied.body)).toMatchObject({ error: 'ip-denied', status: 403, requestId: 'ip-1' });
  });

  it('decides by the client a trusted proxy reports, and by X-Forwarded-For depth', async () => {
    const at = (path: string, forwardedFor?: string, host = '127.0.0.1') => send(behindProxy.port, path, forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}, host).then((answer) => answer.status);
    expect({
      denyV4: [await at('/ip/deny-v4', '10.1.2.3'), await at('/ip/deny-v4', '127.0.0.5'), await at('/ip/deny-v4')],
      allowTen: [await at('/ip/allow-ten', '10.1.2.3'), await at('/ip/allow-ten', 'fd00::7', '::1'), await at('/ip/allow-ten', '192.0.2.1'), await at('/ip/allow-ten')],
      allowV6: [await at('/ip/allow-v6', '::1'), await at('/ip/allow-v6', '2001:db8::1', '::1')],
      depth: [await at('/ip/allow-depth', '203.0.113.5, 10.0.0.1'), await at('/ip/allow-depth', '198.51.100.1, 203.0.113.5'), await at('/ip/allow-depth', '203.0.113.5')],
    }).toEqual({ denyV4: [200, 403, 403], allowTen: [200, 200, 403, 403], allowV6: [200, 403], depth: [200, 403, 403] });
  });

  it('takes an X-Forwarded-For entry a trusted proxy wrote with a port (Azure Application Gateway) as its address, and refuses garbage', async () => {
    const at = (path: string, forwardedFor: string, host = '127.0.0.1') => send(behindProxy.port, path, { 'x-forwarded-for': forwardedFor }, host).then((answer) => answer.status);
    expect({
      allowTen: [await at('/ip/allow-ten', '10.1.2.3:5678'), await at('/ip/allow-ten', '[fd00::7]:443', '::1'), await at('/ip/allow-ten', '[fd00::7]', '::1'), await at('/ip/allow-ten', '10.1.2.3:port')],
      depth: [await at('/ip/allow-depth', '203.0.113.5:5678, 10.0.0.1'), await at('/ip/allow-depth', '203.0.113.5:99999, 10.0.0.1')],
    }).toEqual({ allowTen: [200, 200, 200, 403], depth: [200, 403] });
  });

  it('lets a request on when the forward-auth service says 2xx, with its headers, and relays its refusal otherwise', async () => {
    const passed = await send(gateway.port, '/guarded/x', { 'x-ticket': 'let-me-in', 'x-auth-user': 'spoofed' });
    expect([passed.status, (JSON.parse(passed.body) as { headers: IncomingHttpHeaders }).headers['x-auth-user']]).toEqual([200, 'ticket-holder']);
    const refused = await send(gateway.port, '/guarded/x', { 'x-auth-user': 'spoofed' });
    expect([refused.status, refused.headers['www-authenticate'], refused.body]).toEqual([401, 'Ticket realm="auth"', 'no ticket']);
    // The body is relayed as the auth service sent it, so its encoding must be named too
    // (fetch decodes a body whose Content-Encoding it is told.)
    const compressed = await fetch(`http://127.0.0.1:${gateway.port}/guarded/x`, { headers: { 'x-ticket': 'gzip' } });
    expect([compressed.status, compressed.headers.get('content-encoding'), await compressed.text()]).toEqual([401, 'gzip', 'no ticket, compressed']);
  });

  it('gives the auth service the path the upstream gets, so that dot segments cannot take a request past a rule by path', async () => {
    expect((await send(gateway.port, '/guarded/x/../admin', { 'x-ticket': 'let-me-in' })).status).toBe(401);
    expect((await send(gateway.port, '/guarded/./x/%2E%2E/admin?q=1', { 'x-ticket': 'let-me-in' })).status).toBe(401);
    const passed = await send(gateway.port, '/guarded/admin/../x?q=1', { 'x-ticket': 'let-me-in', 'x-request-id': 'normalised-1' });
    expect([passed.status, seenByAuth.get('normalised-1')?.['x-forwarded-uri']]).toEqual([200, '/guarded/x?q=1']);
  });

  it("gives the auth service the forwarding headers of the trusted-proxy rule, never an untrusted client's own", async () => {
    const spoofed = { 'x-real-ip': '10.9.9.9', forwarded: 'for=10.9.9.9', 'x-forwarded-prefix': '/admin', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', 'x-forwarded-for': '10.9.9.9' };
    await send(gateway.port, '/guarded/x', { ...spoofed, host: 'shop.test', 'x-request-id': 'untrusted-1' });
    await send(behindProxy.port, '/guarded/x', { ...spoofed, host: 'shop.test', 'x-request-id': 'trusted-1' });
    const forwardingOf = (id: string) => {
      const headers = seenByAuth.get(id)!;
      return Object.fromEntries(['x-real-ip', 'forwarded', 'x-forwarded-prefix', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-for'].map((name) => [name, headers[name]]));
    };
    expect(forwardingOf('untrusted-1')).toEqual({ 'x-real-ip': '127.0.0.1', forwarded: undefined, 'x-forwarded-prefix': undefined, 'x-forwarded-proto': 'http', 'x-forwarded-host': 'shop.test', 'x-forwarded-for': '127.0.0.1' });
    // A trusted proxy speaks for the client: what it reported reaches the auth service.
    expect(forwardingOf('trusted-1')).toEqual({ ...spoofed, 'x-real-ip': '10.9.9.9', 'x-forwarded-for': '10.9.9.9' });
  });

  it("gives the auth service the headers the upstream gets, the gateway's X-Consumer and none of the client's own", async () => {
    await send(gateway.port, '/keyed-guarded/x', { 'x-api-key': CAROL_KEY, 'x-consumer': 'root', 'x-request-id': 'consumer-1' });
    await send(gateway.port, '/guarded/x', { 'x-consumer': 'root', 'x-request-id': 'consumer-2' });
    const seen = (id: string) => [seenByAuth.get(id)?.['x-consumer'], seenByAuth.get(id)?.['x-api-key']];
    // keyAuth before forwardAuth identified carol and took the key off (strip), as the upstream would see it.
    expect([seen('consumer-1'), seen('consumer-2')]).toEqual([['carol', undefined], [undefined, undefined]]);
  });

  it('gives the auth service the request id the upstream and the client get, the gateway\'s own when the client sent none or an unusable one', async () => {
    for (const sent of [{}, { 'x-request-id': 'not a sane id!' }] as Record<string, string>[]) {
      const passed = await send(gateway.port, '/guarded/x', { 'x-ticket': 'let-me-in', ...sent });
      const id = String(passed.headers['x-request-id']);
      const upstream = (JSON.parse(passed.body) as { headers: IncomingHttpHeaders }).headers;
      expect([passed.status, upstream['x-request-id'], seenByAuth.get(id)?.['x-forwarded-uri']]).toEqual([200, id, '/guarded/x']);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
    // A sane id of the client's is the request's id: all three see it.
    const kept = await send(gateway.port, '/guarded/x', { 'x-ticket': 'let-me-in', 'x-request-id': 'client-id-7' });
    expect([kept.headers['x-request-id'], seenByAuth.get('client-id-7')?.['x-forwarded-uri']]).toEqual(['client-id-7', '/guarded/x']);
  });

  it('refuses with 502 when the forward-auth service answers a status outside 200-599, never relaying it', async () => {
    const odd = await send(gateway.port, '/guarded/x', { 'x-ticket': 'odd-status' });
    expect([odd.status, (JSON.parse(odd.body) as { error: string }).error]).toEqual([502, 'auth-unavailable']);
  });

  it('refuses with 502 when the forward-auth service says 2xx but its answer is cut off or outlasts the timeout, never letting the request on', async () => {
    // Let on, the request would get the backend's 200.
    const cutOff = await send(gateway.port, '/guarded/x', { 'x-ticket': 'cut-off' });
    expect([cutOff.status, (JSON.parse(cutOff.body) as { error: string }).error]).toEqual([502, 'auth-unavailable']);
    // timeout: 2s on this gateway's forwardAuth.
    const stalled = await send(behindProxy.port, '/guarded/x', { 'x-ticket': 'stalled' });
    expect([stalled.status, (JSON.parse(stalled.body) as { error: string }).error]).toEqual([502, 'auth-unavailable']);
  });

  it('lets a consumer in with its htpasswd (bcrypt) password over Basic authentication, naming it upstream without the header, and refuses others', async () => {
    const passed = await send(gateway.port, '/staff/x', { ...basic('dave', DAVE_PASSWORD), 'x-consumer': 'alice' });
    const echoed = JSON.parse(passed.body) as { headers: IncomingHttpHeaders };
    expect([passed.status, echoed.headers['x-consumer'], echoed.headers.authorization]).toEqual([200, 'dave', undefined]);
    for (const [headers, reason] of [[basic('dave', 'guess'), 'invalid-credentials'], [basic('carol', DAVE_PASSWORD), 'invalid-credentials'], [{}, 'missing-credentials']] as const) {
      const refused = await send(gateway.port, '/staff/x', headers);
      expect([refused.status, refused.headers['www-authenticate'], JSON.parse(refused.body).error]).toEqual([401, 'Basic realm="staff", charset="UTF-8"', reason]);
    }
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    expect(sampleValue(metrics, 'switchboard_access_denied_total', { route: 'staff', reason: 'invalid-credentials' })).toBe(2);
    // The admin API shows the consumer, never its password hash.
    const config = JSON.stringify(await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/config`)).json());
    expect(config).toContain('dave');
    expect(config).not.toContain(DAVE_HASH.slice(7));
  });

  it('never writes a key into the gateway log, access log included (last: it stops the gateway)', async () => {
    // A head the listener refuses (417) with an absolute-form target: its userinfo and key must not be logged either.
    const refused = await rawExchange(gateway.port, `GET http://alice:${UNKNOWN_KEY}@a.test/keyed/refused?api_key=${BOB_KEY} HTTP/1.1\r\nHost: a.test\r\nExpect: bogus\r\n\r\n`);
    expect(refused).toMatch(/^HTTP\/1\.1 417 /);
    // The access log is buffered until shutdown: stop the gateway to read every line it wrote.
    await gateway.process.stop();
    const log = await logOf(gateway.process);
    // The access log is on: the requests above are in it, but no key is.
    expect(log).toContain('/keyed/q?a=1&b=2');
    expect(log).toContain('"path":"/keyed/refused","status":417');
    for (const key of [ALICE_KEY, BOB_KEY, CAROL_KEY, UNKNOWN_KEY, DAVE_PASSWORD]) expect(log).not.toContain(key);
  });
});
