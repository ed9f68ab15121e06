import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** One HTTP/1.1 answer as read off a raw connection. */
interface RawAnswer {
  status: number;
  /** Its head, field names lower-cased. */
  head: string;
  body: string;
}

/**
 * A raw client connection over node:net: `answers` are the whole answers read so far, in order
 * (each framed by its `content-length`, or bodiless); `ended` says the gateway ended its side.
 */
class RawConnection {
  readonly socket: Socket;
  readonly answers: RawAnswer[] = [];
  ended = false;
  private pending = '';

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (chunk: Buffer) => this.read(chunk.toString('latin1')));
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', () => undefined);
  }

  /** Resolves once `count` answers are whole; rejects as soon as the gateway ends the connection short of them. */
  async answered(count: number): Promise<RawAnswer[]> {
    await waitFor(() => this.answers.length >= count || this.ended || this.socket.destroyed, { timeoutMs: 10_000, message: `${count} answers on one connection` });
    // An answer's bytes come before the end of the connection that follows them.
    if (this.answers.length < count) throw new Error(`the gateway closed the connection after ${this.answers.length} of ${count} answers:\n${this.answers.map((answer) => answer.head).join('\n')}`);
    return this.answers.slice(0, count);
  }

  private read(text: string): void {
    this.pending += text;
    for (;;) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.pending.slice(0, end).toLowerCase();
      const length = Number(/\r\ncontent-length: *(\d+)/.exec(head)?.[1] ?? 0);
      if (this.pending.length < end + 4 + length) return;
      this.answers.push({ status: Number(head.slice(9, 12)), head, body: this.pending.slice(end + 4, end + 4 + length) });
      this.pending = this.pending.slice(end + 4 + length);
    }
  }
}

const API_KEY = 'own-answer-key-0123456789';
/** A small body, as a form or a JSON document: 20 bytes. */
const SMALL_BODY = '{"name":"a","n":123}';

