import { randomBytes } from 'node:crypto';
import { createServer as createHttp1Server, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, constants, createServer, type Http2Server, type ServerOptions } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** An h2c upstream with node:http2's defaults (`maxHeaderListPairs` 128), or `options`, that answers 200 with its `name`; counts the connections (`sessions`) and streams it got. */
async function startHttp2Named(name: string, options: ServerOptions = {}): Promise<{ server: Http2Server; port: number; sessions: number; streams: number }> {
  const server = createServer(options);
  const upstream = { server, port: 0, sessions: 0, streams: 0 };
  server.on('session', (session) => {
    upstream.sessions += 1;
    session.on('error', () => undefined);
  });
  server.on('stream', (stream) => {
    upstream.streams += 1;
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-length': Buffer.byteLength(name) });
    stream.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.port = (server.address() as AddressInfo).port;
  return upstream;
}

/** `fields` headers of `valueLength` bytes each, as a client would add them. */
function manyHeaders(fields: number, valueLength = 8): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let index = 0; index < fields; index += 1) headers[`x-field-${index}`] = 'v'.repeat(valueLength);
  return headers;
}

/** A unary gRPC call to `path` over h2c with `metadata`: its `grpc-status`. */
async function grpcCall(port: number, path: string, metadata: Record<string, string>): Promise<string> {
  const session = connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise<string>((resolve, reject) => {
      const call = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...metadata });
      let status: string | undefined;
      call.on('response', (headers) => (status ??= headers['grpc-status'] as string | undefined));
      call.on('trailers', (trailers) => (status ??= trailers['grpc-status'] as string | undefined));
      call.on('error', reject);
      call.on('close', () => resolve(String(status)));
      call.resume();
      call.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  } finally {
    session.close();
  }
}

/** An h2c upstream whose first stream gets a 200 fresh for a second, and every later one an ENHANCE_YOUR_CALM reset before any answer, as an overloaded node:http2 server (past its maxSessionMemory) refuses streams. */
async function startCalmingDown(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer();
  let streams = 0;
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    streams += 1;
    if (streams > 1) return void stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    stream.respond({ ':status': 200, 'cache-control': 'max-age=1', 'content-length': 6 });
    stream.end('stored');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** `GET path` over HTTP/1.1 with `headers`: the status, the body and the answer's headers. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const sent = request({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body, headers: response.headers }));
    });
    sent.setTimeout(10_000, () => sent.destroy(new Error(`GET ${path} timed out`)));
    sent.on('error', reject);
    sent.end();
  });
}

describe("a client's request head an HTTP/2 instance refuses", () => {
  let a: Awaited<ReturnType<typeof startHttp2Named>>;
  let b: Awaited<ReturnType<typeof startHttp2Named>>;
  let small: Awaited<ReturnType<typeof startHttp2Named>>;
  let strict: Awaited<ReturnType<typeof startHttp2Named>>;
  let calm: Awaited<ReturnType<typeof startCalmingDown>>;
  let plain: Server;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    calm = await startCalmingDown();
    [a, b, small, strict] = await Promise.all([
      startHttp2Named('a'),
      startHttp2Named('b'),
      startHttp2Named('small', { settings: { maxHeaderListSize: 4_096 } }),
      // Refuses any head of more than 6 fields, and says nothing of it in its SETTINGS.
      startHttp2Named('strict', { maxHeaderListPairs: 6 }),
    ]);
    // The reference: node:http's HTTP/1.1 server with its defaults answers a head over 16 KiB with 431.
    plain = createHttp1Server((_request, response) => response.end('plain'));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    // One failure counted against an instance would eject it.
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
limits: { maxHeaderSize: 256KiB }
services:
  pair:
    protocol: h2c
    instances:
      - { id: a, host: 127.0.0.1, port: ${a.port} }
      - { id: b, host: 127.0.0.1, port: ${b.port} }
    outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s }
  small:
    protocol: h2c
    instances: [{ id: s, host: 127.0.0.1, port: ${small.port} }]
    outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s }
  strict:
    protocol: h2c
    instances: [{ id: t, host: 127.0.0.1, port: ${strict.port} }]
    outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s }
  plain:
    instances: [{ id: p, host: 127.0.0.1, port: ${(plain.address() as AddressInfo).port} }]
    outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s }
  calm:
    protocol: h2c
    instances: [{ id: c, host: 127.0.0.1, port: ${calm.port} }]
    healthCheck: false
    outlierDetection: false
    retries: false
middlewares:
  lasting: { cache: { maxSize: 1MiB, useStale: { on: [error] } } }
