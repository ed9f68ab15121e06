import { connect as connectHttp2 } from 'node:http2';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** 4 KiB, over the test's maxEntrySize (1 KiB). */
const BIG = Buffer.alloc(4 * 1024, 'x');

/** 1000 bytes, within the test's maxEntrySize, that show which part of them a client got. */
const VIDEO = Buffer.from('0123456789'.repeat(100));

/** Requests the backend got, by method and path. */
const counts = new Map<string, number>();
const countOf = (path: string, method = 'GET'): number => counts.get(`${method} ${path}`) ?? 0;

/** The If-None-Match of each request for /etag the backend got, in order (undefined: none). */
const etagAsked: (string | undefined)[] = [];

/** The If-None-Match and If-Modified-Since of each request for a `/validated-*` path the backend got, in order. */
const validatorsAsked = new Map<string, (string | undefined)[]>();

/** The answers waiting for the test to cut them. */
const dyingAnswers = new Set<ServerResponse>();

/** The first answer for /head-cut, once its first bytes were handed to the kernel: the test cuts it there. */
const headCut: Promise<ServerResponse>[] = [];

/** The answers the backend started and holds, unfinished. */
const heldAnswers = new Set<ServerResponse>();

/** One promise per request for /long-video, settled when the gateway closed its connection. */
const longVideoClosed: Promise<unknown>[] = [];

/** One promise per request for /long-head, settled when the gateway closed its connection. */
const longHeadClosed: Promise<unknown>[] = [];

/** The requests for /background after its first (its background updates) the backend holds, no head sent, until the test answers them. */
const backgroundHeld: ServerResponse[] = [];

/** The requests for /hung after its first (its background updates), never answered: each settles its promise once the gateway closed it. */
const hungUpdates: Promise<number>[] = [];

/** The requests for /updating the backend holds, no head sent, until the test answers them. */
const updatingHeld: ServerResponse[] = [];

/** The backend's answers by path; each body names the request's number so that a stale copy shows. */
function answer(path: string, method: string, headers: IncomingHttpHeaders, response: ServerResponse): void {
  const key = `${method} ${path}`;
  const n = (counts.get(key) ?? 0) + 1;
  counts.set(key, n);
  const text = (extra: Record<string, string>, body = `${path} answer ${n}`) =>
    void response.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...extra }).end(method === 'HEAD' ? undefined : body);
  switch (path) {
    case '/fresh':
    case '/head-first':
    case '/head-miss':
    case '/head-h2':
    case '/head-kept-off':
    case '/no-cache-request':
    case '/authorized-public':
      return text({ 'cache-control': 'max-age=60' });
    case '/no-store':
      return text({ 'cache-control': 'no-store, max-age=60' });
    case '/private':
      return text({ 'cache-control': 'private, max-age=60' });
    case '/private-page':
      // Not to be stored, its ETag the one a browser revalidates its own copy with.
      return text({ 'cache-control': 'private, max-age=60', etag: '"page"' });
    case '/cookie':
      return text({ 'cache-control': 'max-age=60', 'set-cookie': 'session=abc' });
    case '/authorized':
      return text({ 'cache-control': 'max-age=60' });
    case '/no-freshness':
      return text({});
    case '/vary':
      return text({ 'cache-control': 'max-age=60', vary: 'Accept-Encoding' }, `variant for ${headers['accept-encoding'] ?? 'none'} ${n}`);
    case '/long-video':
      // 4 KiB announced and not to be stored; its first 100 bytes come at once, the rest never.
      response.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'no-store', 'content-length': BIG.length, etag: '"video"' });
      response.write(BIG.subarray(0, 100));
      return void longVideoClosed.push(new Promise((resolve) => response.once('close', resolve)));
    case '/long-head':
      // As /long-video: 4 KiB announced, not to be stored, the rest of it never sent.
      response.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'no-store', 'content-length': BIG.length });
      response.write(BIG.subarray(0, 100));
      return void longHeadClosed.push(new Promise((resolve) => response.once('close', resolve)));
    case '/head-cut':
      // The first answer breaks off after 100 of its 1000 bytes; the next is whole.
      if (n > 1) return text({ 'cache-control': 'max-age=60' });
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'content-length': 1000 });
      return void headCut.push(new Promise((resolve) => response.write(BIG.subarray(0, 100), () => resolve(response))));
    case '/big':
      return void response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end(BIG);
    case '/item':
      if (method === 'POST') return void response.writeHead(201, { 'content-type': 'text/plain' }).end(`created ${n}`);
      return text({ 'cache-control': 'max-age=60' });
    case '/over-h2':
    case '/aside':
    case '/h2c-offer':
    case '/kept':
    case '/purged':
      return text({ 'cache-control': 'max-age=60' });
    case '/short':
      return text({ 'cache-control': 'max-age=1' });
    case '/etag-long':
      return text({ 'cache-control': 'max-age=60', etag: '"e1"' });
    case '/etag':
    case '/etag-plain':
      // Fresh for a second; a request that names its ETag is told it still stands, for a minute now.
      if (path === '/etag') etagAsked.push(headers['if-none-match']);
      if (headers['if-none-match'] === '"e1"') return void response.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=60' }).end();
      return text({ 'cache-control': 'max-age=1', etag: '"e1"' });
    case '/validated-miss':
    case '/validated-other':
    case '/validated-stale': {
      // Answers 304 itself to its ETag, as an origin does; the stale one is fresh for a second, a minute once revalidated.
      const asked = validatorsAsked.get(path) ?? [];
      validatorsAsked.set(path, [...asked, headers['if-none-match'], headers['if-modified-since']]);
      const etag = `"${path}"`;
      if (headers['if-none-match'] === etag) return void response.writeHead(304, { etag, 'cache-control': 'max-age=60' }).end();
      return text({ 'cache-control': path === '/validated-stale' ? 'max-age=1' : 'max-age=60', etag, 'last-modified': 'Mon, 01 Jun 2026 00:00:00 GMT' });
    }
    case '/failing':
      // Fresh for a second, then the upstream fails: the stale copy stands in for its 503.
      if (n === 1) return text({ 'cache-control': 'max-age=1', etag: '"f1"' });
      return void response.writeHead(503, { 'content-type': 'text/plain' }).end('down');
    case '/updating':
      // Fresh for a second; the next request (the updater) is held until the test answers it.
      if (n === 2) return void updatingHeld.push(response);
      return text({ 'cache-control': 'max-age=1', etag: '"u1"' });
    case '/hung':
      // Fresh for a second; every later request (a background update) is never answered.
      if (n > 1) return void hungUpdates.push(new Promise((resolve) => response.once('close', () => resolve(performance.now()))));
      return text({ 'cache-control': 'max-age=1' });
    case '/background':
      // Fresh for a second; every later request (a background update) is held until the test answers it.
      if (n > 1) return void backgroundHeld.push(response);
      return text({ 'cache-control': 'max-age=1' });
    case '/slow-head':
      // A HEAD's GET, stored (1000 bytes): its first 100 bytes come at once, the rest when the test writes them.
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'content-length': VIDEO.length });
      response.write(VIDEO.subarray(0, 100));
      return void heldAnswers.add(response);
    case '/slow-video':
    case '/slow-limited':
    case '/slow-broken':
      // Stored (1000 bytes, within maxEntrySize): its first 100 bytes come at once, the rest when the test writes them.
      response.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'max-age=60', 'content-length': VIDEO.length });
      response.write(VIDEO.subarray(0, 100));
      return void heldAnswers.add(response);
    case '/left':
    case '/left-h2':
    case '/left-big':
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      response.write('part of the answer ');
      // Held until the test ends it: the client leaves before that.
      return void heldAnswers.add(response);
    case '/cut':
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      response.write('part of the answer ');
      return void dyingAnswers.add(response);
    default:
      response.writeHead(404).end();
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  complete: boolean;
  /** The connection it came on. */
  socket: unknown;
}

