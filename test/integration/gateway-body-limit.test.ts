import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as connectHttp2, createServer as createHttp2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, refusingPort, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const MAX = 64 * KiB;

/** What the backend saw of one request, keyed by its `x-upload-id`. */
interface Received {
  bytes: number;
  contentLength: string | undefined;
  /** The body arrived whole: it ended, and (once `closed`) was not aborted. */
  complete: boolean;
  /** The request is over, whole or aborted. */
  closed: boolean;
}

/** A real HTTP backend on port 0 that counts every request body it receives. */
async function startCountingBackend(http2 = false): Promise<{ server: Server | Http2Server; port: number; received: Map<string, Received> }> {
  const received = new Map<string, Received>();
  const handler = (request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse): void => {
    const entry: Received = { bytes: 0, contentLength: request.headers['content-length'], complete: false, closed: false };
    received.set(String(request.headers['x-upload-id']), entry);
    request.on('data', (chunk: Buffer) => (entry.bytes += chunk.length));
    request.on('error', () => undefined);
    request.on('close', () => (entry.closed = true));
    // node:http2 ends a request whose stream was reset too, its 'end' before or after its 'aborted': no whole body.
    let aborted = false;
    request.on('aborted', () => {
      aborted = true;
      entry.complete = false;
    });
    request.on('end', () => {
      entry.complete = !aborted;
      // `x-answer-first` asks for the answer's head before the body: a limit hit then can only cut the exchange.
      if (!response.headersSent) response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ bytes: entry.bytes }));
    });
    if (request.headers['x-answer-first'] !== undefined) {
      response.writeHead(200, { 'content-type': 'application/json' });
      (response as ServerResponse).write(' ');
    }
  };
  const server = http2 ? createHttp2Server(handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, received };
}

/**
 * POSTs `size` bytes with node:http and no length (chunked), written while the answer may already
 * come, and stops writing once an answer or an error is there; resolves with the status (0 when the
 * exchange was cut) and the answer's body. `pauseAt`: writes that many bytes, then the rest only once
 * the answer's head has arrived.
 */
function chunkedUpload(port: number, path: string, id: string, size: number, headers: Record<string, string> = {}, pauseAt?: number): Promise<{ status: number; body: string; cut: boolean }> {
  return new Promise((resolve) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked', 'x-upload-id': id, ...headers } });
    let status = 0;
    let done = false;
    let paused = false;
    const settle = (body: string, cut: boolean) => {
      if (done) return;
      done = true;
      request.destroy();
      resolve({ status, body, cut });
    };
    request.on('response', (response) => {
      status = response.statusCode ?? 0;
      if (paused) writeMore();
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => settle(text, false));
      response.on('error', () => settle(text, true));
      response.on('aborted', () => settle(text, true));
    });
    request.on('error', () => settle('', true));
    const chunk = Buffer.alloc(16 * KiB, 5);
    let left = size;
    const writeMore = (): void => {
      while (left > 0 && !done && !request.destroyed) {
        paused = pauseAt !== undefined && status === 0 && size - left >= pauseAt;
        if (paused) return;
        const part = chunk.subarray(0, Math.min(chunk.length, left));
        left -= part.length;
        if (!request.write(part)) return void request.once('drain', writeMore);
      }
      if (left === 0 && !request.destroyed) request.end();
    };
    writeMore();
  });
}

/**
 * POSTs `size` bytes over HTTP/2 without content-length, and stops writing once the answer's head is
 * there; ends the stream after them only when `end` says so. Resolves with the answer at its end, or
 * at the stream's close when it is cut.
 */
function http2Upload(port: number, path: string, id: string, size: number, end = false): Promise<{ status: number; body: string }> {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  return new Promise<{ status: number; body: string }>((resolve) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'x-upload-id': id });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status, body }));
    stream.on('close', () => resolve({ status, body }));
    stream.on('error', () => undefined);
    const chunk = Buffer.alloc(16 * KiB, 6);
    let left = size;
    const writeMore = (): void => {
      while (left > 0 && !stream.destroyed && status === 0) {
        const part = chunk.subarray(0, Math.min(chunk.length, left));
        left -= part.length;
        if (!stream.write(part)) return void stream.once('drain', writeMore);
      }
      if (left === 0 && end && !stream.destroyed) stream.end();
    };
    writeMore();
  }).finally(() => session.destroy());
}

