import { createServer, type Server } from 'node:http';
import { connect, type ClientSessionOptions } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificate, makeTempDir, startGateway, type GatewayProcess } from '../harness/index.ts';

/** How long the upstream takes to answer /slow: well past the gateway's 1 s keepAliveTimeout, within the route's 10 s headers timeout. */
const SLOW_ANSWER_MS = 3_000;

/** One stream's end as the client saw it: its RST_STREAM code (0 for a whole answer), the bytes it got, and how long it took. */
interface StreamEnd {
  readonly rstCode: number;
  readonly bytes: number;
  readonly ms: number;
}

describe('HTTP/2 client sessions (TLS and h2c): an idle one closes after keepAliveTimeout with GOAWAY; a stream waiting for a slow upstream or read slowly is never cut as idle', () => {
  let gateway: GatewayProcess;
  let upstream: Server;
  let tlsPort: number;

  beforeAll(async () => {
    upstream = createServer((request, response) => {
      if (request.url === '/slow') return void setTimeout(() => response.end('late answer'), SLOW_ANSWER_MS);
      if (request.url === '/big') return void response.end(Buffer.alloc(1_000_000, 97));
      response.end('ok');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const dir = await makeTempDir('sb-h2-idle-');
    const certificate = await makeCertificate(dir, 'site', { key: 'ec', names: ['site.test'] });
    gateway = await startGateway(`
limits: { keepAliveTimeout: 1s, headersTimeout: 1s }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
  websecure:
    listen: 127.0.0.1:{{port:tls}}
    protocol: https
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
services:
  up: { instances: [{ host: 127.0.0.1, port: ${(upstream.address() as AddressInfo).port} }], healthCheck: false, retries: false, timeouts: { headers: 10s } }
routes:
  - { path: /, service: up }
`);
    tlsPort = gateway.ports.tls!;
  });

  afterAll(async () => {
    await gateway?.process.stop();
    upstream?.close();
  });

  const urlOf = (secure: boolean) => (secure ? `https://127.0.0.1:${tlsPort}` : gateway.url);

  /** A session to the gateway that records its GOAWAY codes and resolves `closed` with the time it closed. */
  function openSession(secure: boolean, options: ClientSessionOptions = {}) {
    const session = connect(urlOf(secure), { rejectUnauthorized: false, ...options });
    const goaways: number[] = [];
    session.on('goaway', (code: number) => goaways.push(code));
    session.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => session.once('close', () => resolve(performance.now())));
    return { session, goaways, closed };
  }

  /** Sends a GET for `path` on `session`; `slowly`: reads each chunk 30 ms after the last. */
  function get(session: ReturnType<typeof openSession>['session'], path: string, slowly = false): Promise<StreamEnd> {
    const started = performance.now();
    const stream = session.request({ ':path': path }, { endStream: true });
    let bytes = 0;
    stream.on('error', () => undefined);
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (!slowly) return;
      stream.pause();
      setTimeout(() => stream.resume(), 30);
    });
    return new Promise((resolve) => stream.once('close', () => resolve({ rstCode: stream.rstCode ?? 0, bytes, ms: performance.now() - started })));
  }

  it.each([
    ['h2c', false],
    ['TLS', true],
  ])('an idle %s session is closed with GOAWAY NO_ERROR once keepAliveTimeout passes with no stream', async (_name, secure) => {
    const { session, goaways, closed } = openSession(secure);
    // Taken before the request: the session's idle time starts later (when its stream closed on the
    // gateway's side), so this bounds it from below whatever the test process's own delays.
    const sentAt = performance.now();
    const answered = await get(session, '/ok');
    expect(answered).toMatchObject({ rstCode: 0, bytes: 2 });
    const at = await closed;
    expect(goaways[0]).toBe(0);
    // Not before keepAliveTimeout (1 s; timers may fire a little early).
    expect(at - sentAt).toBeGreaterThan(900);
  });

  it.each([
    ['h2c', false],
    ['TLS', true],
  ])('a %s stream waiting longer than keepAliveTimeout for a slow upstream gets its answer; its session closes once idle after it', async (_name, secure) => {
    const { session, goaways, closed } = openSession(secure);
    // Before the fix node:http2's session timeout reset it (CANCEL) after the 1 s keepAliveTimeout.
    expect(await get(session, '/slow')).toMatchObject({ rstCode: 0, bytes: 'late answer'.length });
    await closed;
    expect(goaways[0]).toBe(0);
  });

  it.each([
    ['h2c', false],
    ['TLS', true],
  ])('a %s stream whose client reads slowly (16 KiB window) is not cut as idle while data flows', async (_name, secure) => {
    const { session, closed } = openSession(secure, { settings: { initialWindowSize: 16_384 } });
    const end = await get(session, '/big', true);
    expect(end).toMatchObject({ rstCode: 0, bytes: 1_000_000 });
    // It did outlast keepAliveTimeout: more than 60 chunks read 30 ms apart.
    expect(end.ms).toBeGreaterThan(1_000);
    await closed;
  });
});
