import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
import type { Readable } from 'node:stream';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** 64 KiB of text that compresses (words repeated) but not to nothing (numbers vary). */
const TEXT = Buffer.from(Array.from({ length: 4_000 }, (_, index) => `line ${index} of the answer ${index * 7919}\n`).join('').slice(0, 64 * 1024));
const ETAG = '"v1-text"';
/** The incompressible answer a paused client must hold back: far more than every buffer on the way. */
const RANDOM = randomBytes(32 * 1024 * 1024);

/** How far the backend got writing RANDOM, with back-pressure. */
const flood = { written: 0, waiting: false, finished: false };

/** The SSE answers waiting for the test to send their second event and end. */
const waitingStreams = new Set<ServerResponse>();

/** The backend's answers by path: a real HTTP/1.1 server on port 0. */
function answer(path: string, query: string, method: string, headers: IncomingHttpHeaders, response: ServerResponse): void {
  switch (path) {
    case '/text':
      if (headers.range !== undefined) {
        response.writeHead(206, { 'content-type': 'text/plain', 'content-range': `bytes 0-9/${TEXT.length}`, 'content-length': 10 });
        return void response.end(TEXT.subarray(0, 10));
      }
      // A revalidation: the upstream compares weakly (RFC 9110 §13.1.2), and sends the length and
      // ranges its 200 has (RFC 9110 §8.6 lets it), as some servers do.
      if (headers['if-none-match'] !== undefined) {
        return void response.writeHead(304, { etag: ETAG, vary: 'Origin', 'content-length': TEXT.length, 'accept-ranges': 'bytes' }).end();
      }
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': TEXT.length, etag: ETAG, 'accept-ranges': 'bytes', vary: 'Origin' });
      return void response.end(method === 'HEAD' ? undefined : TEXT);
    case '/zero-length-304':
      // A server that sends its 304 `Content-Length: 0`, the length of the 304's own (empty) body.
      if (headers['if-none-match'] !== undefined) return void response.writeHead(304, { etag: ETAG, 'content-length': 0 }).end();
      return void response.writeHead(200, { 'content-type': 'text/plain', 'content-length': TEXT.length, etag: ETAG }).end(TEXT);
    case '/small':
      return void response.writeHead(200, { 'content-type': 'application/json', 'content-length': 20 }).end('{"a":"0123456789ab"}');
    case '/typed':
      // The type the test names, decoded: `+` stays `+` in a path segment, not in a query.
      return void response.writeHead(200, { 'content-type': decodeURIComponent(query), 'content-length': TEXT.length }).end(TEXT);
    case '/image':
      return void response.writeHead(200, { 'content-type': 'image/png', 'content-length': TEXT.length }).end(TEXT);
    case '/no-transform':
      return void response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-transform' }).end(TEXT);
    case '/gzipped': {
      const body = gzipSync(TEXT);
      return void response.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': body.length }).end(body);
    }
    case '/events':
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      response.write('data: first\n\n');
      return void waitingStreams.add(response);
    case '/flood': {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const CHUNK = 64 * 1024;
      const writeMore = (): void => {
        flood.waiting = false;
        while (flood.written < RANDOM.length) {
          const chunk = RANDOM.subarray(flood.written, flood.written + CHUNK);
          flood.written += chunk.length;
          if (!response.write(chunk)) {
            flood.waiting = true;
            return void response.once('drain', writeMore);
          }
        }
        flood.finished = true;
        response.end();
      };
      return writeMore();
    }
    case '/cut':
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write(TEXT.subarray(0, 8 * 1024));
      // The upstream dies mid-body, with the rest of the answer unsent, once the test says so.
      return void dyingAnswers.add(response);
    default:
      response.writeHead(404).end();
  }
}

/** The answers waiting for the test to cut them. */
const dyingAnswers = new Set<ServerResponse>();

/** Sends the second event of every waiting SSE answer and ends them. */
function finishStreams(): void {
  for (const response of waitingStreams) response.end('data: second\n\n');
  waitingStreams.clear();
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The bytes as they came, still encoded. */
  body: Buffer;
  /** Whether the answer ended cleanly (not cut). */
  complete: boolean;
}

/** Reads `stream` to its end, or to its close without one. */
function readAll(stream: Readable): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let complete = false;
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => (complete = true));
    stream.once('error', () => undefined);
    stream.once('close', () => resolve({ body: Buffer.concat(chunks), complete }));
  });
}

