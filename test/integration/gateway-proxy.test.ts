import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { adminClient } from '../harness/admin-client.ts';
import { accessLineOf, refusingPort, logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** Echo answer of the fixture backend. */
interface Echo {
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** Sends raw bytes and collects the whole answer until the gateway closes or `timeoutMs` passes. */
function rawExchange(port: number, bytes: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
    socket.write(bytes);
  });
}

/** Sends raw bytes; resolves with the answer once the gateway closed the connection, or with `closed: false` after `timeoutMs`. */
function rawUntilClosed(port: number, bytes: string, timeoutMs = 10_000): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, timeoutMs);
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.write(bytes);
  });
}

/** The access log lines of a listener's own answers to malformed requests (no request id: none was parsed) in `gateway`'s output so far. */
async function refusalLines(gateway: GatewayProcess): Promise<Record<string, unknown>[]> {
  const output = await readFile(gateway.process.logFile, 'utf8');
  return output
    .split('\n')
    .filter((line) => line.includes('"errorClass"') && !line.includes('"requestId"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** `switchboard_requests_total` of requests that matched no route (a listener's refusals count there), with status class 4xx. */
async function unmatched4xx(adminPort: number): Promise<number> {
  return sampleValue(await adminClient(`http://127.0.0.1:${adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
}

const WS_HANDSHAKE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

const STREAMED_BODY = Buffer.alloc(32 << 20, 's');
/** One read's worth, above a response's 16 KB high-water mark. */
const CLOSING_BODY = Buffer.alloc(20_000, 'y');

describe('the gateway proxies HTTP and WebSocket through its middleware', () => {
  let backend: BackendProcess;
  let hanging: BackendProcess;
  let closedPort: number;
  let closing: Server;
  let streaming: Server;
  let streamingSmallSent = 0;
  /** An upstream that reads an upgrade request and never answers; counts the requests it got. */
  let silent: Server;
  let silentRequests = 0;
  let closingServed = 0;
  /** An upstream that keeps the path of each request it got, and answers it at once, or when the test ends it (a path ending in /held). */
  let counting: HttpServer;
  const countedPaths: string[] = [];
  const heldAnswers: ServerResponse[] = [];
  let gateway: GatewayProcess;
  let adminPort: number;
  const config = () => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
  slow: { instances: [127.0.0.1:${hanging.port}], timeouts: { headers: 300ms }, outlierDetection: false }
  refused: { instances: [127.0.0.1:${closedPort}], retries: { attempts: 1 }, outlierDetection: false }
  empty: {}
  closing: { instances: [127.0.0.1:${(closing.address() as { port: number }).port}] }
  streaming: { instances: [127.0.0.1:${(streaming.address() as { port: number }).port}] }
  silent: { instances: [127.0.0.1:${(silent.address() as { port: number }).port}], outlierDetection: false, retries: false }
  counting: { instances: [127.0.0.1:${(counting.address() as { port: number }).port}] }
routes:
  - path: /api/echo
    service: echo
    stripPrefix: true
    requestHeaders: { set: { x-team: blue }, remove: [x-secret] }
    responseHeaders: { set: { x-served-by: switchboard } }
  - { pathRegex: "^/v(\\\\d+)/items/(\\\\w+)$", service: echo, rewrite: { pattern: "^/v(\\\\d+)/items/(\\\\w+)$", replacement: "/items/$2?version=$1" } }
  - { path: /slow, service: slow }
  - { path: /refused, service: refused }
  - { path: /empty, service: empty }
  - { path: /ws, service: echo }
  - { path: /closing, service: closing }
  - { path: /streaming, service: streaming }
  - { path: /silent, service: silent }
  - { path: /counted, service: counting }
`;

  beforeAll(async () => {
    [backend, hanging] = await Promise.all([startBackend({ name: 'echo-1' }), startBackend({ name: 'hanging', delayMs: 5_000 })]);
    closedPort = await refusingPort();
    // An upstream that answers each request with "Connection: close", body and FIN written at once.
    closing = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        closingServed += 1;
        socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${CLOSING_BODY.length}\r\n\r\n`), CLOSING_BODY]));
      });
    });
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    // An upstream that sends 32 MB for /streaming/big at once (more than loopback's socket buffers
    // hold), and answers anything else with a few bytes 300 ms later.
    streaming = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (request: Buffer) => {
        if (request.includes('/streaming/big')) {
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${STREAMED_BODY.length}\r\n\r\n`);
          return void socket.write(STREAMED_BODY);
        }
        setTimeout(() => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nsmall', () => (streamingSmallSent += 1)), 300);
      });
    });
    await new Promise<void>((resolve) => streaming.listen(0, '127.0.0.1', resolve));
    silent = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => (silentRequests += 1));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    counting = createHttpServer((request, response) => {
      countedPaths.push(request.url ?? '');
      request.resume();
      request.on('end', () => (request.url?.endsWith('/held') ? heldAnswers.push(response) : response.end('counted')));
    });
    await new Promise<void>((resolve) => counting.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(config());
    adminPort = gateway.adminPort;
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([backend?.process.kill(), hanging?.process.kill()]);
    closing?.close();
    streaming?.close();
    silent?.close();
    counting?.close();
  });

  async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: string }> {
    const response = await fetch(`${gateway.url}${path}`, { headers });
    return { status: response.status, headers: response.headers, body: await response.text() };
  }

  it('strips the route prefix, applies the header policy and appends X-Forwarded-For', async () => {
    const response = await get('/api/echo/users/7?tenant=a', { 'x-secret': 'hunter2', 'x-forwarded-for': '203.0.113.9' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-served-by')).toBe('switchboard');
    expect(response.headers.get('x-request-id')).toMatch(/^[\w.-]+$/);
    const echo = JSON.parse(response.body) as Echo;
    expect(echo.url).toBe('/users/7?tenant=a');
    expect(echo.headers['x-team']).toBe('blue');
    expect(echo.headers['x-secret']).toBeUndefined();
    // The client is not a trusted proxy: its X-Forwarded-For is replaced, not extended.
    expect(echo.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(echo.headers['x-forwarded-proto']).toBe('http');
    expect(echo.headers['x-request-id']).toBe(response.headers.get('x-request-id'));
    expect(echo.headers.connection).not.toMatch(/x-secret/);
  });

  it('rewrites the path with regex groups', async () => {
    const echo = JSON.parse((await get('/v2/items/widget')).body) as Echo;
    expect(echo.url).toBe('/items/widget?version=2');
  });

  it('answers 504 when the upstream does not answer within the headers timeout', async () => {
    const started = Date.now();
    const response = await get('/slow');
    expect(response.status).toBe(504);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'headers-timeout', status: 504 });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('answers 502 when the upstream refuses the connection', async () => {
    const response = await get('/refused');
    expect(response.status).toBe(502);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'connect-refused', requestId: response.headers.get('x-request-id') });
  });

  it('answers 503 when the service has no instance', async () => {
    const response = await get('/empty');
    expect(response.status).toBe(503);
    expect(JSON.parse(response.body)).toMatchObject({ error: 'no-instances' });
  });

  it('answers 404 for a path no route matches', async () => {
    expect((await get('/nowhere')).status).toBe(404);
  });

  it('proxies a WebSocket and echoes messages both ways', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws`);
    const messages: string[] = [];
    socket.addEventListener('message', (event) => messages.push(String(event.data)));
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
    });
    socket.send('hello');
    socket.send('again');
    await waitFor(() => messages.length === 2, { timeoutMs: 5_000, message: 'two echoes' });
    expect(messages).toEqual(['echo-1: hello', 'echo-1: again']);
    const closed = new Promise<number>((resolve) => socket.addEventListener('close', (event) => resolve(event.code)));
    socket.close(1000);
    expect(await closed).toBe(1000);
  });

  it('closes the connection after an upgrade it answers itself, once the answer is sent', async () => {
    const { answer, closed } = await rawUntilClosed(gateway.port, `GET /nowhere HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(closed).toBe(true);
  });

  it('answers requests and then an upgrade pipelined behind them on the same connection', async () => {
    const requests = `GET /api/echo/first HTTP/1.1\r\nHost: a\r\n\r\nGET /api/echo/second HTTP/1.1\r\nHost: a\r\n\r\n`;
    const { answer, closed } = await rawUntilClosed(gateway.port, `${requests}GET /nowhere HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    expect([...answer.matchAll(/^HTTP\/1\.1 (\d+) /gm)].map((match) => match[1])).toEqual(['200', '200', '404']);
    expect(closed).toBe(true);
    expect(gateway.process.running).toBe(true);
    expect((await get('/api/echo/still-here')).status).toBe(200);
  });

  it('logs 499 cancelled for an upgrade pipelined behind an answer when the connection breaks first', async () => {
    const before = silentRequests;
    const socket = connect(gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`GET /silent/ahead-of-upgrade HTTP/1.1\r\nHost: a\r\n\r\nGET /ws/pipelined-upgrade HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    await waitFor(() => silentRequests > before, { timeoutMs: 5_000, message: 'the request ahead to reach its upstream' });
    socket.resetAndDestroy();
    // Before, the upgrade that waited its turn was dropped with the connection: no line, no metric.
    expect(await accessLineOf(gateway.process, '/ws/pipelined-upgrade', { timeoutMs: 5_000 })).toMatchObject({ status: 499, errorClass: 'cancelled', bytes: 0, attempts: 0 });
  });

  it('survives a client that resets its connection while the upgrade waits for the upstream', async () => {
    const before = silentRequests;
    const socket = connect(gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`GET /silent/ws HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    await waitFor(() => silentRequests > before, { timeoutMs: 5_000, message: 'the upgrade to reach the upstream' });
    socket.resetAndDestroy();
    await waitFor(async () => (await get('/api/echo/after-reset')).status === 200, { timeoutMs: 5_000, message: 'the gateway to answer after the reset' });
    expect(gateway.process.running).toBe(true);
  });

  it('answers an Upgrade: h2c offer over HTTP/1.1, as if it had not been made', async () => {
    const { answer } = await rawUntilClosed(gateway.port, 'GET /api/echo/h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    // The body as the client got it (chunked): the echo's JSON inside.
    const echo = JSON.parse(answer.slice(answer.indexOf('{'), answer.lastIndexOf('}') + 1)) as Echo;
    expect(echo.url).toBe('/h2c');
    expect(echo.headers).not.toHaveProperty('upgrade');
    expect(echo.headers).not.toHaveProperty('http2-settings');
  });

  it('drops HTTP2-Settings that the client did not name in Connection, since it belongs to that connection alone', async () => {
    const { answer } = await rawUntilClosed(gateway.port, 'GET /api/echo/h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(answer.slice(answer.indexOf('{'), answer.lastIndexOf('}') + 1))).not.toHaveProperty(['headers', 'http2-settings']);
    const plain = await get('/api/echo/settings', { 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' });
    expect((JSON.parse(plain.body) as Echo).headers).not.toHaveProperty('http2-settings');
  });

  it('streams a big answer to an Upgrade: h2c offer whole, and refuses an offer with a body', async () => {
    const received = await new Promise<number>((resolve, reject) => {
      const socket = connect(gateway.port, '127.0.0.1');
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('error', reject);
      socket.on('close', () => resolve(bytes));
      // A stalled answer fails the byte count instead of the test's own timeout.
      socket.setTimeout(20_000, () => socket.destroy());
      socket.write(`GET /api/echo/bytes/${16 << 20} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`);
    });
    // The whole body (and its head) arrived before the gateway closed the connection.
    expect(received).toBeGreaterThan(16 << 20);
    const { answer } = await rawUntilClosed(gateway.port, 'POST /api/echo/h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('h2c');
  });

  it('refuses oversized headers with 431 and malformed bytes with 400, logs and counts each answer, and keeps serving', async () => {
    const countedBefore = await unmatched4xx(adminPort);
    const oversized = await rawExchange(gateway.port, `GET /api/echo/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    expect(oversized).toMatch(/^HTTP\/1\.1 431 /);
    const malformed = await rawExchange(gateway.port, 'GARBAGE\r\n\r\n');
    expect(malformed).toMatch(/^HTTP\/1\.1 400 /);
    // A chunked body that fails right behind its head: the head was parsed, so its line has method and path.
    const badChunk = await rawExchange(gateway.port, 'POST /api/echo/chunks?n=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    expect(badChunk).toMatch(/^HTTP\/1\.1 400 /);
    expect((await get('/api/echo/still-here')).status).toBe(200);

    const lines = await waitFor(async () => {
      const found = await refusalLines(gateway);
      return found.length >= 3 && found;
    }, { timeoutMs: 5_000, message: 'three refusal lines in the access log' });
    expect(lines).toEqual([
      { level: 30, time: expect.any(String), status: 431, durationMs: 0, bytes: 85, attempts: 0, clientIp: '127.0.0.1', errorClass: 'header-too-large' },
      { level: 30, time: expect.any(String), status: 400, durationMs: 0, bytes: 60, attempts: 0, clientIp: '127.0.0.1', errorClass: 'bad-request' },
      { level: 30, time: expect.any(String), method: 'POST', path: '/api/echo/chunks?n=1', status: 400, durationMs: 0, bytes: 60, attempts: 0, clientIp: '127.0.0.1', errorClass: 'bad-request' },
    ]);
    // Not a byte of the header block that was too large reaches the log.
    expect(await readFile(gateway.process.logFile, 'utf8')).not.toContain('a'.repeat(64));
    // Counted as requests that matched no route are (the well-formed request after them matched one).
    expect(await unmatched4xx(adminPort)).toBe(countedBefore + 3);
  });

  it('answers a CONNECT request with 405 after the requests pipelined before it and closes the connection, answers an Expect other than 100-continue with 417, and logs and counts both', async () => {
    const countedBefore = await unmatched4xx(adminPort);
    const linesBefore = (await refusalLines(gateway)).length;
    const requests = `GET /api/echo/first HTTP/1.1\r\nHost: a\r\n\r\nGET /api/echo/second HTTP/1.1\r\nHost: a\r\n\r\n`;
    const tunnel = await rawUntilClosed(gateway.port, `${requests}CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n`);
    expect([...tunnel.answer.matchAll(/^HTTP\/1\.1 (\d+) /gm)].map((match) => match[1])).toEqual(['200', '200', '405']);
    expect(tunnel.closed).toBe(true);
    expect(tunnel.answer).toMatch(/HTTP\/1\.1 405 Method Not Allowed\r\n(?:[^\r\n]+\r\n)*allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n/);
    // A body announced and never sent: the 417 comes without it, and the connection closes rather than wait for it.
    const expectation = await rawUntilClosed(gateway.port, 'POST /api/echo/expect?x=1 HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n');
    expect(expectation.answer).toMatch(/^HTTP\/1\.1 417 /);
    expect(expectation.closed).toBe(true);
    const bodies = [tunnel.answer, expectation.answer].map((answer) => JSON.parse(answer.slice(answer.lastIndexOf('{'))) as unknown);
    expect(bodies).toEqual([
      { error: 'method-not-allowed', status: 405, message: 'Method Not Allowed' },
      { error: 'expectation-failed', status: 417, message: 'Expectation Failed' },
    ]);
    expect(gateway.process.running).toBe(true);

    const lines = await waitFor(async () => {
      const found = (await refusalLines(gateway)).slice(linesBefore);
      return found.length >= 2 && found;
    }, { timeoutMs: 5_000, message: 'two refusal lines in the access log' });
    expect(lines).toEqual([
      { level: 30, time: expect.any(String), method: 'CONNECT', path: 'example.test:443', status: 405, durationMs: 0, bytes: 74, attempts: 0, clientIp: '127.0.0.1', errorClass: 'method-not-allowed' },
      { level: 30, time: expect.any(String), method: 'POST', path: '/api/echo/expect?x=1', status: 417, durationMs: 0, bytes: 74, attempts: 0, clientIp: '127.0.0.1', errorClass: 'expectation-failed' },
    ]);
    expect(await unmatched4xx(adminPort)).toBe(countedBefore + 2);
  });

  it('lets no request pipelined behind a 417 or a CONNECT reach an upstream, since the connection closes after their answer', async () => {
    const before = countedPaths.length;
    const behind = (name: string) => `POST /counted/${name} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi`;
    /** Sends `refusal` behind a request the upstream holds, and the request behind it; answers once the held one is let go. */
    const refuseBehindHeld = async (refusal: string) => {
      const held = heldAnswers.length;
      const exchange = rawUntilClosed(gateway.port, `GET /counted/held HTTP/1.1\r\nHost: a\r\n\r\n${refusal}${behind('after')}`);
      // The connection stays open while the refusal waits its turn: Node read on after a 417, and
      // the request behind it was proxied, its answer then thrown away with the connection.
      await waitFor(() => heldAnswers.length > held, { timeoutMs: 5_000, message: 'the first request to reach the upstream' });
      heldAnswers.shift()!.end('released');
      const { answer, closed } = await exchange;
      return { statuses: [...answer.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1]), closed };
    };
    expect(await refuseBehindHeld('POST /counted/refused HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 5\r\n\r\nhello')).toEqual({ statuses: ['200', '417'], closed: true });
    expect(await refuseBehindHeld('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n')).toEqual({ statuses: ['200', '405'], closed: true });
    // A request sent after both on a connection of its own, answered: what they let through came to the upstream before it.
    const marker = await rawUntilClosed(gateway.port, behind('marker').replace('Host: a', 'Host: a\r\nConnection: close'));
    expect(marker.answer).toMatch(/^HTTP\/1\.1 200 [^]*counted$/);
    expect(countedPaths.slice(before)).toEqual(['/counted/held', '/counted/held', '/counted/marker']);
  });

  // A socket closed with bytes unread makes the kernel reset the connection, and on Linux the reset
  // throws away what the gateway had written and the client had not yet received: here the tail of
  // a big answer pipelined before the refusal, and the refusal itself, which the bytes sent with the
  // refused head (a tunnel's, a body announced) kept from being read.
  it.each([
    { refused: 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n', status: '405 Method Not Allowed', error: 'method-not-allowed' },
    { refused: `POST /api/echo/refused HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: ${1 << 20}\r\n\r\n`, status: '417 Expectation Failed', error: 'expectation-failed' },
  ])('sends the whole $status, and the answers before it, when bytes came with the refused head, then closes cleanly', async ({ refused, status, error: code }) => {
    const size = 8 << 20;
    const sentWithHead = Buffer.alloc(1 << 20, 't');
    const { bytes, tail, error } = await new Promise<{ bytes: number; tail: string; error: string | undefined }>((resolve) => {
      const socket = connect(gateway.port, '127.0.0.1');
      let received = 0;
      let last = '';
      let failure: string | undefined;
      const deadline = setTimeout(() => socket.destroy(), 20_000);
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        last = (last + chunk.subarray(-512).toString('latin1')).slice(-512);
        // A client that reads a little slower than the gateway writes: the gateway's socket then
        // holds unsent bytes when the refusal is written, which a reset would throw away.
        socket.pause();
        setTimeout(() => socket.resume(), 1);
      });
      socket.on('error', (cause: NodeJS.ErrnoException) => (failure = cause.code));
      socket.on('close', () => {
        clearTimeout(deadline);
        resolve({ bytes: received, tail: last, error: failure });
      });
      socket.write(Buffer.concat([Buffer.from(`GET /api/echo/bytes/${size} HTTP/1.1\r\nHost: a\r\n\r\n${refused}`), sentWithHead]));
    });
    expect(error).toBeUndefined();
    expect(bytes).toBeGreaterThan(size);
    expect(tail).toMatch(new RegExp(`^b+HTTP/1\\.1 ${status}\\r\\n[^]*\\r\\n\\r\\n\\{"error":"${code}","status":\\d+,"message":"[\\w ]+"\\}$`));
  });

  // undici 7 threw an uncatchable AssertionError when an upstream closed a connection it did not
  // keep alive while the gateway held its answer back: the gateway exited (nodejs/undici#5360,
  // gateway/transports/undici-connector.ts). A pipelined request's answer waits behind the one
  // before it (here a 504 after the slow service's 300 ms), so the gateway holds it back for sure.
  it('passes on an answer that an upstream ends by closing while the gateway holds it back, and keeps running', async () => {
    const answer = await rawExchange(gateway.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /closing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 10_000);
    expect(gateway.process.running, `the gateway exited; its log ends:\n${(await logOf(gateway.process)).slice(-3_000)}`).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 504 [^]*HTTP\/1\.1 200 OK/);
    expect(answer.endsWith(`\r\n\r\n${CLOSING_BODY.toString('latin1')}`)).toBe(true);
    expect(closingServed).toBe(1);
    expect((await get('/api/echo/still-here')).status).toBe(200);
  });

  // Node's server emits 'drain' on the answer being streamed from inside the write of the answer
  // pipelined behind it, which runs inside undici's parser for that answer. Resuming the first
  // upstream there failed undici's currentParser === null assertion: the second answer was lost
  // and the first stayed paused for good after ~4 MB.
  it('streams a big answer to a client that reads late while the answer pipelined behind it arrives', async () => {
    const socket = connect(gateway.port, '127.0.0.1');
    // What the assertions need of the 32 MB: the byte count and the first and last bytes.
    let bytes = 0;
    let head = '';
    let tail = '';
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    const deadline = setTimeout(() => socket.destroy(), 20_000);
    try {
      socket.write('GET /streaming/big HTTP/1.1\r\nHost: a\r\n\r\nGET /streaming/small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      socket.pause();
      // The client reads nothing until the second answer has left its upstream.
      await waitFor(() => streamingSmallSent >= 1, { timeoutMs: 10_000, message: 'the second upstream to answer' });
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (head.length < 64) head += chunk.subarray(0, 64).toString('latin1');
        tail = (tail + chunk.subarray(-1024).toString('latin1')).slice(-1024);
      });
      socket.resume();
      await closed;
    } finally {
      clearTimeout(deadline);
      socket.destroy();
    }
    expect(bytes, (await logOf(gateway.process)).slice(-2_000)).toBeGreaterThan(STREAMED_BODY.length);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(tail).toMatch(/HTTP\/1\.1 200 OK[^]*\r\n\r\nsmall$/);
  });

  it('times out a client that sends its headers too slowly, and keeps serving others', async () => {
    // Limits apply at start: a second gateway with a short headers timeout.
    const strict = await startGateway(`${config()}\nlimits: { headersTimeout: 1s }\n`);
    try {
      const started = Date.now();
      const answer = await rawExchange(strict.port, 'GET /api/echo/x HTTP/1.1\r\nHost: a\r\n', 10_000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await fetch(`${strict.url}/api/echo/fine`)).status).toBe(200);
      // The 408 is one access line and one request no route matched.
      const lines = await waitFor(async () => {
        const found = await refusalLines(strict);
        return found.length > 0 && found;
      }, { timeoutMs: 5_000, message: 'the refusal line in the access log' });
      expect(lines).toEqual([{ level: 30, time: expect.any(String), status: 408, durationMs: 0, bytes: 68, attempts: 0, clientIp: '127.0.0.1', errorClass: 'request-timeout' }]);
      expect(await unmatched4xx(strict.adminPort)).toBe(1);
    } finally {
      await strict.process.stop();
    }
  });

  it('refuses an invalid configuration edit and keeps routing, then applies a valid one', async () => {
    await gateway.writeConfig(`${config()}\n  - { path: /typo, servce: echo }\n`);
    await waitFor(async () => (await logOf(gateway.process)).includes('configuration refused'), { timeoutMs: 5_000, message: 'the refusal in the log' });
    expect(await logOf(gateway.process)).toMatch(/routes\.10\.servce \(line \d+\)/);
    expect((await get('/api/echo/ok')).status).toBe(200);

    await gateway.writeConfig(`${config()}\n  - { path: /added, service: echo, stripPrefix: true }\n`);
    await waitFor(async () => (await get('/added/x')).status === 200, { timeoutMs: 5_000, message: 'the new route to serve' });
    expect((JSON.parse((await get('/added/x')).body) as Echo).url).toBe('/x');
  });
});
