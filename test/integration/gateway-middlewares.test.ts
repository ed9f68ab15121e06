import { get as httpGet } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { logOf, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** One request on a fresh connection (node:http, so that Host can be set). */
const send = sendRequest;

describe('named middleware in the running gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  // Nothing refills during the test: one token an hour.
  const LIMIT = (burst: number) => `limit: { rateLimit: { average: 1, period: 1h, burst: ${burst} } }`;
  const config = (options: { limit?: string | false; extraRoutes?: string; extraServices?: string } = {}) => `
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
services:
  api: { instances: [127.0.0.1:${backend.port}] }
${options.extraServices ?? ''}
middlewares:
  to-https: { redirectScheme: { scheme: https, port: 8443, permanent: true } }
  hsts: { hsts: { maxAge: 1y, includeSubDomains: true } }
  downloads: { inFlightReq: { amount: 2 } }
  moved: { redirectRegex: { regex: '^http://([^/]+)/moved/(.*)$', replacement: 'https://$1/new/$2', permanent: true } }
  frame-deny: { headers: { response: { set: { X-Frame-Options: DENY } } } }
  api-cors: { cors: { allowOrigins: ["https://app.test"], allowMethods: [GET, PUT], allowHeaders: [X-Tenant], allowCredentials: true, maxAge: 10m } }
  ${options.limit === false ? '' : (options.limit ?? LIMIT(3))}
routes:
  - { path: /limited, service: api${options.limit === false ? '' : ', middlewares: [limit]'} }
  - { path: /old, service: api, middlewares: [to-https] }
  - { path: /hsts, service: api, middlewares: [hsts] }
  - { path: /cors, service: api, middlewares: [api-cors] }
  - { path: /plain, service: api }
  - { path: /dl, service: api, stripPrefix: true, middlewares: [downloads] }
  - { path: /moved, service: api, middlewares: [frame-deny, moved] }
${options.extraRoutes ?? ''}
`;
  const get = (path: string, options?: Parameters<typeof send>[2]) => send(gateway.port, path, options);
  const statuses = async (count: number) => {
    const seen: number[] = [];
    for (let index = 0; index < count; index += 1) seen.push((await get('/limited')).status);
    return seen;
  };
  /** Rewrites the file and waits until the marker route answers, which proves the reload was applied. */
  const reload = async (marker: string, options: Parameters<typeof config>[0]) => {
    await gateway.writeConfig(config({ ...options, extraRoutes: `  - { path: /${marker}, service: api }\n${options?.extraRoutes ?? ''}` }));
    await waitFor(async () => (await get(`/${marker}`)).status === 200, { timeoutMs: 15_000, message: `the reload that adds /${marker}` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  };

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    gateway = await startGateway(config());
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('limits a route to its burst, answering 429 with Retry-After and the X-RateLimit headers', async () => {
    const passed = [await get('/limited'), await get('/limited'), await get('/limited')];
    expect(passed.map((answer) => [answer.status, answer.headers['x-ratelimit-limit'], answer.headers['x-ratelimit-remaining']])).toEqual([
      [200, '3', '2'],
      [200, '3', '1'],
      [200, '3', '0'],
    ]);
    const refused = await get('/limited');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(3_500);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(3_600);
    expect(refused.headers).toMatchObject({ 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '0', 'content-type': 'application/json' });
    expect(Number(refused.headers['x-ratelimit-reset'])).toBeGreaterThan(3 * 3_500);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'rate-limited', status: 429, service: 'api' });
    // A route without the middleware is not limited and carries no limit headers.
    const plain = await get('/plain');
    expect([plain.status, plain.headers['x-ratelimit-limit']]).toEqual([200, undefined]);
  });

  it('keeps the buckets across a reload that changes only other routes and services', async () => {
    await reload('unrelated', { extraServices: `  other: { instances: [127.0.0.1:${backend.port}] }` });
    expect(await statuses(3)).toEqual([429, 429, 429]);
  });

  it('starts fresh buckets when the limit settings change', async () => {
    await reload('burst-5', { limit: LIMIT(5) });
    expect(await statuses(6)).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('starts fresh buckets when the middleware is removed and declared again with the same settings', async () => {
    await reload('removed', { limit: false });
    const unlimited = await get('/limited');
    expect([unlimited.status, unlimited.headers['x-ratelimit-limit']]).toEqual([200, undefined]);
    await reload('re-added', { limit: LIMIT(5) });
    expect(await statuses(6)).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('redirects plain HTTP to https with the host, the port set, the path and the query', async () => {
    const headers = { host: `shop.test:${gateway.port}` };
    const moved = await get('/old/item?id=7&x=%20', { headers });
    expect([moved.status, moved.headers.location]).toEqual([301, 'https://shop.test:8443/old/item?id=7&x=%20']);
    const posted = await get('/old/form', { method: 'POST', headers });
    expect([posted.status, posted.headers.location]).toEqual([308, 'https://shop.test:8443/old/form']);
  });

  it('redirects what redirectRegex matches, with the groups put in the Location and the response headers of the layers before it, and passes the rest upstream', async () => {
    const headers = { host: `shop.test:${gateway.port}` };
    const moved = await get('/moved/item?id=7', { headers });
    expect([moved.status, moved.headers.location, moved.headers['x-frame-options']]).toEqual([301, `https://shop.test:${gateway.port}/new/item?id=7`, 'DENY']);
    const posted = await get('/moved/form', { method: 'POST', headers });
    expect([posted.status, posted.headers.location, posted.headers['x-frame-options']]).toEqual([308, `https://shop.test:${gateway.port}/new/form`, 'DENY']);
    // `/moved` alone has no `/` after it: no match, so the upstream answers.
    const unmatched = await get('/moved', { headers });
    expect([unmatched.status, JSON.parse(unmatched.body).url, unmatched.headers['x-frame-options']]).toEqual([200, '/moved', 'DENY']);
  });

  it('answers a CORS preflight itself and grants the listed origin on the upstream answer', async () => {
    const preflight = { method: 'OPTIONS', headers: { origin: 'https://app.test', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-tenant' } };
    // The upstream's echo would be a 200 with a body.
    const answered = await get('/cors/items', preflight);
    expect([answered.status, answered.body]).toEqual([204, '']);
    expect(answered.headers).toMatchObject({ 'access-control-allow-origin': 'https://app.test', 'access-control-allow-methods': 'GET, PUT', 'access-control-allow-headers': 'x-tenant', 'access-control-allow-credentials': 'true', 'access-control-max-age': '600' });
    expect((await get('/cors/items', { ...preflight, headers: { ...preflight.headers, origin: 'https://evil.test' } })).status).toBe(403);
    const served = await get('/cors/items', { headers: { origin: 'https://app.test' } });
    expect(served.status).toBe(200);
    expect(JSON.parse(served.body)).toMatchObject({ method: 'GET', url: '/cors/items' });
    expect(served.headers).toMatchObject({ 'access-control-allow-origin': 'https://app.test', 'access-control-allow-credentials': 'true', vary: 'Origin' });
    const foreign = await get('/cors/items', { headers: { origin: 'https://evil.test' } });
    expect([foreign.status, foreign.headers['access-control-allow-origin']]).toEqual([200, undefined]);
  });

  it('does not send HSTS on a plain connection', async () => {
    const answer = await get('/hsts');
    expect([answer.status, answer.headers['strict-transport-security']]).toEqual([200, undefined]);
  });

  it('lets a client have two requests in flight through inFlightReq, a WebSocket counted until it closes, and answers the next 429 at once', async () => {
    /** A request whose answer has begun (the backend streams its first line); `ended` resolves with the whole body. */
    const started = (path: string) =>
      new Promise<{ status: number; ended: Promise<string> }>((resolve, reject) => {
        httpGet({ host: '127.0.0.1', port: gateway.port, path, agent: false }, (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          resolve({ status: response.statusCode ?? 0, ended: new Promise((done, fail) => response.on('end', () => done(body)).on('error', fail)) });
        }).on('error', reject);
      });
    const release = (key: string) => fetch(`http://127.0.0.1:${backend.port}/release/${key}`, { method: 'POST' });
    const first = await started('/dl/stream/if-1');
    const second = await started('/dl/stream/if-2');
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await get('/dl/echo');
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'in-flight-limit', status: 429, service: 'api' });
    // Other routes are not limited.
    expect((await get('/plain')).status).toBe(200);

    await release('if-1');
    expect(await first.ended).toMatch(/second\n$/);
    // The slot comes free once the gateway has finished with the answer, which may trail the client's last byte.
    await waitFor(async () => (await get('/dl/echo')).status === 200, { timeoutMs: 10_000, message: 'a request let in once one finished' });

    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/dl/ws`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    expect((await get('/dl/echo')).status).toBe(429);
    socket.close();
    await waitFor(async () => (await get('/dl/echo')).status === 200, { timeoutMs: 10_000, message: 'a request let in once the WebSocket closed' });
    await release('if-2');
    expect(await second.ended).toMatch(/second\n$/);
  });
});