/** One HTTP/1.1 request through the gateway, read to its end (or its close without one), on a connection of its own unless `agent` gives one. */
function send(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', agent: Agent | false = false): Promise<Answer & { reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent }, (response) => {
      const chunks: Buffer[] = [];
      let complete = false;
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => (complete = true));
      response.once('error', () => undefined);
      response.once('close', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString(), complete: complete && response.complete, reusedSocket: request.reusedSocket, socket: request.socket }));
    });
    request.once('error', reject);
    request.end();
  });
}

/** The gateway's configuration: the `memory` cache with `maxEntrySize`, and `extraRoutes` (paths to the backend without the cache). */
function configText(backendPort: number, maxEntrySize: string, extraRoutes: readonly string[]): string {
  return `
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  h2: { listen: "127.0.0.1:{{port:h2}}", h2c: true }
services:
  site: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: false, retries: false }
  unhurried: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: false, retries: false, timeouts: { headers: 0 } }
middlewares:
  memory: { cache: { maxSize: 1MiB, maxEntrySize: ${maxEntrySize} } }
  lasting: { cache: { maxSize: 1MiB, useStale: { on: [error, http_503, updating] } } }
  head-as-is: { cache: { maxSize: 1MiB, convertHead: false } }
  one-at-a-time: { inFlightReq: { amount: 1 } }
  locked: { cache: { maxSize: 1MiB, lock: true } }
  behind: { cache: { maxSize: 1MiB, useStale: { on: [updating] }, backgroundUpdate: true } }
  bounded: { cache: { maxSize: 1MiB, useStale: { on: [updating] }, backgroundUpdate: { timeout: 1s } } }
routes:
  - { path: /site, service: site, stripPrefix: true, middlewares: [memory] }
  - { path: /lasting, service: site, stripPrefix: true, middlewares: [lasting] }
  - { path: /head-as-is, service: site, stripPrefix: true, middlewares: [head-as-is] }
  - { path: /limited, service: site, stripPrefix: true, middlewares: [one-at-a-time, memory] }
  - { path: /locked, service: site, stripPrefix: true, middlewares: [locked] }
  - { path: /behind, service: site, stripPrefix: true, middlewares: [behind] }
  - { path: /bounded, service: unhurried, stripPrefix: true, middlewares: [bounded] }
${extraRoutes.map((path) => `  - { path: ${path}, service: site, stripPrefix: true }`).join('\n')}
`;
}

