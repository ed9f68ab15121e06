import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { refusingPort, http2Request, logOf, makeTempDir, removeTempDir, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

const PAGE_5XX = '<h1>Something broke on our side</h1>';
const PAGE_503 = '<h1>Back in a moment</h1>';
const PAGE_404 = '<h1>No such page</h1>';

describe('errors: custom error pages for upstream answers and the gateway’s own', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let dir: string;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    dir = await makeTempDir('sb-errors-');
    await writeFile(join(dir, '5xx.html'), PAGE_5XX);
    await writeFile(join(dir, '503.html'), PAGE_503);
    await writeFile(join(dir, '404.html'), PAGE_404);
    const closedPort = await refusingPort();
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: 127.0.0.1:{{adminPort}}
accessLog: true
services:
  api: { instances: [127.0.0.1:${backend.port}], healthCheck: false, outlierDetection: false }
  refused: { instances: [127.0.0.1:${closedPort}], healthCheck: false, outlierDetection: false, retries: false }
  empty: {}
middlewares:
  pages: { errors: { pages: { "5xx": ${join(dir, '5xx.html')}, "503": ${join(dir, '503.html')} } } }
  not-found: { errors: { pages: { "404": ${join(dir, '404.html')} } } }
  kept: { cache: { maxSize: 1MiB, defaultTtl: 1m } }
routes:
  - { name: api, path: /api, service: api, middlewares: [pages] }
  - { name: plain, path: /plain, service: api }
  - { name: refused, path: /refused, service: refused, middlewares: [pages] }
  - { name: empty, path: /empty, service: empty, middlewares: [pages] }
  - { name: trickle, path: /trickle, service: api, middlewares: [pages], timeouts: { idleBody: 2s } }
  - { name: cached, path: /cached, service: api, middlewares: [not-found, kept] }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'api')?.instances.length === 1, { message: 'the api service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
    if (dir) await removeTempDir(dir);
  });

  const accessLine = (path: string) =>
    waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"requestId"') && text.includes(`"path":"${path}"`)), {
      message: `the access log line of ${path}`,
    }).then((line) => JSON.parse(line) as Record<string, unknown>);

  it("gives an upstream's 500 the page's body and type, keeping its status and its other headers, the access log the upstream's answer", async () => {
    const answer = await sendRequest(gateway.port, '/api/status/500');
    expect(answer, await logOf(gateway.process)).toMatchObject({ status: 500, body: PAGE_5XX });
    expect(answer.headers).toMatchObject({ 'content-type': 'text/html; charset=utf-8', 'content-length': String(PAGE_5XX.length), 'x-upstream': 'kept' });
    // The validator was the upstream's body's, not the page's.
    expect(answer.headers.etag).toBeUndefined();
    expect(await accessLine('/api/status/500')).toMatchObject({ status: 500, upstream: `127.0.0.1:${backend.port}`, bytes: PAGE_5XX.length });
    // The upstream's answer is counted against it as before: one request, one 5xx.
    const instance = (await admin.services()).find((service) => service.name === 'api')!.instances[0]!;
    expect([instance.requests, instance.errors]).toEqual([1, 1]);
  });

  it('leaves a status no page stands for (404), and a route without the middleware, as the upstream sent them', async () => {
    const notFound = await sendRequest(gateway.port, '/api/status/404');
    expect(notFound).toMatchObject({ status: 404, body: `status 404 from api` });
    expect(notFound.headers).toMatchObject({ 'content-type': 'text/plain', etag: '"upstream-page"' });
    expect(await sendRequest(gateway.port, '/plain/status/500')).toMatchObject({ status: 500, body: 'status 500 from api' });
  });

  it("gives the gateway's own 503 (no instance) the most specific page, keeping Retry-After, and its own 502 (refused) the 5xx page", async () => {
    const empty = await sendRequest(gateway.port, '/empty/x');
    expect(empty).toMatchObject({ status: 503, body: PAGE_503 });
    expect(empty.headers).toMatchObject({ 'content-type': 'text/html; charset=utf-8', 'content-length': String(PAGE_503.length), 'retry-after': '1' });
    expect(await accessLine('/empty/x')).toMatchObject({ status: 503, errorClass: 'no-instances' });
    const refused = await sendRequest(gateway.port, '/refused/x');
    expect(refused).toMatchObject({ status: 502, body: PAGE_5XX });
    expect(await accessLine('/refused/x')).toMatchObject({ status: 502, errorClass: 'connect-refused' });
  });

  it('gives the pages over HTTP/2 too', async () => {
    const upstream = await http2Request(gateway.port, '/api/h2/status/500');
    expect([upstream.status, upstream.headers['content-type'], upstream.body]).toEqual([500, 'text/html; charset=utf-8', PAGE_5XX]);
    const own = await http2Request(gateway.port, '/empty/h2');
    expect([own.status, own.headers['retry-after'], own.body]).toEqual([503, '1', PAGE_503]);
  });

  it("sends the page on the upstream's head, never waiting for an error body that has not ended, and whole when that body then breaks", async () => {
    // nginx's proxy_intercept_errors answers on the head too: the page is in memory, the upstream's body is not the client's to wait for.
    expect(await sendRequest(gateway.port, '/api/status/500/open/errors-open')).toMatchObject({ status: 500, body: PAGE_5XX });
    await sendRequest(backend.port, '/release/errors-open', { method: 'POST' });
    // The upstream's body was still read to its end (its connection kept), and the request logged with the page's bytes.
    expect(await accessLine('/api/status/500/open/errors-open')).toMatchObject({ status: 500, bytes: PAGE_5XX.length });
    expect(await sendRequest(gateway.port, '/api/status/502/cut')).toMatchObject({ status: 502, body: PAGE_5XX });
    expect(await http2Request(gateway.port, '/api/h2/status/502/cut')).toMatchObject({ status: 502, body: PAGE_5XX });
  });

  it("cuts an error body that trickles on behind its page once the route's idle-body timeout has passed in all, not between chunks", async () => {
    // A byte every 50 ms would keep a 2 s idle timeout from ever passing: nobody reads this body, so its time is bounded in all.
    expect(await sendRequest(gateway.port, '/trickle/status/503/trickle')).toMatchObject({ status: 503, body: PAGE_503 });
    expect(await accessLine('/trickle/status/503/trickle')).toMatchObject({ status: 503, errorClass: 'body-timeout', bytes: PAGE_503.length });
  });

  it("answers HEAD with the status and the page's head, and no body", async () => {
    for (const path of ['/api/status/500', '/empty/head']) {
      const answer = await sendRequest(gateway.port, path, { method: 'HEAD' });
      expect([answer.status, answer.body, answer.headers['content-type']]).toEqual([path.startsWith('/api') ? 500 : 503, '', 'text/html; charset=utf-8']);
    }
  });

  it("stores an upstream's storable 404 in a cache the errors layer is around, as nginx's cache keeps an error it intercepts: the hits get the page too, and the upstream is asked once", async () => {
    const requestsOf = async () => (await admin.services()).find((service) => service.name === 'api')!.instances[0]!.requests;
    const before = await requestsOf();
    const miss = await sendRequest(gateway.port, '/cached/status/404');
    expect([miss.status, miss.body, miss.headers['x-cache-status']]).toEqual([404, PAGE_404, 'MISS']);
    // The client had its page on the upstream's head; the upstream's body is read on into the cache behind it.
    await waitFor(async () => sampleValue(await admin.metrics(), 'switchboard_cache_entries', { middleware: 'kept' }) === 1, { message: 'the 404 stored' });
    const hit = await sendRequest(gateway.port, '/cached/status/404');
    expect([hit.status, hit.body, hit.headers['x-cache-status'], hit.headers['content-type']]).toEqual([404, PAGE_404, 'HIT', 'text/html; charset=utf-8']);
    const overHttp2 = await http2Request(gateway.port, '/cached/status/404');
    expect([overHttp2.status, overHttp2.body, overHttp2.headers['x-cache-status']]).toEqual([404, PAGE_404, 'HIT']);
    // An HTTP/2 client's miss, its stream answered on the head, stores the answer too.
    const h2Miss = await http2Request(gateway.port, '/cached/h2/status/404');
    expect([h2Miss.status, h2Miss.body, h2Miss.headers['x-cache-status']]).toEqual([404, PAGE_404, 'MISS']);
    await waitFor(async () => sampleValue(await admin.metrics(), 'switchboard_cache_entries', { middleware: 'kept' }) === 2, { message: 'the HTTP/2 miss stored' });
    expect((await sendRequest(gateway.port, '/cached/h2/status/404')).headers['x-cache-status']).toBe('HIT');
    expect((await requestsOf()) - before).toBe(2);
  });
});