/** One HTTP/1.1 request through the gateway with node:http. */
function http1(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      void readAll(response).then(({ body, complete }) => resolve({ status: response.statusCode!, headers: response.headers, body, complete: complete && response.complete }));
    });
    request.once('error', reject);
    request.end();
  });
}

/** One HTTP/2 request through the gateway's h2c entry point, on `session`. */
function http2(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ...headers });
    stream.once('error', reject);
    stream.once('response', (responseHeaders) => {
      void readAll(stream).then(({ body, complete }) => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders as IncomingHttpHeaders, body, complete }));
    });
    stream.end();
  });
}

function decode(answer: Answer): Buffer {
  const coding = answer.headers['content-encoding'];
  if (coding === 'gzip') return gunzipSync(answer.body);
  if (coding === 'br') return brotliDecompressSync(answer.body);
  return answer.body;
}

describe('compress: answers compressed on the fly by a real gateway from a real backend', () => {
  let backend: Server;
  let gateway: GatewayProcess;
  let h2cPort: number;
  let session: ClientHttp2Session;
  /** Failed attempts counted against the backend, whatever their class. */
  const upstreamErrors = async (): Promise<number> => {
    const samples = (await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics()).get('switchboard_upstream_errors_total')?.samples ?? [];
    return samples.filter((sample) => sample.labels.service === 'site').reduce((sum, sample) => sum + sample.value, 0);
  };
  const accessLine = (path: string) => accessLineOf(gateway.process, path);

  beforeAll(async () => {
    backend = createServer((request, response) => {
      const url = new URL(request.url!, 'http://backend');
      answer(url.pathname, url.search.slice(1), request.method!, request.headers, response);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendPort = (backend.address() as { port: number }).port;
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  h2: { listen: "127.0.0.1:{{port:h2c}}", h2c: true }
services:
  site: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: false, retries: false }
middlewares:
  zip: { compress: {} }
  gzip-first: { compress: { encodings: [gzip, br] } }
routes:
  - { path: /zipped, service: site, stripPrefix: true, middlewares: [zip] }
  - { path: /gzip-first, service: site, stripPrefix: true, middlewares: [gzip-first] }
  - { path: /plain, service: site, stripPrefix: true }
  - { name: counted, path: /counted, service: site, stripPrefix: true, middlewares: [zip] }
`);
    h2cPort = gateway.ports.h2c!;
    session = connectHttp2(`http://127.0.0.1:${h2cPort}`);
  });
  afterAll(async () => {
    session?.close();
    finishStreams();
    await gateway?.process.stop();
    backend?.closeAllConnections();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it.each([
    ['br', 'gzip, deflate, br', '/zipped'],
    ['gzip', 'gzip;q=1, br;q=0.5', '/zipped'],
    ['gzip', 'br, gzip', '/gzip-first'],
    ['br', '*', '/zipped'],
  ])('answers %s to Accept-Encoding %j on %s, which the client decodes to the upstream bytes', async (coding, acceptEncoding, route) => {
    const answer = await http1(gateway.port, `${route}/text`, { 'accept-encoding': acceptEncoding });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBe(coding);
    expect(answer.headers['content-length']).toBeUndefined();
    expect(answer.headers['accept-ranges']).toBeUndefined();
    expect(answer.headers.etag).toBe(`W/${ETAG}`);
    expect(answer.headers.vary).toBe('Origin, Accept-Encoding');
    expect(answer.body.length).toBeLessThan(TEXT.length / 2);
    expect(decode(answer).equals(TEXT)).toBe(true);
  });

  it.each(['application/problem+json', 'application/vnd.api+json', 'application/ld+json', 'application/vnd.github.v3+json; charset=utf-8', 'application/soap+xml', 'image/svg+xml'])(
    'compresses %s by default: every +json and +xml type (RFC 6839)',
    async (type) => {
      const answer = await http1(gateway.port, `/zipped/typed?${encodeURIComponent(type)}`, { 'accept-encoding': 'gzip' });
      expect(answer.headers['content-type']).toBe(type);
      expect(answer.headers['content-encoding']).toBe('gzip');
      expect(decode(answer).equals(TEXT)).toBe(true);
    },
  );

  it('sends identity, with Vary, to a client that accepts no offered coding', async () => {
    for (const acceptEncoding of [undefined, 'identity', 'br;q=0, gzip;q=0', 'deflate']) {
      const answer = await http1(gateway.port, '/zipped/text', acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding });
      expect(answer.headers['content-encoding'], String(acceptEncoding)).toBeUndefined();
      expect(answer.headers['content-length']).toBe(String(TEXT.length));
      expect(answer.headers.etag).toBe(ETAG);
      expect(answer.headers.vary).toBe('Origin, Accept-Encoding');
      expect(answer.body.equals(TEXT)).toBe(true);
    }
  });

  it('answers a revalidation (304) with the Vary, the ETag, and the length (RFC 9110 §8.6) or none, of the 200 it stands for, compressed or not, to GET and HEAD', async () => {
    const fields = (answer: Answer) => ({ etag: answer.headers.etag, vary: answer.headers.vary, length: answer.headers['content-length'], ranges: answer.headers['accept-ranges'] });
    for (const method of ['GET', 'HEAD']) {
      for (const acceptEncoding of ['gzip', 'br', 'identity']) {
        const first = await http1(gateway.port, '/zipped/text', { 'accept-encoding': acceptEncoding }, method);
        const again = await http1(gateway.port, '/zipped/text', { 'accept-encoding': acceptEncoding, 'if-none-match': first.headers.etag! }, method);
        expect(again.status, `${method} ${acceptEncoding}`).toBe(304);
        expect(fields(again), `${method} ${acceptEncoding}`).toEqual(fields(first));
      }
    }
    const first = await http2(session, '/zipped/text', { 'accept-encoding': 'br' });
    const again = await http2(session, '/zipped/text', { 'accept-encoding': 'br', 'if-none-match': first.headers.etag! });
    expect(again.status).toBe(304);
    expect(fields(again)).toEqual(fields(first));
  });

  it('takes a 304 with Content-Length 0 (some servers send their 304s so) to stand for the compressed 200: its ETag and Vary, and no length', async () => {
    for (const acceptEncoding of ['gzip', 'br']) {
      const first = await http1(gateway.port, '/zipped/zero-length-304', { 'accept-encoding': acceptEncoding });
      expect(first.headers['content-encoding'], acceptEncoding).toBe(acceptEncoding);
      const again = await http1(gateway.port, '/zipped/zero-length-304', { 'accept-encoding': acceptEncoding, 'if-none-match': first.headers.etag! });
      expect(again.status, acceptEncoding).toBe(304);
      expect({ etag: again.headers.etag, vary: again.headers.vary, length: again.headers['content-length'] }, acceptEncoding).toEqual({ etag: first.headers.etag, vary: first.headers.vary, length: undefined });
    }
  });

  it('answers HEAD with the head a GET gets (RFC 9110 §9.3.2): coding, Vary, weak ETag, no length, and no body', async () => {
    for (const [acceptEncoding, coding] of [['br, gzip', 'br'], ['gzip', 'gzip'], ['identity', undefined]] as const) {
      const get = await http1(gateway.port, '/zipped/text', { 'accept-encoding': acceptEncoding });
      const head = await http1(gateway.port, '/zipped/text', { 'accept-encoding': acceptEncoding }, 'HEAD');
      const fields = (answer: Answer) => ({ status: answer.status, coding: answer.headers['content-encoding'], vary: answer.headers.vary, etag: answer.headers.etag, length: answer.headers['content-length'], ranges: answer.headers['accept-ranges'] });
      expect(fields(head), acceptEncoding).toEqual(fields(get));
      expect(head.headers['content-encoding'], acceptEncoding).toBe(coding);
      expect(head.body.length).toBe(0);
    }
  });

  it.each([
    ['a Range request (206)', '/zipped/text', { range: 'bytes=0-9' }, 'GET', 206],
    ['an answer already gzipped', '/zipped/gzipped', {}, 'GET', 200],
    ['an answer below minSize', '/zipped/small', {}, 'GET', 200],
    ['an image', '/zipped/image', {}, 'GET', 200],
    ['an answer with Cache-Control no-transform', '/zipped/no-transform', {}, 'GET', 200],
  ])('leaves %s untouched', async (_name, path, headers, method, status) => {
    const answer = await http1(gateway.port, path, { 'accept-encoding': 'br, gzip', ...headers }, method);
    const upstream = await http1(gateway.port, path.replace(/^\/zipped/, '/plain'), { 'accept-encoding': 'br, gzip', ...headers }, method);
    expect(answer.status).toBe(status);
    expect(answer.headers['content-encoding']).toBe(upstream.headers['content-encoding']);
    expect(answer.headers['content-length']).toBe(upstream.headers['content-length']);
    expect(answer.headers.etag).toBe(upstream.headers.etag);
    expect(answer.headers.vary).toBe(upstream.headers.vary);
    expect(answer.body.equals(upstream.body)).toBe(true);
  });

  it('passes the answer of a route without compress as the upstream sent it', async () => {
    const answer = await http1(gateway.port, '/plain/text', { 'accept-encoding': 'br, gzip' });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers['content-length']).toBe(String(TEXT.length));
    expect(answer.headers.etag).toBe(ETAG);
    expect(answer.headers.vary).toBe('Origin');
    expect(answer.body.equals(TEXT)).toBe(true);
  });

  it('passes each server-sent event to the client, compressed, before the upstream sends the next', async () => {
    for (const coding of ['gzip', 'br'] as const) {
      const decoded: string[] = [];
      const ended = new Promise<{ headers: IncomingHttpHeaders }>((resolve, reject) => {
        const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/zipped/events', headers: { 'accept-encoding': coding }, agent: false }, (response) => {
          const decoder = coding === 'gzip' ? createGunzip() : createBrotliDecompress();
          response.pipe(decoder).on('data', (chunk: Buffer) => decoded.push(chunk.toString()));
          decoder.once('end', () => resolve({ headers: response.headers }));
          decoder.once('error', reject);
        });
        request.once('error', reject);
        request.end();
      });
      // The second event is sent only once the first has reached the client, decoded.
      await waitFor(() => decoded.join('') === 'data: first\n\n', { message: `the first event through ${coding}` });
      finishStreams();
      const { headers } = await ended;
      expect(headers['content-encoding']).toBe(coding);
      expect(decoded.join('')).toBe('data: first\n\ndata: second\n\n');
    }
  });

  it('cuts the compressed answer of an upstream that fails mid-body: no clean end', async () => {
    const received: Buffer[] = [];
    const decoded: Buffer[] = [];
    const answer = new Promise<{ headers: IncomingHttpHeaders; complete: boolean }>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/zipped/cut', headers: { 'accept-encoding': 'gzip' }, agent: false }, (response) => {
        const decoder = createGunzip();
        decoder.on('data', (chunk: Buffer) => decoded.push(chunk));
        decoder.on('error', () => undefined);
        response.on('data', (chunk: Buffer) => {
          received.push(chunk);
          decoder.write(chunk);
        });
        response.once('error', () => undefined);
        response.once('close', () => resolve({ headers: response.headers, complete: response.complete }));
      });
      request.once('error', reject);
      request.end();
    });
    // The upstream dies only once its first 8 KiB reached the client, decoded.
    await waitFor(() => Buffer.concat(decoded).length === 8 * 1024, { message: 'the first part of the answer' });
    for (const response of dyingAnswers) response.socket?.destroy();
    dyingAnswers.clear();
    const { headers, complete } = await answer;
    expect(headers['content-encoding']).toBe('gzip');
    expect(complete).toBe(false);
    expect(Buffer.concat(decoded).equals(TEXT.subarray(0, 8 * 1024))).toBe(true);
    // What came is a gzip stream without its end: decoding it whole fails.
    expect(() => gunzipSync(Buffer.concat(received))).toThrow(/unexpected end/i);
  });

  it('compresses over the HTTP/2 entry point too, and answers HEAD there with the head a GET gets', async () => {
    for (const coding of ['br', 'gzip']) {
      const answer = await http2(session, '/zipped/text', { 'accept-encoding': coding });
      expect(answer.status).toBe(200);
      expect(answer.headers['content-encoding']).toBe(coding);
      expect(answer.headers['content-length']).toBeUndefined();
      expect(answer.headers.vary).toBe('Origin, Accept-Encoding');
      expect(decode(answer).equals(TEXT)).toBe(true);
    }
    const head = await http2(session, '/zipped/text', { ':method': 'HEAD', 'accept-encoding': 'br' });
    expect(head.status).toBe(200);
    expect(head.headers['content-encoding']).toBe('br');
    expect(head.headers.vary).toBe('Origin, Accept-Encoding');
    expect(head.headers.etag).toBe(`W/${ETAG}`);
    expect(head.headers['content-length']).toBeUndefined();
    expect(head.body.length).toBe(0);
  });

  it('passes server-sent events one by one over the HTTP/2 entry point', async () => {
    const decoded: string[] = [];
    const stream = session.request({ ':path': '/zipped/events', 'accept-encoding': 'br' });
    const decoder = createBrotliDecompress();
    stream.pipe(decoder).on('data', (chunk: Buffer) => decoded.push(chunk.toString()));
    const ended = new Promise((resolve) => decoder.once('end', resolve));
    stream.end();
    await waitFor(() => decoded.join('') === 'data: first\n\n', { message: 'the first event over HTTP/2' });
    finishStreams();
    await ended;
    expect(decoded.join('')).toBe('data: first\n\ndata: second\n\n');
  });

  it('holds the upstream back while the client does not read: the gateway never buffers the whole answer', async () => {
    let resumeClient: () => void = () => undefined;
    const received = new Promise<Answer>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/zipped/flood', headers: { 'accept-encoding': 'gzip' }, agent: false }, (response) => {
        response.pause();
        resumeClient = () => {
          void readAll(response).then(({ body, complete }) => resolve({ status: response.statusCode!, headers: response.headers, body, complete }));
          response.resume();
        };
      });
      request.once('error', reject);
      request.end();
    });
    // The backend waits for 'drain' and its count stopped moving between two polls (or it finished: a gateway that buffers).
    let last = -1;
    await waitFor(() => {
      const stalled = flood.finished || (flood.waiting && flood.written === last);
      last = flood.written;
      return stalled;
    }, { timeoutMs: 20_000, intervalMs: 200, message: 'the backend to stall on the paused client' });
    expect(flood.finished).toBe(false);
    expect(flood.written).toBeLessThan(RANDOM.length / 2);
    resumeClient();
    const answer = await received;
    expect(answer.headers['content-encoding']).toBe('gzip');
    expect(decode(answer).equals(RANDOM)).toBe(true);
    expect(flood.finished).toBe(true);
  });

  it('does not count a client that leaves a compressed stream against the upstream', async () => {
    const errorsBefore = await upstreamErrors();
    const decoded: string[] = [];
    const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/zipped/events?client=leaves', headers: { 'accept-encoding': 'gzip' }, agent: false }, (response) => {
      response.pipe(createGunzip()).on('data', (chunk: Buffer) => decoded.push(chunk.toString()));
    });
    request.once('error', () => undefined);
    request.end();
    await waitFor(() => decoded.join('') === 'data: first\n\n', { message: 'the first event' });
    request.destroy();
    const line = await accessLine('/zipped/events?client=leaves');
    expect({ errorClass: line.errorClass, aborted: line.aborted }).toEqual({ errorClass: 'cancelled', aborted: true });
    expect(await upstreamErrors()).toBe(errorsBefore);
  });

  it('counts the bytes the client received, compressed, in the access log and in /api/stats, over HTTP/1.1 and HTTP/2', async () => {
    const gzipped = await http1(gateway.port, '/counted/text?via=h1', { 'accept-encoding': 'gzip' });
    const brotli = await http2(session, '/counted/text?via=h2', { 'accept-encoding': 'br' });
    const identity = await http1(gateway.port, '/counted/text?via=identity');
    expect([gzipped.headers['content-encoding'], brotli.headers['content-encoding'], identity.headers['content-encoding']]).toEqual(['gzip', 'br', undefined]);
    expect(gzipped.body.length).toBeLessThan(TEXT.length / 2);
    // nginx's $body_bytes_sent, Traefik's DownstreamContentSize: what went to the client.
    expect((await accessLine('/counted/text?via=h1')).bytes).toBe(gzipped.body.length);
    expect((await accessLine('/counted/text?via=h2')).bytes).toBe(brotli.body.length);
    expect((await accessLine('/counted/text?via=identity')).bytes).toBe(TEXT.length);
    const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    type Totals = { routes: Record<string, { total: { requests: number; bytesOut: number } }> };
    const route = await waitFor(async () => {
      const counted = ((await (await admin.get('/api/stats')).json()) as Totals).routes.counted?.total;
      return counted?.requests === 3 ? counted : undefined;
    }, { message: 'the three requests of route counted in /api/stats' });
    expect(route.bytesOut).toBe(gzipped.body.length + brotli.body.length + TEXT.length);
  });

  it('keeps serving after all that', async () => {
    const answer = await http1(gateway.port, '/zipped/text', { 'accept-encoding': 'gzip' });
    expect(decode(answer).equals(TEXT)).toBe(true);
    expect(await logOf(gateway.process)).not.toMatch(/"level":(50|60)/);
  });
});