describe('cache: answers kept in memory by a real gateway in front of a real backend that counts requests', () => {
  let backend: Server;
  let gateway: GatewayProcess;
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => send(gateway.port, `/site${path}`, headers, method);

  beforeAll(async () => {
    backend = createServer((request, response) => answer(new URL(request.url!, 'http://backend').pathname, request.method!, request.headers, response));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendPort = (backend.address() as { port: number }).port;
    gateway = await startGateway(configText(backendPort, '1KiB', []));
  });
  afterAll(async () => {
    for (const response of [...dyingAnswers, ...heldAnswers, ...updatingHeld, ...backgroundHeld]) response.destroy();
    await gateway?.process.stop();
    backend?.closeAllConnections();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it('serves a max-age=60 answer from memory the second time: the backend sees one request, the body is the same, with Age and HIT', async () => {
    const first = await get('/fresh');
    expect(first.status).toBe(200);
    expect(first.headers['x-cache-status']).toBe('MISS');
    const second = await get('/fresh');
    expect(second.status).toBe(200);
    expect(second.headers['x-cache-status']).toBe('HIT');
    expect(second.body).toBe(first.body);
    expect(second.headers.age).toMatch(/^\d+$/);
    expect(second.headers['content-length']).toBe(String(Buffer.byteLength(first.body)));
    expect(countOf('/fresh')).toBe(1);
    const lines = await waitFor(
      async () => {
        const found = (await logOf(gateway.process)).split('\n').filter((text) => text.includes('"path":"/site/fresh"')).map((text) => JSON.parse(text) as Record<string, unknown>);
        return found.length === 2 ? found : undefined;
      },
      { message: 'the access lines of both /site/fresh requests' },
    );
    expect(lines.map((line) => line.cache)).toEqual(['MISS', 'HIT']);
    expect(lines[1]).toMatchObject({ status: 200, attempts: 0 });
    expect(lines[1]!.upstream).toBeUndefined();
  });

  it('stores and serves over an HTTP/2 entry point too, a Range with 206 and the part\'s length, a miss\'s cut from the whole answer it stores', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.ports.h2!}`);
    try {
      const h2 = (headers: Record<string, string> = {}) =>
        new Promise<{ status: string | undefined; body: string }>((resolve, reject) => {
          const stream = session.request({ ':path': '/site/over-h2', ...headers });
          const chunks: Buffer[] = [];
          let status: string | undefined;
          stream.once('response', (answer) => (status = [answer[':status'], answer['x-cache-status'], answer['content-range'], answer['content-length']].filter((value) => value !== undefined).join(' ')));
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.once('error', reject);
          stream.once('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
          stream.end();
        });
      expect(await h2({ range: 'bytes=0-7' })).toEqual({ status: '206 MISS bytes 0-7/17 8', body: '/over-h2' });
      expect(await h2()).toEqual({ status: '200 HIT 17', body: '/over-h2 answer 1' });
      expect(await h2({ range: 'bytes=-8' })).toEqual({ status: '206 HIT bytes 9-16/17 8', body: 'answer 1' });
      expect(await h2({ range: 'bytes=17-' })).toEqual({ status: '416 HIT bytes */17 0', body: '' });
      expect(countOf('/over-h2')).toBe(1);
      // A part of an answer not to be stored ends its stream once sent, the rest left unread.
      expect(await h2({ ':path': '/site/long-video', range: 'bytes=0-9' })).toEqual({ status: '206 MISS bytes 0-9/4096 10', body: 'x'.repeat(10) });
      await longVideoClosed[0];
      // A HEAD miss goes upstream as a GET and fills the cache: its stream ends with the head.
      expect(await h2({ ':path': '/site/head-h2', ':method': 'HEAD' })).toEqual({ status: '200 MISS 17', body: '' });
      // The GET's body is read on after the head went: stored once the HEAD's access line is written.
      await accessLineOf(gateway.process, '/site/head-h2');
      expect(await h2({ ':path': '/site/head-h2' })).toEqual({ status: '200 HIT 17', body: '/head-h2 answer 1' });
      expect([countOf('/head-h2'), countOf('/head-h2', 'HEAD')]).toEqual([1, 0]);
      // One whose GET answer will not be stored ends its stream at once, the upstream body left unread.
      expect(await h2({ ':path': '/site/long-head', ':method': 'HEAD' })).toEqual({ status: '200 MISS 4096', body: '' });
      await longHeadClosed.at(-1);
    } finally {
      session.close();
    }
  });

  it('stores and serves a request that offers h2c (curl --http2 on http://), which the gateway serves over HTTP/1.1', async () => {
    const offer = { upgrade: 'h2c', connection: 'Upgrade, HTTP2-Settings', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA' };
    const first = await get('/h2c-offer', offer);
    expect([first.status, first.headers['x-cache-status'], first.body]).toEqual([200, 'MISS', '/h2c-offer answer 1']);
    const second = await get('/h2c-offer', offer);
    expect([second.status, second.headers['x-cache-status'], second.body]).toEqual([200, 'HIT', '/h2c-offer answer 1']);
    expect(countOf('/h2c-offer')).toBe(1);
  });

  it('answers a HEAD from the GET entry, head alone', async () => {
    const first = await get('/head-first');
    const head = await get('/head-first', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['x-cache-status']).toBe('HIT');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(first.body)));
    expect(head.body).toBe('');
    expect(countOf('/head-first', 'HEAD')).toBe(0);
    expect(countOf('/head-first')).toBe(1);
  });

  it('fetches a HEAD miss upstream as a GET and stores its answer: the head alone with the GET\'s length, logged as the HEAD it was, its connection kept; the next GET is a HIT', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = await send(gateway.port, '/site/head-miss', { range: 'bytes=0-1' }, 'HEAD', agent);
      // Range is ignored on a HEAD (RFC 9110 §14.2): the head of the whole answer.
      expect([head.status, head.headers['x-cache-status'], head.headers['content-length'], head.headers['content-range'], head.body, head.complete]).toEqual([200, 'MISS', '19', undefined, '', true]);
      // The GET's body is read on after the head went (its head and body may come in separate reads): stored once the HEAD's access line is written.
      expect(await accessLineOf(gateway.process, '/site/head-miss')).toMatchObject({ method: 'HEAD', status: 200, bytes: 0, cache: 'MISS' });
      const after = await send(gateway.port, '/site/head-miss', {}, 'GET', agent);
      expect(after.reusedSocket).toBe(true);
      expect([after.status, after.headers['x-cache-status'], after.body]).toEqual([200, 'HIT', '/head-miss answer 1']);
    } finally {
      agent.destroy();
    }
    expect([countOf('/head-miss'), countOf('/head-miss', 'HEAD')]).toEqual([1, 0]);
  });

  it('gives a HEAD whose GET answer will not be stored its head at once, the upstream body left unread', async () => {
    const head = await get('/long-head', {}, 'HEAD');
    expect([head.status, head.headers['content-length'], head.body, head.complete]).toEqual([200, String(BIG.length), '', true]);
    await longHeadClosed.at(-1);
    expect(countOf('/long-head', 'HEAD')).toBe(0);
  });

  it('sends a HEAD its head when the GET fetched for it breaks off mid-body, storing nothing, its connection kept', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = send(gateway.port, '/site/head-cut', {}, 'HEAD', agent);
      const cut = await waitFor(() => headCut[0], { message: 'the backend wrote the first 100 bytes' });
      // Closed after the bytes written: the gateway reads the head and those bytes, then the end.
      (await cut).destroy();
      const answered = await head;
      expect([answered.status, answered.headers['x-cache-status'], answered.headers['content-length'], answered.body, answered.complete]).toEqual([200, 'MISS', '1000', '', true]);
      const after = await send(gateway.port, '/site/head-cut', {}, 'GET', agent);
      expect([after.reusedSocket, after.status, after.headers['x-cache-status'], after.body]).toEqual([true, 200, 'MISS', '/head-cut answer 2']);
    } finally {
      agent.destroy();
    }
    expect(await accessLineOf(gateway.process, '/site/head-cut')).toMatchObject({ method: 'HEAD', status: 200, bytes: 0, errorClass: 'reset-after-headers' });
  });

  it('sends a HEAD miss upstream as it is with convertHead: false, storing nothing', async () => {
    const head = await send(gateway.port, '/head-as-is/head-kept-off', {}, 'HEAD');
    expect([head.status, head.headers['x-cache-status'], head.headers['content-length'], head.body]).toEqual([200, 'MISS', '23', '']);
    expect((await send(gateway.port, '/head-as-is/head-kept-off')).headers['x-cache-status']).toBe('MISS');
    expect([countOf('/head-kept-off'), countOf('/head-kept-off', 'HEAD')]).toEqual([1, 1]);
  });

  it.each([
    ['no-store', '/no-store'],
    ['private', '/private'],
    ['Set-Cookie', '/cookie'],
    ['no explicit freshness (and no defaultTtl)', '/no-freshness'],
  ])('sends every request for an answer with %s upstream', async (_what, path) => {
    const first = await get(path);
    const second = await get(path);
    expect(countOf(path)).toBe(2);
    expect(second.headers['x-cache-status']).toBe('MISS');
    expect(second.body).not.toBe(first.body);
  });

  it('keeps no answer to a request with Authorization unless the answer says public', async () => {
    await get('/authorized', { authorization: 'Bearer one' });
    await get('/authorized', { authorization: 'Bearer one' });
    expect(countOf('/authorized')).toBe(2);
  });

  it('sends a request with Cache-Control: no-cache upstream (BYPASS), and its fresh answer replaces the stored one', async () => {
    const first = await get('/no-cache-request');
    const bypassed = await get('/no-cache-request', { 'cache-control': 'no-cache' });
    expect(bypassed.headers['x-cache-status']).toBe('BYPASS');
    expect(countOf('/no-cache-request')).toBe(2);
    expect(bypassed.body).not.toBe(first.body);
    const after = await get('/no-cache-request');
    expect(after.headers['x-cache-status']).toBe('HIT');
    expect(after.body).toBe(bypassed.body);
  });

  it('keeps the variants of a Vary: Accept-Encoding answer apart', async () => {
    const gzip = await get('/vary', { 'accept-encoding': 'gzip' });
    const br = await get('/vary', { 'accept-encoding': 'br' });
    expect(gzip.body).toBe('variant for gzip 1');
    expect(br.body).toBe('variant for br 2');
    const gzipAgain = await get('/vary', { 'accept-encoding': 'gzip' });
    const brAgain = await get('/vary', { 'accept-encoding': 'br' });
    expect(gzipAgain.body).toBe(gzip.body);
    expect(brAgain.body).toBe(br.body);
    expect(gzipAgain.headers['x-cache-status']).toBe('HIT');
    expect(brAgain.headers['x-cache-status']).toBe('HIT');
    expect(countOf('/vary')).toBe(2);
  });

  it('streams a body over maxEntrySize whole to the client and keeps none of it', async () => {
    const first = await get('/big');
    expect(first.complete).toBe(true);
    expect(first.body).toBe(BIG.toString());
    const second = await get('/big');
    expect(second.body).toBe(BIG.toString());
    expect(second.headers['x-cache-status']).toBe('MISS');
    expect(countOf('/big')).toBe(2);
  });

  it('keeps nothing of an answer whose upstream broke off', async () => {
    const cut = get('/cut');
    const dying = await waitFor(() => [...dyingAnswers][0], { message: 'the backend started the answer' });
    // The backend's answer is on its way: let the client have its first bytes before the cut.
    dying.destroy();
    dyingAnswers.delete(dying);
    expect((await cut).complete).toBe(false);
    const again = get('/cut');
    const second = await waitFor(() => [...dyingAnswers][0], { message: 'the backend got the request again' });
    expect(countOf('/cut')).toBe(2);
    second.end('and its end');
    dyingAnswers.delete(second);
    expect((await again).headers['x-cache-status']).toBe('MISS');
  });

  /**
   * Sends a GET for `path` and resets its connection once the first bytes of the body came; resolves
   * once the gateway answered a later request, made after the reset was sent: it has seen the reset.
   */
  const leaveAfterFirstBytes = async (path: string) => {
    await new Promise<void>((resolve, reject) => {
      let came = false;
      const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path, agent: false }, (response) => {
        response.once('error', () => undefined);
        response.once('data', () => {
          came = true;
          request.socket!.once('close', () => resolve());
          request.socket!.resetAndDestroy();
        });
      });
      request.once('error', () => undefined);
      request.once('close', () => came || reject(new Error('closed before any byte of the body')));
      request.end();
    });
    await get('/aside');
  };

  /** The answer the backend holds for `path`'s request (by its first bytes), taken out of `heldAnswers`. */
  const heldAnswerOf = async (prefix: string) => {
    const held = await waitFor(() => [...heldAnswers].find((response) => response.req.url === prefix), { message: `the backend holds the answer to ${prefix}` });
    heldAnswers.delete(held);
    return held;
  };

  it('reads a storable answer on after its client left, and stores it whole: the next request is a HIT, the log line the client\'s cancelled answer', async () => {
    await leaveAfterFirstBytes('/site/left');
    const first = await heldAnswerOf('/left');
    // The client is gone; the gateway reads on for the cache: the backend's answer is not stopped.
    first.end('and its end');
    // Written once the upstream body was read to its end (and stored): the client's answer, cancelled.
    const line = await accessLineOf(gateway.process, '/site/left');
    expect([line.status, line.errorClass, line.aborted]).toEqual([200, 'cancelled', true]);
    const again = await get('/left');
    expect([again.headers['x-cache-status'], again.body]).toEqual(['HIT', 'part of the answer and its end']);
    expect(countOf('/left')).toBe(1);
  });

  it('stops reading on after its client left once the answer is past maxEntrySize: the backend sees its connection closed, nothing is stored', async () => {
    await leaveAfterFirstBytes('/site/left-big');
    const first = await heldAnswerOf('/left-big');
    const closed = new Promise((resolve) => first.once('close', resolve));
    // Past the route's 1 KiB: the rest is wanted by nobody, and the gateway closes the connection unread.
    first.write(BIG);
    await closed;
    expect(first.writableFinished).toBe(false);
    const again = get('/left-big');
    const second = await heldAnswerOf('/left-big');
    second.end('and its end');
    expect((await again).headers['x-cache-status']).toBe('MISS');
    expect(countOf('/left-big')).toBe(2);
  });

  it('ends a Range miss\'s 206 once its part went through while the body is read on for the cache: the kept-alive connection answers its next request meanwhile, then the whole answer is a HIT', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const part = await send(gateway.port, '/site/slow-video', { range: 'bytes=0-9' }, 'GET', agent);
      expect([part.status, part.headers['content-range'], part.body, part.complete]).toEqual([206, 'bytes 0-9/1000', '0123456789', true]);
      // The backend still holds the rest of the body: the client's connection is free for its next request.
      const held = await heldAnswerOf('/slow-video');
      expect(held.writableEnded).toBe(false);
      const aside = await send(gateway.port, '/site/aside', {}, 'GET', agent);
      expect([aside.status, aside.socket]).toEqual([200, part.socket]);
      expect(held.writableEnded).toBe(false);
      held.end(VIDEO.subarray(100));
      await accessLineOf(gateway.process, '/site/slow-video');
      const whole = await send(gateway.port, '/site/slow-video', {}, 'GET', agent);
      expect([whole.headers['x-cache-status'], whole.body]).toEqual(['HIT', VIDEO.toString()]);
      expect(countOf('/slow-video')).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('ends a converted HEAD\'s answer with its head while the backend still holds the GET body: the kept-alive connection answers its next request meanwhile, then the body read on makes a GET a HIT', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = await send(gateway.port, '/site/slow-head', {}, 'HEAD', agent);
      expect([head.status, head.headers['x-cache-status'], head.headers['content-length'], head.body, head.complete]).toEqual([200, 'MISS', String(VIDEO.length), '', true]);
      // The HEAD is answered while the backend still holds the rest of the GET's body.
      const held = await heldAnswerOf('/slow-head');
      expect(held.writableEnded).toBe(false);
      const aside = await send(gateway.port, '/site/aside', {}, 'GET', agent);
      expect([aside.status, aside.socket]).toEqual([200, head.socket]);
      held.end(VIDEO.subarray(100));
      expect(await accessLineOf(gateway.process, '/site/slow-head')).toMatchObject({ method: 'HEAD', status: 200, bytes: 0, cache: 'MISS' });
      const whole = await send(gateway.port, '/site/slow-head', {}, 'GET', agent);
      expect([whole.headers['x-cache-status'], whole.body]).toEqual(['HIT', VIDEO.toString()]);
    } finally {
      agent.destroy();
    }
    expect([countOf('/slow-head'), countOf('/slow-head', 'HEAD')]).toEqual([1, 0]);
  });

  it('frees an inFlightReq slot once the client\'s 206 has ended, not when the body read on for the cache does: the client\'s next request is served, not refused 429', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const part = await send(gateway.port, '/limited/slow-limited', { range: 'bytes=0-9' }, 'GET', agent);
      expect([part.status, part.body, part.complete]).toEqual([206, '0123456789', true]);
      const held = await heldAnswerOf('/slow-limited');
      // The client has nothing in flight: its one request (amount: 1) is done.
      const next = await send(gateway.port, '/limited/aside', {}, 'GET', agent);
      expect([next.status, next.socket]).toEqual([200, part.socket]);
      held.end(VIDEO.subarray(100));
      await accessLineOf(gateway.process, '/limited/slow-limited');
      const whole = await send(gateway.port, '/limited/slow-limited', {}, 'GET', agent);
      expect([whole.status, whole.headers['x-cache-status']]).toEqual([200, 'HIT']);
    } finally {
      agent.destroy();
    }
  });

  it('lets the lock go when the body read on after a Range miss\'s 206 breaks off: the 206 logged as the client got it, nothing stored, the next miss fetches and stores', async () => {
    const part = await send(gateway.port, '/locked/slow-broken', { range: 'bytes=0-9' });
    expect([part.status, part.body, part.complete]).toEqual([206, '0123456789', true]);
    const held = await heldAnswerOf('/slow-broken');
    // The upstream breaks off while the gateway reads on for the cache.
    held.destroy();
    expect(await accessLineOf(gateway.process, '/locked/slow-broken')).toMatchObject({ status: 206, bytes: 10, cache: 'MISS' });
    // The lock is free: the next miss goes upstream and fills the cache (a lock kept would hold it, then let it go unstored).
    const next = send(gateway.port, '/locked/slow-broken');
    const second = await heldAnswerOf('/slow-broken');
    second.end(VIDEO.subarray(100));
    expect([(await next).headers['x-cache-status'], (await next).body]).toEqual(['MISS', VIDEO.toString()]);
    const hit = await send(gateway.port, '/locked/slow-broken');
    expect([hit.headers['x-cache-status'], hit.body]).toEqual(['HIT', VIDEO.toString()]);
    expect(countOf('/slow-broken')).toBe(2);
  });

  it('reads a storable answer on after an HTTP/2 client cancelled its stream: the next request on that entry point is a HIT', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.ports.h2!}`);
    /** A GET for `path` on the session: its status, cache status and body, once whole. */
    const h2 = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const stream = session.request({ ':path': path });
        const chunks: Buffer[] = [];
        let head = '';
        stream.once('response', (answer) => (head = `${answer[':status']} ${answer['x-cache-status']} `));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.once('error', reject);
        stream.once('end', () => resolve(head + Buffer.concat(chunks).toString()));
        stream.end();
      });
    try {
      await new Promise<void>((resolve, reject) => {
        let came = false;
        const stream = session.request({ ':path': '/site/left-h2' });
        stream.once('data', () => {
          came = true;
          stream.close();
        });
        stream.once('error', () => undefined);
        stream.once('close', () => (came ? resolve() : reject(new Error('closed before any byte of the body'))));
        stream.end();
      });
      // Frames go in order: the gateway has seen the cancel once it answered a later stream.
      expect(await h2('/site/aside')).toMatch(/^200 /);
      const first = await heldAnswerOf('/left-h2');
      first.end('and its end');
      await accessLineOf(gateway.process, '/site/left-h2');
      // Keys are per entry point: this one's entry, stored from the read-on.
      expect(await h2('/site/left-h2')).toBe('200 HIT part of the answer and its end');
      expect(countOf('/left-h2')).toBe(1);
    } finally {
      session.close();
    }
  });

  it('never answers a POST from memory, and a successful POST makes the next GET go upstream', async () => {
    await get('/item');
    expect((await get('/item')).headers['x-cache-status']).toBe('HIT');
    const posted = await get('/item', {}, 'POST');
    expect(posted.status).toBe(201);
    expect(posted.body).toBe('created 1');
    expect(countOf('/item', 'POST')).toBe(1);
    const after = await get('/item');
    expect(after.headers['x-cache-status']).toBe('MISS');
    expect(countOf('/item')).toBe(2);
  });

  it('sends a max-age=1 answer upstream again once it expired (EXPIRED)', async () => {
    await get('/short');
    const expired = await waitFor(
      async () => {
        const again = await get('/short');
        return again.headers['x-cache-status'] === 'EXPIRED' ? again : undefined;
      },
      { message: 'the stored /short expired', intervalMs: 100, timeoutMs: 10_000 },
    );
    expect(expired.body).toBe('/short answer 2');
    expect(countOf('/short')).toBe(2);
  });

  it('answers a matching If-None-Match with 304 from memory, and revalidates a stale answer itself (REVALIDATED): a 304 for a conditional request it meets, else the stored 200', async () => {
    // A minute's freshness: on a loaded machine a second may pass between two requests.
    await get('/etag-long');
    const notModified = await get('/etag-long', { 'if-none-match': '"e1"' });
    expect([notModified.status, notModified.headers['x-cache-status'], notModified.body]).toEqual([304, 'HIT', '']);
    expect(notModified.headers).toMatchObject({ etag: '"e1"', 'cache-control': 'max-age=60' });
    // A failing If-Match comes before the If-None-Match it meets (RFC 9110 §13.2.2): 412 from memory.
    const failed = await get('/etag-long', { 'if-match': '"e0"', 'if-none-match': '"e1"' });
    expect([failed.status, failed.headers['x-cache-status'], failed.body]).toEqual([412, 'HIT', '']);
    expect(countOf('/etag-long')).toBe(1);
    // Stored a moment apart, each fresh for a second: once /etag is stale, /etag-plain is too.
    await get('/etag-plain');
    const first = await get('/etag');
    expect([first.status, first.headers['x-cache-status'], first.body]).toEqual([200, 'MISS', '/etag answer 1']);
    // A returning client's conditional request is answered from memory while the answer is fresh;
    // once it is stale the gateway asks the upstream with its own validators, and the 304 freshens it.
    const revalidated = await waitFor(
      async () => {
        const again = await get('/etag', { 'if-none-match': '"e1"' });
        return again.headers['x-cache-status'] === 'HIT' ? undefined : again;
      },
      { message: 'the stored /etag went stale', intervalMs: 100, timeoutMs: 10_000 },
    );
    expect([revalidated.status, revalidated.headers['x-cache-status'], revalidated.body]).toEqual([304, 'REVALIDATED', '']);
    expect(revalidated.headers).toMatchObject({ etag: '"e1"', 'cache-control': 'max-age=60' });
    expect(etagAsked).toEqual([undefined, '"e1"']);
    // Fresh again for a minute: conditional or not, the next requests are hits (conditional traffic alone keeps the entry fresh).
    const conditionalHit = await get('/etag', { 'if-none-match': '"e1"' });
    expect([conditionalHit.status, conditionalHit.headers['x-cache-status']]).toEqual([304, 'HIT']);
    const hit = await get('/etag');
    expect([hit.status, hit.headers['x-cache-status'], hit.body]).toEqual([200, 'HIT', '/etag answer 1']);
    expect(hit.headers['content-length']).toBe(String(Buffer.byteLength('/etag answer 1')));
    expect(countOf('/etag')).toBe(2);
    // A plain request for a stale answer gets the stored 200, its length kept.
    const plain = await get('/etag-plain');
    expect([plain.status, plain.headers['x-cache-status'], plain.body]).toEqual([200, 'REVALIDATED', '/etag-plain answer 1']);
    expect(plain.headers['cache-control']).toBe('max-age=60');
    expect(plain.headers['content-length']).toBe(String(Buffer.byteLength('/etag-plain answer 1')));
    expect(countOf('/etag-plain')).toBe(2);
    const lines = await waitFor(
      async () => {
        const found = (await logOf(gateway.process)).split('\n').filter((text) => /"path":"\/site\/etag(?:-plain)?"/.test(text)).map((text) => JSON.parse(text) as Record<string, unknown>);
        return found.filter((line) => line.cache === 'REVALIDATED').length === 2 ? found : undefined;
      },
      { message: 'the access lines of both revalidations' },
    );
    expect(lines.filter((line) => line.cache === 'REVALIDATED').map((line) => [line.path, line.status, line.attempts])).toEqual([
      ['/site/etag', 304, 1],
      ['/site/etag-plain', 200, 1],
    ]);
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    const counted = metrics.get('switchboard_cache_requests_total')?.samples.find((sample) => sample.labels.middleware === 'memory' && sample.labels.status === 'REVALIDATED');
    expect(counted?.value).toBe(2);
  });

  it('fills its entry from a miss whose client holds a copy: the upstream asked without the client\'s validators, which the gateway judges itself (304, or the whole 200), as nginx\'s proxy_cache', async () => {
    // The client's own ETag: the upstream gets no If-None-Match, answers 200, and the client its 304 while the 200 is stored.
    const matching = await get('/validated-miss', { 'if-none-match': '"/validated-miss"' });
    expect([matching.status, matching.headers['x-cache-status'], matching.body]).toEqual([304, 'MISS', '']);
    expect(matching.headers).toMatchObject({ etag: '"/validated-miss"', 'cache-control': 'max-age=60', 'last-modified': 'Mon, 01 Jun 2026 00:00:00 GMT' });
    expect(matching.headers['content-length']).toBeUndefined();
    expect(matching.headers['content-type']).toBeUndefined();
    // The 200's body is read on after the 304 went: stored once the miss's access line is written.
    expect(await accessLineOf(gateway.process, '/site/validated-miss')).toMatchObject({ status: 304, cache: 'MISS', attempts: 1 });
    const hit = await get('/validated-miss');
    expect([hit.status, hit.headers['x-cache-status'], hit.body]).toEqual([200, 'HIT', '/validated-miss answer 1']);
    // If-Modified-Since at its Last-Modified: a 304 from memory now.
    const since = await get('/validated-miss', { 'if-modified-since': 'Mon, 01 Jun 2026 00:00:00 GMT' });
    expect([since.status, since.headers['x-cache-status']]).toEqual([304, 'HIT']);
    expect(validatorsAsked.get('/validated-miss')).toEqual([undefined, undefined]);
    // Another version's ETag (and a date If-None-Match makes ignored): the whole 200, stored.
    const other = await get('/validated-other', { 'if-none-match': '"old"', 'if-modified-since': 'Mon, 01 Jun 2026 00:00:00 GMT' });
    expect([other.status, other.headers['x-cache-status'], other.body]).toEqual([200, 'MISS', '/validated-other answer 1']);
    expect((await get('/validated-other')).headers['x-cache-status']).toBe('HIT');
    expect(validatorsAsked.get('/validated-other')).toEqual([undefined, undefined]);
    // A stale entry, the client's ETag another: the upstream is asked with the stored one, and its 304 freshens the entry; the client gets the stored 200.
    await get('/validated-stale');
    const revalidated = await waitFor(
      async () => {
        const again = await get('/validated-stale', { 'if-none-match': '"old"' });
        return again.headers['x-cache-status'] === 'HIT' ? undefined : again;
      },
      { message: 'the stored /validated-stale went stale', intervalMs: 100, timeoutMs: 10_000 },
    );
    expect([revalidated.status, revalidated.headers['x-cache-status'], revalidated.body]).toEqual([200, 'REVALIDATED', '/validated-stale answer 1']);
    expect(validatorsAsked.get('/validated-stale')).toEqual([undefined, undefined, '"/validated-stale"', 'Mon, 01 Jun 2026 00:00:00 GMT']);
    const fresh = await get('/validated-stale', { 'if-none-match': '"/validated-stale"' });
    expect([fresh.status, fresh.headers['x-cache-status'], fresh.headers['cache-control']]).toEqual([304, 'HIT', 'max-age=60']);
    expect(countOf('/validated-miss') + countOf('/validated-other') + countOf('/validated-stale')).toBe(4);
    // An answer that will not be stored: the client's 304 goes at once, the rest of the body (which never comes) left unread.
    const unread = longVideoClosed.length;
    const video = await get('/long-video', { 'if-none-match': '"video"' });
    expect([video.status, video.headers['x-cache-status'], video.complete]).toEqual([304, 'MISS', true]);
    await longVideoClosed[unread];
  });

  it.each([
    ['a 304 to the client\'s validators', 'GET', { 'if-none-match': '"page"' }, 304],
    ['a HEAD\'s head, the HEAD fetched as a GET (convertHead)', 'HEAD', {}, 200],
    ['the part its Range asks for', 'GET', { range: 'bytes=0-1' }, 206],
  ] as const)('reads on the small body of an answer not to be stored that it answers with %s, so the upstream connection serves the next request', async (_what, method, headers, status) => {
    let connections = 0;
    const counted = () => (connections += 1);
    backend.on('connection', counted);
    try {
      /** The access lines of /site/private-page so far: one is written once its body was read on to its end. */
      const lines = async () => (await logOf(gateway.process)).split('\n').filter((text) => text.includes('"path":"/site/private-page"')).length;
      const before = await lines();
      for (let i = 0; i < 6; i += 1) {
        const page = await get('/private-page', headers, method);
        expect([page.status, page.headers['x-cache-status'], page.body.length]).toEqual([status, 'MISS', status === 206 ? 2 : 0]);
        // The client's answer ends before the body is read on (head and body may come in separate
        // reads): the next request goes once the read-on ended, its connection idle again.
        await waitFor(async () => (await lines()) > before + i || undefined, { message: `the access line of request ${i + 1}` });
      }
      // Each answer whose body was left unread would close its connection, and the next request open
      // another (five at least); one or two at most when they are kept (an idle one from an earlier
      // test may serve all six, or close as its keep-alive ends on a machine that stalled).
      expect(connections).toBeLessThanOrEqual(2);
    } finally {
      backend.off('connection', counted);
    }
  });

  it('sends the stale stored answer in place of the upstream\'s 503 (useStale: STALE), and at once while another request updates it (UPDATING), counted and logged so, the 503 counted against the service', async () => {
    // Stored first, so that it is stale by the time /failing is, however long the machine takes between the two.
    expect((await send(gateway.port, '/lasting/updating')).headers['x-cache-status']).toBe('MISS');
    const first = await send(gateway.port, '/lasting/failing');
    expect([first.status, first.headers['x-cache-status']]).toEqual([200, 'MISS']);
    const stale = await waitFor(
      async () => {
        const again = await send(gateway.port, '/lasting/failing');
        return again.headers['x-cache-status'] === 'STALE' ? again : undefined;
      },
      { message: 'the stored /failing expired and its fetch failed', intervalMs: 100, timeoutMs: 10_000 },
    );
    expect([stale.status, stale.body]).toEqual([200, '/failing answer 1']);
    expect(Number(stale.headers.age)).toBeGreaterThanOrEqual(1);
    expect(countOf('/failing')).toBe(2);
    const line = await waitFor(
      async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/lasting/failing"') && text.includes('"cache":"STALE"')),
      { message: 'the access line of the STALE request' },
    );
    expect(JSON.parse(line)).toMatchObject({ status: 200, attempts: 1 });
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    const counted = metrics.get('switchboard_cache_requests_total')?.samples.find((sample) => sample.labels.middleware === 'lasting' && sample.labels.status === 'STALE');
    expect(counted?.value).toBe(1);
    const failed = metrics.get('switchboard_upstream_errors_total')?.samples.find((sample) => sample.labels.service === 'site' && sample.labels.class === 'http-5xx');
    expect(failed?.value).toBe(1);
    // An If-Match is judged on the stale answer as on a hit: a 412 from memory for another version, the 503 still counted.
    const precondition = await send(gateway.port, '/lasting/failing', { 'if-match': '"f0"' });
    expect([precondition.status, precondition.headers['x-cache-status'], precondition.body]).toEqual([412, 'STALE', '']);
    expect(countOf('/failing')).toBe(3);
    await waitFor(
      async () => {
        const errors = (await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics()).get('switchboard_upstream_errors_total');
        return errors?.samples.find((sample) => sample.labels.service === 'site' && sample.labels.class === 'http-5xx')?.value === 2 || undefined;
      },
      { message: 'the second 503 counted against the service' },
    );
    // The first request for the stale /updating is held upstream; the next one gets the stored answer at once.
    const updater = send(gateway.port, '/lasting/updating');
    await waitFor(() => updatingHeld.length === 1, { message: 'the updater reached the backend' });
    const updating = await send(gateway.port, '/lasting/updating');
    expect([updating.status, updating.headers['x-cache-status'], updating.body]).toEqual([200, 'UPDATING', '/updating answer 1']);
    const part = await send(gateway.port, '/lasting/updating', { range: 'bytes=0-8', 'if-range': '"u1"' });
    expect([part.status, part.headers['x-cache-status'], part.body]).toEqual([206, 'UPDATING', '/updating']);
    updatingHeld[0]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('/updating answer 2');
    expect([(await updater).headers['x-cache-status'], countOf('/updating')]).toEqual(['EXPIRED', 2]);
    await waitFor(
      async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/lasting/updating"') && text.includes('"cache":"UPDATING"')),
      { message: 'the access line of the UPDATING request' },
    );
  });

  it('sends the first stale request its stored answer at once with backgroundUpdate (STALE), its access line written and its kept-alive connection free while the update waits upstream; a failed update counts against the service and stores nothing, and the next stale request updates again', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const failures = async () => (await admin.metrics()).get('switchboard_upstream_errors_total')?.samples.find((sample) => sample.labels.service === 'site' && sample.labels.class === 'http-5xx')?.value ?? 0;
    const fetch = () => send(gateway.port, '/behind/background', {}, 'GET', agent);
    try {
      expect((await fetch()).headers['x-cache-status']).toBe('MISS');
      const stale = await waitFor(
        async () => {
          const again = await fetch();
          return again.headers['x-cache-status'] === 'STALE' ? again : undefined;
        },
        { message: 'the stored /background expired and its first stale request was answered', intervalMs: 100, timeoutMs: 10_000 },
      );
      expect([stale.status, stale.body, stale.complete]).toEqual([200, '/background answer 1', true]);
      await waitFor(() => backgroundHeld.length === 1, { message: 'the background update reached the backend' });
      // While the backend holds the update: the client's access line is written, its connection serves its next request.
      const line = await waitFor(
        async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/behind/background"') && text.includes('"cache":"STALE"')),
        { message: 'the access line of the STALE request' },
      );
      expect(JSON.parse(line)).toMatchObject({ status: 200, bytes: '/background answer 1'.length });
      const updating = await fetch();
      expect([updating.headers['x-cache-status'], updating.body, updating.socket]).toEqual(['UPDATING', '/background answer 1', stale.socket]);
      expect([backgroundHeld.length, backgroundHeld[0]!.writableEnded]).toEqual([1, false]);
      const failedBefore = await failures();
      backgroundHeld[0]!.writeHead(500, { 'content-type': 'text/plain' }).end('down');
      await waitFor(async () => (await failures()) === failedBefore + 1, { message: 'the failed update counted against the service' });
      // Nothing stored: the next stale request is the first again, answered at once, and updates anew.
      expect((await fetch()).headers['x-cache-status']).toBe('STALE');
      await waitFor(() => backgroundHeld.length === 2, { message: 'the next stale request started a new update' });
      backgroundHeld[1]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('/background answer 3');
      const hit = await waitFor(
        async () => {
          const again = await fetch();
          return again.headers['x-cache-status'] === 'HIT' ? again : undefined;
        },
        { message: 'the new answer was stored' },
      );
      expect(hit.body).toBe('/background answer 3');
    } finally {
      agent.destroy();
    }
    expect(countOf('/background')).toBe(3);
  });

  it('cuts a background update that the upstream never answers (a service without a headers timeout) once backgroundUpdate.timeout passed: the next stale request starts a new one', async () => {
    const fetch = () => send(gateway.port, '/bounded/hung');
    expect((await fetch()).headers['x-cache-status']).toBe('MISS');
    // Taken before each try, so before the request that starts the update and its bound's timer: a
    // lower bound that the polls below, late on a loaded machine, cannot raise towards the cut.
    let started = 0;
    await waitFor(
      async () => {
        started = performance.now();
        return (await fetch()).headers['x-cache-status'] === 'STALE' || undefined;
      },
      { message: 'the stored /hung expired and its first stale request was answered', intervalMs: 100, timeoutMs: 10_000 },
    );
    await waitFor(() => hungUpdates.length === 1, { message: 'the background update reached the backend' });
    // Held by the update meanwhile: the others are sent the stale answer and start no fetch.
    expect((await fetch()).headers['x-cache-status']).toBe('UPDATING');
    let cutAt = 0;
    void hungUpdates[0]!.then((at) => (cutAt = at));
    await waitFor(() => cutAt > 0, { message: 'the gateway cut the update past its bound', timeoutMs: 10_000 });
    expect(cutAt - started).toBeGreaterThanOrEqual(800);
    expect(hungUpdates).toHaveLength(1);
    // The mark went with the cut: the next stale request is the first again (STALE, not UPDATING), and updates anew.
    expect((await fetch()).headers['x-cache-status']).toBe('STALE');
    await waitFor(() => hungUpdates.length === 2, { message: 'the next stale request started a new update' });
    expect(await logOf(gateway.process)).toContain('ran past backgroundUpdate.timeout');
  });

  // Last: it reloads the configuration.
  it('keeps its entries across a reload that leaves its settings as they were, and starts empty when they change', async () => {
    const backendPort = (backend.address() as { port: number }).port;
    await get('/kept');
    expect((await get('/kept')).headers['x-cache-status']).toBe('HIT');
    // A route added: the reload is in force once it answers.
    await gateway.writeConfig(configText(backendPort, '1KiB', ['/added']));
    await waitFor(async () => (await send(gateway.port, '/added/fresh')).status === 200 || undefined, { message: 'the reload with /added' });
    const kept = await get('/kept');
    expect(kept.headers['x-cache-status']).toBe('HIT');
    expect(kept.body).toBe('/kept answer 1');
    await gateway.writeConfig(configText(backendPort, '2KiB', ['/added', '/again']));
    await waitFor(async () => (await send(gateway.port, '/again/fresh')).status === 200 || undefined, { message: 'the reload with /again' });
    const fresh = await get('/kept');
    expect(fresh.headers['x-cache-status']).toBe('MISS');
    expect(countOf('/kept')).toBe(2);
  });

  it('counts hits, misses and stored entries per middleware', async () => {
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    const hits = metrics.get('switchboard_cache_requests_total')?.samples.find((sample) => sample.labels.middleware === 'memory' && sample.labels.status === 'HIT');
    expect(hits?.value).toBeGreaterThan(0);
    const entries = metrics.get('switchboard_cache_entries')?.samples.find((sample) => sample.labels.middleware === 'memory');
    expect(entries?.value).toBeGreaterThan(0);
    const bytes = metrics.get('switchboard_cache_bytes')?.samples.find((sample) => sample.labels.middleware === 'memory');
    expect(bytes?.value).toBeGreaterThan(0);
    expect(bytes?.value).toBeLessThanOrEqual(1024 * 1024);
  });
});