describe('answers the gateway gives by itself to an HTTP/1.1 request with a body', () => {
  let backend: Server;
  let backendPort: number;
  /** What the backend received, by `x-id`. */
  const received = new Set<string>();
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const instance = async () => (await admin.services()).find((service) => service.name === 'api')!.instances[0]!;

  beforeAll(async () => {
    backend = createServer((request, response) => {
      received.add(String(request.headers['x-id']));
      request.resume();
      request.on('end', () => response.end('from the backend'));
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    backendPort = (backend.address() as { port: number }).port;
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
services:
  api: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 120s } }
middlewares:
  blocked: { respond: { status: 403, body: "blocked" } }
  keys: { keyAuth: { header: X-API-Key } }
  denied: { ipDenyList: { sourceRange: [127.0.0.0/8] } }
  one-only: { rateLimit: { average: 1, period: 1h, burst: 1 } }
  to-https: { redirectScheme: { scheme: https } }
  app-cors: { cors: { allowOrigins: ["https://app.test"], allowMethods: [PUT] } }
  tiny-bodies: { bodyLimit: { maxSize: 1KiB } }
  closing-answers: { headers: { response: { set: { connection: close } } } }
  connection-removed: { headers: { response: { remove: [connection] } } }
consumers:
  client: { keys: ["sha256:${createHash('sha256').update(API_KEY).digest('hex')}"] }
routes:
  - { path: /open, service: api }
  - { path: /blocked, service: api, middlewares: [blocked] }
  - { path: /keyed, service: api, middlewares: [keys] }
  - { path: /denied, service: api, middlewares: [denied] }
  - { path: /rated, service: api, middlewares: [one-only] }
  - { path: /insecure, service: api, middlewares: [to-https] }
  - { path: /cors, service: api, middlewares: [app-cors] }
  - { path: /tiny, service: api, middlewares: [tiny-bodies] }
  - { path: /blocked-closing, service: api, middlewares: [closing-answers, blocked] }
  - { path: /blocked-unclosed, service: api, middlewares: [connection-removed, blocked] }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'api')?.instances.length === 1, { message: 'the api service to list its instance' });
    // The rate limit's burst of one goes here: the next request on /rated is refused 429.
    const warmUp = new RawConnection(gateway.port);
    warmUp.socket.write('GET /rated/warm-up HTTP/1.1\r\nhost: gw\r\nx-id: warm-up\r\n\r\n');
    expect((await warmUp.answered(1))[0]!.status).toBe(200);
    warmUp.socket.destroy();
  });
  afterAll(async () => {
    await gateway?.process.stop();
    backend?.closeAllConnections();
    await new Promise((resolve) => backend?.close(resolve));
  });

  it.each([
    ['404 no route', 'POST', '/nowhere', '', 404],
    ["respond's 403", 'POST', '/blocked/x', '', 403],
    ["keyAuth's 401", 'POST', '/keyed/x', 'x-api-key: not-a-key\r\n', 401],
    ["ipDenyList's 403", 'POST', '/denied/x', '', 403],
    ["rateLimit's 429", 'POST', '/rated/x', '', 429],
    ["redirectScheme's 307", 'POST', '/insecure/x', '', 307],
    ["a CORS preflight's 204", 'OPTIONS', '/cors/x', 'origin: https://app.test\r\naccess-control-request-method: PUT\r\n', 204],
  ] as const)('answers %s to a request whose small body came with its head, keeps the connection and answers the request pipelined behind it', async (name, method, path, headers, status) => {
    const id = name.replaceAll(/\W+/g, '-');
    const connection = new RawConnection(gateway.port);
    try {
      // Both requests in one write: the first one's body is in the gateway's hands as its answer is made.
      connection.socket.write(
        `${method} ${path} HTTP/1.1\r\nhost: gw\r\nx-id: ${id}-first\r\n${headers}content-length: ${SMALL_BODY.length}\r\n\r\n${SMALL_BODY}` +
          `GET /open/${id}-behind HTTP/1.1\r\nhost: gw\r\nx-id: ${id}-behind\r\n\r\n`,
      );
      const [refused, behind] = await connection.answered(2).catch(async (error: Error) => Promise.reject(new Error(`${error.message}\n${await logOf(gateway.process)}`)));
      expect(refused!.status).toBe(status);
      expect(refused!.head).not.toMatch(/\r\nconnection: close/);
      expect(behind).toMatchObject({ status: 200, body: 'from the backend' });
      // The connection lives on: a third request on it is served too.
      connection.socket.write(`GET /open/${id}-third HTTP/1.1\r\nhost: gw\r\nx-id: ${id}-third\r\n\r\n`);
      expect((await connection.answered(3))[2]).toMatchObject({ status: 200, body: 'from the backend' });
      expect(received.has(`${id}-first`)).toBe(false);
      expect(received.has(`${id}-behind`) && received.has(`${id}-third`)).toBe(true);
    } finally {
      connection.socket.destroy();
    }
  });

  it('counts none of its answers against the instance', async () => {
    // After every case above (its refusals, its dropped bodies): one error would have ejected it.
    const seen = await instance();
    expect(seen.errors).toBe(0);
    expect(seen.health).toMatchObject({ state: 'healthy', ejectedUntil: null });
    expect(seen.routable).toBe(true);
  });

  it('closes the connection after the answer when a small body does not arrive in time, and serves nothing pipelined behind it', async () => {
    const connection = new RawConnection(gateway.port);
    try {
      connection.socket.write(`POST /blocked/slow HTTP/1.1\r\nhost: gw\r\nx-id: slow\r\ncontent-length: ${SMALL_BODY.length}\r\n\r\n${SMALL_BODY.slice(0, 5)}`);
      const [answer] = await connection.answered(1);
      expect(answer).toMatchObject({ status: 403, body: 'blocked' });
      // The gateway gives up on the rest of the body and ends the connection (a bounded wait, not the client's).
      await waitFor(() => connection.ended, { timeoutMs: 10_000, message: 'the gateway to end the connection of a body that stopped' });
      connection.socket.write(`${SMALL_BODY.slice(5)}GET /open/late HTTP/1.1\r\nhost: gw\r\nx-id: late\r\n\r\n`);
      // A request sent after the late one was written: once the backend has it, one served would be there too.
      const marker = new RawConnection(gateway.port);
      marker.socket.write('GET /open/marker HTTP/1.1\r\nhost: gw\r\nx-id: slow-marker\r\n\r\n');
      expect((await marker.answered(1))[0]!.status).toBe(200);
      marker.socket.destroy();
      expect(received.has('late')).toBe(false);
      expect(connection.answers).toHaveLength(1);
    } finally {
      connection.socket.destroy();
    }
  });

  it('gives nothing but its answer to a client that ends its side with the small body unfinished, and closes the connection', async () => {
    const connection = new RawConnection(gateway.port);
    try {
      connection.socket.write(`POST /blocked/cut HTTP/1.1\r\nhost: gw\r\nx-id: cut\r\ncontent-length: ${SMALL_BODY.length}\r\n\r\n${SMALL_BODY.slice(0, 5)}`);
      expect((await connection.answered(1))[0]).toMatchObject({ status: 403, body: 'blocked' });
      // The request was answered: the client's end of its body is no malformed request to answer again.
      connection.socket.end();
      await waitFor(() => connection.ended, { timeoutMs: 10_000, message: 'the gateway to end the connection after the client ended its side' });
      expect(connection.answers.map((answer) => answer.status)).toEqual([403]);
    } finally {
      connection.socket.destroy();
    }
  });

  it("lingers after an answer a header hook closes while its small body is still arriving: the rest of the body is read, not reset", async () => {
    // Half-open: the client writes on after the gateway's FIN, as an uploading client does.
    const socket = connect({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    let ended = false;
    let failure: string | undefined;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('end', () => (ended = true));
    socket.on('error', (error: NodeJS.ErrnoException) => (failure = error.code));
    try {
      socket.write(`POST /blocked-closing/x HTTP/1.1\r\nhost: gw\r\nx-id: hook-closes\r\ncontent-length: 16000\r\n\r\n${'x'.repeat(100)}`);
      await waitFor(() => ended, { timeoutMs: 10_000, message: 'the answer and the end of the connection' });
      expect(received).toMatch(/^HTTP\/1\.1 403 [^]*\r\nconnection: close\r\n[^]*blocked$/i);
      // The rest of the body, 1 KiB every 20 ms: a connection closed with it unread is reset at once.
      for (let sent = 100; sent < 16_000 && failure === undefined; sent += 1_000) {
        await new Promise((resolve) => socket.write('x'.repeat(Math.min(1_000, 16_000 - sent)), resolve));
        await delay(20);
      }
      expect(failure).toBeUndefined();
    } finally {
      socket.destroy();
    }
  });

  it.each([
    ['a body over 16 KiB', 'POST /blocked/large', `content-length: ${20 * 1024}\r\n`, 'x'.repeat(20 * 1024), 403],
    // The gateway's own close outlives a response header edit that removes Connection.
    ['a body over 16 KiB on a route whose header edit removes connection', 'POST /blocked-unclosed/large', `content-length: ${20 * 1024}\r\n`, 'x'.repeat(20 * 1024), 403],
    ['a chunked body', 'POST /blocked/chunked', 'transfer-encoding: chunked\r\n', `14\r\n${SMALL_BODY}\r\n0\r\n\r\n`, 403],
    ["bodyLimit's 413 to a body over its maxSize", 'POST /tiny/over', 'content-length: 2000\r\n', 'x'.repeat(2000), 413],
  ] as const)('still says connection: close to %s and serves nothing pipelined behind it', async (name, requestLine, headers, body, status) => {
    const id = name.replaceAll(/\W+/g, '-');
    const connection = new RawConnection(gateway.port);
    try {
      connection.socket.write(`${requestLine} HTTP/1.1\r\nhost: gw\r\nx-id: ${id}\r\n${headers}\r\n${body}GET /open/${id}-behind HTTP/1.1\r\nhost: gw\r\nx-id: ${id}-behind\r\n\r\n`);
      const [answer] = await connection.answered(1);
      expect(answer!.status).toBe(status);
      expect(answer!.head).toMatch(/\r\nconnection: close/);
      await waitFor(() => connection.ended, { timeoutMs: 10_000, message: 'the gateway to end the connection after its answer' });
      expect(connection.answers).toHaveLength(1);
      expect(received.has(`${id}-behind`)).toBe(false);
    } finally {
      connection.socket.destroy();
    }
  });
});