/** POSTs `size` bytes with node:http and `content-length`, writing the body while the answer may already come; resolves with the whole answer. */
function upload(port: number, path: string, id: string, size: number): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-length': size, 'x-upload-id': id } });
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }));
    });
    // Writing the rest of a refused body may fail once the gateway closed the connection: the answer is what counts.
    request.on('error', reject);
    const chunk = Buffer.alloc(64 * KiB, 1);
    let left = size;
    const writeMore = (): void => {
      while (left > 0 && !request.destroyed) {
        const part = chunk.subarray(0, Math.min(chunk.length, left));
        left -= part.length;
        if (!request.write(part)) return void request.once('drain', writeMore);
      }
      if (left === 0) request.end();
    };
    writeMore();
  });
}

/** What a raw client that writes its whole announced body before reading a byte got back. */
interface RawUpload {
  /** The error the body's write ended with (a reset), or null. */
  written: Error | null;
  /** The gateway ended its side of the connection after its answer. */
  ended: boolean;
  /** Every byte read, as latin1. */
  text: string;
}

/**
 * Sends `POST path` over node:net with `content-length: size` and `headers`, writes all `size` bytes
 * of the body before reading anything, then reads until the answer is whole and the gateway ended
 * the connection, or the connection is gone. A body far larger than the socket buffers: a gateway
 * that closed with these bytes unread would reset the connection, and the reset would throw away the
 * answer waiting in the client's buffer.
 */