describe('cache purge through the admin API of a gateway with workers: 2, each worker holding a cache of its own', () => {
  const TOKEN = 'cache-purge-integration-token';
  let backend: Server;
  let gateway: GatewayProcess;
  let admin: ReturnType<typeof adminClient>;
  /** `switchboard_cache_entries` of the `memory` cache, summed over the workers by the primary's /metrics. */
  const entries = async () => (await admin.metrics()).get('switchboard_cache_entries')?.samples.find((sample) => sample.labels.middleware === 'memory')?.value ?? 0;
  const purge = (body: unknown, headers: Record<string, string> = admin.headers) =>
    fetch(`${admin.url}/api/cache/purge`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  beforeAll(async () => {
    backend = createServer((request, response) => answer(new URL(request.url!, 'http://backend').pathname, request.method!, request.headers, response));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendPort = (backend.address() as { port: number }).port;
    const text = configText(backendPort, '1KiB', []).replace('admin: 127.0.0.1:{{adminPort}}', `workers: 2\nadmin: { listen: "127.0.0.1:{{adminPort}}", token: ${TOKEN} }`);
    gateway = await startGateway(text);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`, TOKEN);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    backend?.closeAllConnections();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it('makes both workers miss the purged path, after refusing a purge without the token', async () => {
    // Fresh connections land on either worker: both hold the answer once the summed gauge says 2.
    const stored = new Set<string>();
    await waitFor(async () => {
      stored.add((await send(gateway.port, '/site/purged')).body);
      return (await entries()) === 2;
    }, { timeoutMs: 30_000, message: 'both workers to store /purged' });
    const served = countOf('/purged');
    for (const headers of [{}, { authorization: 'Bearer not-the-admin-token' }] as Record<string, string>[]) {
      expect((await purge({ path: '/purged' }, headers)).status).toBe(401);
    }
    // Polled: a scrape leaves out a worker that does not answer within its 2 s, which a loaded machine may see.
    await waitFor(async () => (await entries()) === 2, { timeoutMs: 10_000, message: 'both entries still held after the refused purges' });
    // The path as the upstream gets it: the route strips /site.
    const purged = await purge({ middleware: 'memory', path: '/purged' });
    expect([purged.status, await purged.json()]).toEqual([200, { purged: 2, workersUnanswered: 0 }]);
    // Each worker now fetches anew (one request each reaches the backend); a worker that kept its entry would answer an old body.
    const answers: { status: string | undefined; body: string }[] = [];
    const outcome = await waitFor(async () => {
      const next = await send(gateway.port, '/site/purged');
      answers.push({ status: next.headers['x-cache-status'] as string | undefined, body: next.body });
      if (stored.has(next.body)) return 'an old answer';
      return countOf('/purged') === served + 2 && answers.filter((each) => each.status === 'MISS').length === 2 ? 'both missed' : undefined;
    }, { timeoutMs: 30_000, message: 'both workers to fetch /purged anew' });
    expect([outcome, answers.filter((each) => stored.has(each.body))]).toEqual(['both missed', []]);
    const purgedCount = async () => (await admin.metrics()).get('switchboard_cache_purged_total')?.samples.find((sample) => sample.labels.middleware === 'memory')?.value;
    await waitFor(async () => (await purgedCount()) === 2, { timeoutMs: 10_000, message: 'switchboard_cache_purged_total to sum 2 over the workers' });
  });

  it('answers within its bound while a worker runs nothing (SIGSTOP), counting it as unanswered', async () => {
    const [stopped] = (await (await admin.get('/api/workers')).json()) as { pid: number }[];
    process.kill(stopped!.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const answer = await purge({ all: true });
      expect([answer.status, await answer.json()]).toEqual([200, { purged: expect.any(Number), workersUnanswered: 1 }]);
      // The bound is 2 s; the heartbeat watchdog (10 s) has not replaced the stopped worker by then.
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      process.kill(stopped!.pid, 'SIGCONT');
    }
  });
});