routes:
  - { path: /calm, service: calm, middlewares: [lasting] }
  - { path: /small, service: small }
  - { path: /strict, service: strict }
  - { path: /plain, service: plain }
  - { path: /, service: pair }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([a, b, small, strict, calm].map((upstream) => new Promise((resolve) => upstream?.server.close(resolve))));
    await new Promise((resolve) => plain?.close(resolve));
  });

  /** Runs `check`, with the gateway's log on a failure. */
  async function withLog(check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  }

  // node:http2 resets a stream of more than 128 fields (its maxHeaderListPairs) with ENHANCE_YOUR_CALM
  // before any handler sees it: the refusal of what was sent, which no instance must be blamed for.
  it('answers 431 to a head of 150 fields, tries no other instance, and blames neither', async () => {
    await withLog(async () => {
      for (let sent = 0; sent < 3; sent += 1) expect((await get(gateway.port, `/many/${sent}`, manyHeaders(150))).status).toBe(431);
      expect(await accessLineOf(gateway.process, '/many/2')).toMatchObject({ status: 431, errorClass: 'header-too-large', attempts: 1 });
      const answers = new Set<string>();
      for (let sent = 0; sent < 6; sent += 1) {
        const { status, body } = await get(gateway.port, `/ordinary/${sent}`);
        expect(status).toBe(200);
        answers.add(body);
      }
      expect([...answers].sort()).toEqual(['a', 'b']);
      for (const id of ['a', 'b']) expect(await admin.instance('pair', id)).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    });
  });

  /** Sends ordinary requests until both instances of `pair` answered one: each then has its session. */
  async function reachBoth(label: string): Promise<void> {
    const answers = new Set<string>();
    for (let sent = 0; sent < 6 && answers.size < 2; sent += 1) {
      const { status, body } = await get(gateway.port, `/${label}/${sent}`);
      expect(status).toBe(200);
      answers.add(body);
    }
    expect([...answers].sort()).toEqual(['a', 'b']);
  }

  // node:http2 sends no header block over 64 KiB as nghttp2 bounds it before compressing (its
  // maxSendHeaderBlockLength): it would refuse the stream itself (REFUSED_STREAM) and close the whole
  // session, other clients' streams on it refused or moved. The gateway does not send it.
  it('answers 431 to a head too large for the gateway to send, tries no other instance, blames neither, and keeps its connections', async () => {
    await withLog(async () => {
      await reachBoth('before-unsendable');
      const sessions = a.sessions + b.sessions;
      const incompressible: Record<string, string> = {};
      for (let index = 0; index < 20; index += 1) incompressible[`x-random-${index}`] = randomBytes(3_500).toString('base64');
      expect((await get(gateway.port, '/unsendable', incompressible)).status).toBe(431);
      expect(await accessLineOf(gateway.process, '/unsendable')).toMatchObject({ status: 431, errorClass: 'header-too-large', attempts: 1 });
      await reachBoth('after-unsendable');
      expect(a.sessions + b.sessions).toBe(sessions);
      for (const id of ['a', 'b']) expect(await admin.instance('pair', id)).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    });
  });

  // gRPC maps an ENHANCE_YOUR_CALM reset to RESOURCE_EXHAUSTED; the gateway answers the call the same.
  it('answers a gRPC call whose metadata the instance refuses RESOURCE_EXHAUSTED, and blames neither instance', async () => {
    await withLog(async () => {
      expect(await grpcCall(gateway.port, '/pkg.Service/Many', manyHeaders(150))).toBe('8');
      expect(await accessLineOf(gateway.process, '/pkg.Service/Many')).toMatchObject({ status: 431, errorClass: 'header-too-large', attempts: 1 });
      for (const id of ['a', 'b']) expect(await admin.instance('pair', id)).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    });
  });

  // The same reset of an ordinary head is the instance's doing (node:http2 sends it past its maxSessionMemory too): counted, as nginx and Envoy count any reset.
  it('answers 502 upstream-refused to an ordinary head the instance refuses, and counts it against the instance', async () => {
    await withLog(async () => {
      const { status, body } = await get(gateway.port, '/strict/ordinary');
      expect([status, JSON.parse(body).error]).toEqual([502, 'upstream-refused']);
      expect(await accessLineOf(gateway.process, '/strict/ordinary')).toMatchObject({ status: 502, errorClass: 'upstream-refused' });
      expect((await admin.instance('strict', 't'))?.errors).toBeGreaterThanOrEqual(1);
      const refusals = (await admin.metrics()).get('switchboard_upstream_errors_total')?.samples.find((sample) => sample.labels.service === 'strict' && sample.labels.class === 'upstream-refused');
      expect(refusals?.value).toBeGreaterThanOrEqual(1);
    });
  });

  // Counted and retried as a reset, it is also one for a cache's `useStale: { on: [error] }`, as nginx's proxy_cache_use_stale error takes any reset before the answer.
  it('sends the stale stored answer in place of an instance refusing an ordinary head (useStale: error)', async () => {
    await withLog(async () => {
      const first = await get(gateway.port, '/calm/page');
      expect([first.status, first.headers['x-cache-status'], first.body]).toEqual([200, 'MISS', 'stored']);
      // Fresh for a second: asked again until the stored answer is stale and its fetch refused.
      const after = await waitFor(
        async () => {
          const again = await get(gateway.port, '/calm/page');
          return again.headers['x-cache-status'] === 'HIT' ? undefined : again;
        },
        { message: 'the stored /calm/page went stale', intervalMs: 100, timeoutMs: 10_000 },
      );
      expect([after.status, after.headers['x-cache-status'], after.body]).toEqual([200, 'STALE', 'stored']);
    });
  });

  it('answers 431 without sending it to a head over the maxHeaderListSize the instance advertised', async () => {
    await withLog(async () => {
      expect((await get(gateway.port, '/small/large', manyHeaders(20, 200))).status).toBe(431);
      expect(await accessLineOf(gateway.process, '/small/large')).toMatchObject({ status: 431, errorClass: 'header-too-large', attempts: 1 });
      expect(await get(gateway.port, '/small/ordinary')).toMatchObject({ status: 200, body: 'small' });
      expect(small.streams).toBe(1);
      expect(await admin.instance('small', 's')).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    });
  });

  // The reference: the same head too large for an HTTP/1.1 instance is its 431 answer, which counts for nothing.
  it("passes an HTTP/1.1 instance's 431 on, and blames it for nothing", async () => {
    await withLog(async () => {
      expect((await get(gateway.port, '/plain/large', manyHeaders(40, 500))).status).toBe(431);
      expect(await get(gateway.port, '/plain/ordinary')).toMatchObject({ status: 200, body: 'plain' });
      expect(await admin.instance('plain', 'p')).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    });
  });
});