async function rawUpload(port: number, path: string, size: number, headers = '', method = 'POST'): Promise<RawUpload> {
  const socket = connect(port, '127.0.0.1');
  socket.pause();
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  // The gateway ends its side after the answer, where a kept-alive connection would read the whole body on.
  let ended = false;
  socket.on('end', () => (ended = true));
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: gw\r\n${headers}content-length: ${size}\r\n\r\n`);
  const written = await new Promise<Error | null | undefined>((resolve) => socket.write(Buffer.alloc(size, 2), resolve));
  socket.resume();
  // A JSON answer is whole at its `}`; one without a body (a 204, a redirect) at the end of its head.
  const whole = () => (text.includes('\r\ncontent-length: 0\r\n') || text.startsWith('HTTP/1.1 204 ') ? text.includes('\r\n\r\n') : text.includes('}'));
  await waitFor(() => (whole() && ended) || socket.destroyed, { timeoutMs: 15_000, message: `the whole answer to ${path} and the end of the connection` });
  socket.end();
  await closed;
  return { written: written ?? null, ended, text };
}

/** Writes `bytes` in one write over node:net and reads until the gateway closes the connection. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setTimeout(15_000, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
    socket.write(bytes);
  });
}

const API_KEY = 'upload-key-0123456789';

describe('the bodyLimit middleware in the running gateway', () => {
  let backend: Awaited<ReturnType<typeof startCountingBackend>>;
  let h2Backend: Awaited<ReturnType<typeof startCountingBackend>>;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  /** The h2c entry point's port (the `web` one, `gateway.port`, is plain HTTP/1.1). */
  let h2cPort: number;
  let closedPort: number;
  const address = () => `127.0.0.1:${backend.port}`;
  const instance = async () => (await admin.services()).find((service) => service.name === 'upload')!.instances.find((candidate) => candidate.address === address())!;
  const accessLine = (path: string) => accessLineOf(gateway.process, path, { timeoutMs: 5_000 });

  beforeAll(async () => {
    [backend, h2Backend] = await Promise.all([startCountingBackend(), startCountingBackend(true)]);
    // closedPort: nothing can listen there while this file runs, so a connect to it is refused.
    closedPort = await refusingPort();
    // One instance, panic off and a low error threshold: an ejection would show as 503s at once.
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  h2: { listen: "127.0.0.1:{{port:h2c}}", h2c: true }
services:
  upload:
    instances: [${address()}]
    balancer: p2c-ewma
    panicThreshold: 0
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 120s }
  upload-retry:
    instances: [127.0.0.1:${closedPort}, ${address()}]
    balancer: round-robin
    healthCheck: false
    outlierDetection: false
  upload-h2:
    protocol: h2c
    instances: [{ host: 127.0.0.1, port: ${h2Backend.port} }]
    panicThreshold: 0
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 120s }
middlewares:
  small-bodies: { bodyLimit: { maxSize: 64KiB } }
  tiny-bodies: { bodyLimit: { maxSize: 1KiB } }
  one-only: { rateLimit: { average: 1, period: 1h, burst: 1 } }
  keys: { keyAuth: { header: X-API-Key } }
  app-cors: { cors: { allowOrigins: ["https://app.test"], allowMethods: [PUT] } }
  to-https: { redirectScheme: { scheme: https } }
  blocked: { respond: { status: 403 } }
consumers:
  uploader: { keys: ["sha256:${createHash('sha256').update(API_KEY).digest('hex')}"] }
routes:
  - { path: /limited, service: upload, middlewares: [small-bodies] }
  - { path: /h2-limited, service: upload-h2, middlewares: [small-bodies] }
  - { path: /open, service: upload }
  - { path: /retry-limited, service: upload-retry, middlewares: [tiny-bodies] }
  - { path: /rated, service: upload, middlewares: [one-only] }
  - { path: /keyed, service: upload, middlewares: [keys] }
  - { path: /cors, service: upload, middlewares: [app-cors] }
  - { path: /insecure, service: upload, middlewares: [to-https] }
  - { path: /blocked, service: upload, middlewares: [blocked] }
`);
    h2cPort = gateway.ports.h2c!;
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'upload')?.instances.length === 1, { message: 'the upload service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    (backend?.server as Server | undefined)?.closeAllConnections();
    await new Promise((resolve) => backend?.server.close(resolve));
    await new Promise((resolve) => h2Backend?.server.close(resolve));
  });

  it('forwards a body of maxSize bytes, and any size on a route without the limit', async () => {
    expect((await upload(gateway.port, '/limited/at', 'at', MAX)).status).toBe(200);
    expect(backend.received.get('at')).toMatchObject({ bytes: MAX, contentLength: String(MAX), complete: true });
    expect((await upload(gateway.port, '/open/big', 'open-big', 2 * MiB)).status).toBe(200);
    expect(backend.received.get('open-big')).toMatchObject({ bytes: 2 * MiB, complete: true });
  });

  it('answers an HTTP/1.1 content-length over maxSize 413 body-too-large, closing the connection, and sends nothing upstream', async () => {
    const answer = await upload(gateway.port, '/limited/over', 'over', 8 * MiB);
    expect(answer.status, await logOf(gateway.process)).toBe(413);
    expect(answer.headers).toMatchObject({ connection: 'close', 'content-type': 'application/json' });
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'body-too-large', status: 413, service: 'upload' });
    expect(backend.received.has('over')).toBe(false);
    expect(await accessLine('/limited/over')).toMatchObject({ method: 'POST', status: 413, errorClass: 'body-too-large', attempts: 0 });
  });

  it('answers the 413 readably to a client that sends its whole announced body before reading', async () => {
    const { written, ended, text } = await rawUpload(gateway.port, '/limited/raw', 16 * MiB, 'x-upload-id: raw\r\n');
    expect(written).toBeNull();
    expect(ended).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'body-too-large' });
    expect(backend.received.has('raw')).toBe(false);
  });

  it('serves no request pipelined behind the 413: it closed the connection', async () => {
    // The refused request's whole body, then a second request on the same connection, which stays
    // open (a client gone would have the gateway drop that request unsent anyway): after an answer
    // that says `connection: close`, nothing read behind it may reach routing or an upstream.
    const socket = connect(gateway.port, '127.0.0.1');
    let text = '';
    let ended = false;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('end', () => (ended = true));
    socket.on('error', () => undefined);
    const size = MAX + 1;
    socket.write(`POST /limited/first HTTP/1.1\r\nhost: gw\r\nx-upload-id: first\r\ncontent-length: ${size}\r\n\r\n`);
    socket.write(Buffer.alloc(size, 4));
    socket.write('POST /open/behind HTTP/1.1\r\nhost: gw\r\nx-upload-id: behind\r\ncontent-length: 2\r\n\r\nok');
    try {
      await waitFor(() => ended, { timeoutMs: 10_000, message: 'the gateway to end the connection after its 413' });
      // A request sent after the pipelined one was read: once the backend has it, one served would be there too.
      expect((await upload(gateway.port, '/open/marker', 'marker', 2)).status).toBe(200);
      expect(text).toMatch(/^HTTP\/1\.1 413 /);
      expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(backend.received.has('behind')).toBe(false);
    } finally {
      socket.destroy();
    }
  });

  it('answers a rate limit 429 readably, closing the connection, to a client that sends a 16 MiB body before reading', async () => {
    // The burst of one goes to this small upload; the large one behind it is refused before its body has arrived.
    expect((await upload(gateway.port, '/rated/first', 'rated-first', KiB)).status).toBe(200);
    const limited = await rawUpload(gateway.port, '/rated/big', 16 * MiB, 'x-upload-id: rated-big\r\n');
    expect(limited.text, await logOf(gateway.process)).toMatch(/^HTTP\/1\.1 429 /);
    expect(limited.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(limited.text.slice(limited.text.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'rate-limited', status: 429 });
    expect(limited).toMatchObject({ written: null, ended: true });
    expect(backend.received.has('rated-big')).toBe(false);
  });

  it.each([
    ['a CORS preflight 204', '/cors/granted', 'origin: https://app.test\r\naccess-control-request-method: PUT\r\n', 'OPTIONS', 204],
    ['a CORS preflight 403', '/cors/refused', 'origin: https://elsewhere.test\r\naccess-control-request-method: PUT\r\n', 'OPTIONS', 403],
    ["redirectScheme's 307", '/insecure/upload', '', 'POST', 307],
    ["respond's 403", '/blocked/upload', '', 'POST', 403],
  ] as const)('answers %s readably, closing the connection, to a client that sends a 16 MiB body before reading', async (_name, path, headers, method, status) => {
    const answer = await rawUpload(gateway.port, path, 16 * MiB, `x-upload-id: ${path}\r\n${headers}`, method);
    expect(answer.text, await logOf(gateway.process)).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(answer.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer).toMatchObject({ written: null, ended: true });
    expect(backend.received.has(path)).toBe(false);
  });

  it('answers a keyAuth 401 readably, closing the connection, to a client that sends a 16 MiB body before reading', async () => {
    const unknown = await rawUpload(gateway.port, '/keyed/big', 16 * MiB, 'x-upload-id: keyed-big\r\nx-api-key: not-a-key\r\n');
    expect(unknown.text, await logOf(gateway.process)).toMatch(/^HTTP\/1\.1 401 /);
    expect(unknown.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(unknown).toMatchObject({ written: null, ended: true });
    expect(backend.received.has('keyed-big')).toBe(false);
    // A refusal of a request whose body is complete keeps its connection.
    const socket = connect(gateway.port, '127.0.0.1');
    try {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.write('POST /keyed/small HTTP/1.1\r\nhost: gw\r\ncontent-length: 0\r\n\r\n');
      await waitFor(() => text.includes('}'), { timeoutMs: 5_000, message: 'the 401 to a request without a body' });
      expect(text).toMatch(/^HTTP\/1\.1 401 /);
      expect(text).not.toMatch(/\r\nconnection: close\r\n/i);
    } finally {
      socket.destroy();
    }
  });

  it('answers an HTTP/2 content-length over maxSize 413 body-too-large and sends nothing upstream', async () => {
    const session = connectHttp2(`http://127.0.0.1:${h2cPort}`);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/limited/h2', 'content-length': String(MiB), 'x-upload-id': 'h2' });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
        stream.write(Buffer.alloc(16 * KiB, 3));
      });
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'body-too-large', status: 413 });
    } finally {
      session.destroy();
    }
    expect(backend.received.has('h2')).toBe(false);
    expect(await accessLine('/limited/h2')).toMatchObject({ status: 413, errorClass: 'body-too-large', attempts: 0 });
  });

  it('answers Expect: 100-continue with a content-length over maxSize 413 at once, with no 100 Continue before it', async () => {
    // The head alone: a client that waits for the 100 Continue, as curl does, never sends the body.
    const answer = await rawExchange(gateway.port, `POST /limited/expect-over HTTP/1.1\r\nHost: t\r\nx-upload-id: expect-over\r\nExpect: 100-continue\r\nContent-Length: ${8 * MiB}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).not.toMatch(/100 Continue/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'body-too-large', status: 413 });
    expect(backend.received.has('expect-over')).toBe(false);
    expect(await accessLine('/limited/expect-over')).toMatchObject({ status: 413, errorClass: 'body-too-large', attempts: 0 });
  });

  it('answers an HTTP/2 Expect: 100-continue with a content-length over maxSize 413, with no 100 before it', async () => {
    const session = connectHttp2(`http://127.0.0.1:${h2cPort}`);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/limited/h2-expect-over', 'content-length': String(8 * MiB), expect: '100-continue', 'x-upload-id': 'h2-expect-over' });
      stream.on('error', () => undefined);
      let continued = false;
      stream.on('continue', () => (continued = true));
      const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
      expect({ status, continued }).toEqual({ status: 413, continued: false });
    } finally {
      session.destroy();
    }
    expect(backend.received.has('h2-expect-over')).toBe(false);
  });

  it('leaves the instance healthy after several oversized uploads', async () => {
    const before = await instance();
    const statuses: number[] = [];
    // node:http writes on while the answer comes: a connection closed with its bytes unread resets, and the upload fails with EPIPE instead of the 413.
    const ROUNDS = 12;
    for (let round = 0; round < ROUNDS; round += 1) statuses.push((await upload(gateway.port, `/limited/many-${round}`, `many-${round}`, 8 * MiB)).status);
    expect(statuses).toEqual(Array.from({ length: ROUNDS }, () => 413));
    expect([...backend.received.keys()].filter((id) => id.startsWith('many-'))).toEqual([]);
    const after = await instance();
    expect(after.health).toMatchObject({ state: 'healthy', ejectedUntil: null });
    expect(after.routable).toBe(true);
    expect(after.errors).toBe(before.errors);
    expect((await upload(gateway.port, '/limited/after', 'after', KiB)).status).toBe(200);
  });

  /** Waits until the backend behind `received` is done with `id` (if it got it at all), then says what it saw. */
  const settledAt = async (received: Map<string, Received>, id: string) => {
    await waitFor(() => received.get(id)?.closed !== false, { timeoutMs: 10_000, message: `the backend to be done with ${id}` });
    return received.get(id);
  };

  it('forwards a chunked HTTP/1.1 body of maxSize bytes whole', async () => {
    const answer = await chunkedUpload(gateway.port, '/limited/chunked-at', 'chunked-at', MAX);
    expect(answer.status, await logOf(gateway.process)).toBe(200);
    expect(backend.received.get('chunked-at')).toMatchObject({ bytes: MAX, complete: true });
  });

  it('answers a chunked HTTP/1.1 body that grows past maxSize 413 body-too-large, aborting the upstream request', async () => {
    const answer = await chunkedUpload(gateway.port, '/limited/chunked-over', 'chunked-over', 4 * MiB);
    expect(answer.status, await logOf(gateway.process)).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'body-too-large', status: 413, service: 'upload' });
    const seen = await settledAt(backend.received, 'chunked-over');
    expect(seen?.complete ?? false).toBe(false);
    expect(seen?.bytes ?? 0).toBeLessThanOrEqual(MAX);
    expect(await accessLine('/limited/chunked-over')).toMatchObject({ method: 'POST', status: 413, errorClass: 'body-too-large', attempts: 1 });
  });

  it('answers a body already past maxSize 413 after a refused connect, without retrying it on the next instance', async () => {
    // Head and a 5 KB chunked body in one write: the gateway has read past the 1 KiB limit before a
    // refused connect comes back (I/O after the body's own tick), and undici holds the body's error
    // until it has a connection, so the refusal is what the first attempt reports.
    for (let request = 0; request < 4; request += 1) {
      const answer = await rawExchange(
        gateway.port,
        `POST /retry-limited/${request} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1388\r\n${'x'.repeat(5_000)}\r\n0\r\n\r\n`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    }
    // Round-robin puts the refused instance first for two of the four: each is still one attempt.
    const lines = await Promise.all([0, 1, 2, 3].map((request) => accessLine(`/retry-limited/${request}`)));
    expect(lines.map((line) => [line.status, line.errorClass, line.attempts])).toEqual(Array.from({ length: 4 }, () => [413, 'body-too-large', 1]));
  });

  it('cuts the exchange when the upstream had begun its answer before the body grew past maxSize', async () => {
    const answer = await chunkedUpload(gateway.port, '/limited/answered', 'answered', 4 * MiB, { 'x-answer-first': '1' }, 16 * KiB);
    expect(answer.cut, await logOf(gateway.process)).toBe(true);
    const seen = await settledAt(backend.received, 'answered');
    expect(seen).toMatchObject({ complete: false, closed: true });
    expect(await accessLine('/limited/answered')).toMatchObject({ status: 413, errorClass: 'body-too-large' });
  });

  it.each([
    ['an HTTP/1.1', '/limited/h2-at', () => backend.received],
    ['an HTTP/2', '/h2-limited/h2-at', () => h2Backend.received],
  ])('forwards an HTTP/2 body without content-length of maxSize bytes whole to %s upstream', async (kind, path, received) => {
    const id = `h2-at-${kind}`;
    const answer = await http2Upload(h2cPort, path, id, MAX, true);
    expect(answer.status, await logOf(gateway.process)).toBe(200);
    expect(received().get(id)).toMatchObject({ bytes: MAX, contentLength: undefined, complete: true });
  });

  it.each([
    ['an HTTP/1.1', '/limited/h2-chunked', 'upload', () => backend.received],
    ['an HTTP/2', '/h2-limited/h2-chunked', 'upload-h2', () => h2Backend.received],
  ])('answers an HTTP/2 body without content-length past maxSize 413 body-too-large to %s upstream, aborting its request', async (_kind, path, service, received) => {
    const id = `h2-over-${service}`;
    const answer = await http2Upload(h2cPort, path, id, 4 * MiB);
    expect(answer.status, await logOf(gateway.process)).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'body-too-large', status: 413, service });
    const seen = await settledAt(received(), id);
    expect(seen?.complete ?? false).toBe(false);
    expect(await accessLine(path)).toMatchObject({ status: 413, errorClass: 'body-too-large' });
  });

  it('asks an HTTP/2 client still sending a body past maxSize to stop: RST_STREAM NO_ERROR after the whole 413', async () => {
    const session = connectHttp2(`http://127.0.0.1:${h2cPort}`);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/limited/h2-keeps-sending', 'x-upload-id': 'h2-keeps-sending' });
      stream.on('error', () => undefined);
      let status = 0;
      let body = '';
      let ended = false;
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => (ended = true));
      // The answer's END_STREAM must come before the reset: node's client ends a stream's body on a
      // reset too, but then pushes its end with the stream already closed.
      let endStreamFirst: boolean | undefined;
      const push = stream.push;
      stream.push = function pushSeeingClose(this: typeof stream, chunk: unknown, encoding?: BufferEncoding): boolean {
        if (chunk === null) endStreamFirst ??= !stream.closed;
        return push.call(this, chunk, encoding);
      };
      // Unlike http2Upload, this client writes on after the answer came, up to CAP, and ends its
      // body there: a stream the gateway left open would take all of it and end normally.
      const CAP = 64 * MiB;
      const chunk = Buffer.alloc(16 * KiB, 7);
      let sent = 0;
      const writeMore = (): void => {
        while (sent < CAP && !stream.closed) {
          sent += chunk.length;
          if (!stream.write(chunk)) return void stream.once('drain', writeMore);
        }
        if (!stream.closed) stream.end();
      };
      writeMore();
      await waitFor(() => stream.closed, { timeoutMs: 15_000, message: 'the HTTP/2 stream to close' });
      expect({ status, ended, endStreamFirst, rstCode: stream.rstCode, sentAll: sent >= CAP }).toEqual({ status: 413, ended: true, endStreamFirst: true, rstCode: 0, sentAll: false });
      expect(JSON.parse(body)).toMatchObject({ error: 'body-too-large', status: 413 });
    } finally {
      session.destroy();
    }
    const line = await accessLine('/limited/h2-keeps-sending');
    expect(line).toMatchObject({ status: 413, errorClass: 'body-too-large' });
    expect(line).not.toHaveProperty('aborted');
  });

  it('leaves both instances healthy after several chunked uploads past maxSize', async () => {
    const upstreams = async () => {
      const services = await admin.services();
      return ['upload', 'upload-h2'].map((name) => services.find((service) => service.name === name)!.instances[0]!);
    };
    const before = await upstreams();
    const statuses: number[] = [];
    const ROUNDS = 6;
    for (let round = 0; round < ROUNDS; round += 1) {
      statuses.push((await chunkedUpload(gateway.port, `/limited/chunked-many-${round}`, `chunked-many-${round}`, 2 * MiB)).status);
      statuses.push((await http2Upload(h2cPort, `/h2-limited/h2-many-${round}`, `h2-many-${round}`, 2 * MiB)).status);
    }
    expect(statuses).toEqual(Array.from({ length: 2 * ROUNDS }, () => 413));
    const after = await upstreams();
    for (const [index, instance] of after.entries()) {
      expect(instance.health).toMatchObject({ state: 'healthy', ejectedUntil: null });
      expect(instance.routable).toBe(true);
      expect(instance.errors).toBe(before[index]!.errors);
    }
    expect((await chunkedUpload(gateway.port, '/h2-limited/after', 'h2-after', KiB)).status).toBe(200);
  });
});
