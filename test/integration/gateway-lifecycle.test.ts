import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'undici';
import { acceptsConnections, logOf, startBackend, startGateway, waitFor } from '../harness/index.ts';
import { lifecycleConfigFor as configFor, lifecycleFixtures } from '../harness/gateway-lifecycle.ts';

const { gateways, closers, gatewayOverHeldBackend } = lifecycleFixtures();

const WS_HANDSHAKE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('gateway lifecycle', () => {
  it('retries on a new connection when the backend closed the reused keep-alive socket', async () => {
    // A real HTTP/1.1 peer that answers the first request of each connection and closes the
    // connection, without a word, when a second request arrives on it.
    let connections = 0;
    const backend = createTcpServer((socket) => {
      connections += 1;
      let requests = 0;
      socket.on('data', (chunk) => {
        if (!chunk.toString().includes('\r\n\r\n')) return;
        requests += 1;
        if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        else socket.destroy();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const first = await fetch(`${gateway.url}/a`);
    expect([first.status, await first.text()]).toEqual([200, 'ok']);
    const second = await fetch(`${gateway.url}/b`);
    expect([second.status, await second.text()]).toEqual([200, 'ok']);
    // The second request went out on the pooled socket, met the close, and was sent again on a new one.
    expect(connections).toBe(2);
    expect(await logOf(gateway.process)).toMatch(/retrying on another instance/);
  });

  it('drains on SIGTERM: stops accepting, finishes the request in flight, then exits 0', async () => {
    const { gateway, waiting } = await gatewayOverHeldBackend();

    const inFlight = fetch(`${gateway.url}/slow`).then(async (response) => [response.status, await response.text()]);
    await waitFor(() => waiting.length === 1, { message: 'the request to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    expect(gateway.process.running).toBe(true);

    waiting[0]!.end('finished');
    expect(await inFlight).toEqual([200, 'finished']);
    const exit = await gateway.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
  });

  it('ends on SIGTERM while a cache reads a body on after its client\'s 206 was sent: the read-on holds no drain, is cut after the pools\' grace, and its line is logged', async () => {
    const { gateway, waiting } = await gatewayOverHeldBackend('middlewares:\n  memory: { cache: { maxSize: 1MiB } }\nshutdown: { drainTimeout: 20s }\n', 'memory');
    const part = fetch(`${gateway.url}/video`, { headers: { range: 'bytes=0-9' } }).then(async (response) => [response.status, await response.text()]);
    await waitFor(() => waiting.length === 1, { message: 'the request to reach the backend' });
    // 1000 bytes announced, to be stored; the first 100 come, the rest never.
    waiting[0]!.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'max-age=60', 'content-length': 1000 });
    waiting[0]!.write(Buffer.alloc(100, 'v'));
    expect(await part).toEqual([206, 'vvvvvvvvvv']);
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    expect((await gateway.process.waitForExit(15_000)).code).toBe(0);
    // Not held to drainTimeout (20 s): the client's answer was done; the read-on has the pools' 1 s grace.
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    const line = (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/video"'));
    expect(line && JSON.parse(line)).toMatchObject({ status: 206, bytes: 10 });
  });

  it.each([
    ['held before its head', false],
    ['cut mid-body by the pools\' grace', true],
  ] as const)('ends on SIGTERM within the pools\' grace, not drainTimeout, while a cache\'s background update is %s at the backend', async (_what, midBody) => {
    const { gateway, waiting } = await gatewayOverHeldBackend('middlewares:\n  behind: { cache: { maxSize: 1MiB, useStale: { on: [updating] }, backgroundUpdate: true } }\nshutdown: { drainTimeout: 20s }\n', 'behind');
    const status = async () => (await fetch(`${gateway.url}/page`)).headers.get('x-cache-status');
    const first = status();
    await waitFor(() => waiting.length === 1, { message: 'the first request to reach the backend' });
    waiting[0]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=1' }).end('first');
    expect(await first).toBe('MISS');
    // Stale after a second: its first stale request is answered at once, and the update goes upstream without a client.
    await waitFor(async () => (await status()) === 'STALE', { message: 'the stored answer to go stale', intervalMs: 100, timeoutMs: 10_000 });
    await waitFor(() => waiting.length === 2, { message: 'the background update to reach the backend' });
    if (midBody) {
      // Storable, 1000 bytes announced: the first 100 come, the rest never.
      waiting[1]!.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', 'content-length': 1000 });
      await new Promise((resolve) => waiting[1]!.write(Buffer.alloc(100, 'v'), resolve));
    }
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    // Exits cleanly (no crash as the pools' grace cuts the update), and not held to drainTimeout (20 s): no client waits for the update.
    expect((await gateway.process.waitForExit(15_000)).code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
  });

  it('drains a keep-alive connection after its last answer: every answer before it arrives, and no request pipelined behind it reaches the upstream', async () => {
    const { gateway, paths, waiting } = await gatewayOverHeldBackend();

    const client = connect(gateway.port, '127.0.0.1');
    let answer = '';
    client.on('data', (chunk) => (answer += chunk.toString()));
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => waiting.length === 2, { timeoutMs: 5_000, message: 'both pipelined requests to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    // Sent once the drain has marked the answer to /second as the connection's last.
    client.write('GET /third HTTP/1.1\r\nHost: a\r\n\r\nPOST /fourth HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi');
    const skipped = async () => (await logOf(gateway.process)).split('closes its connection is not served').length - 1;
    await waitFor(async () => paths.length === 4 || (await skipped()) === 2, { timeoutMs: 5_000, message: 'the gateway to read the requests sent while draining' });
    waiting[0]!.end('one');
    waiting[1]!.end('two');
    await closed;
    const heads = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) [^]*?\r\n\r\n/g)];
    expect(heads.map(([head, status]) => [status, /^connection: close\r$/im.test(head)])).toEqual([
      ['200', false],
      ['200', true],
    ]);
    expect(answer).toMatch(/one[^]*two$/);
    expect(paths).toEqual(['/first', '/second']);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
  });

  // A socket closed with bytes unread, or that bytes reach once closed, makes the kernel reset the
  // connection, and on Linux the reset throws away what the gateway had written and the client had
  // not yet received: here the tail of the drain's last answer, which the body of a request
  // pipelined behind it, not served, still on its way, would cut.
  it('sends the whole of the last answer of a draining connection to a client that reads it slowly while it sends a big body behind it', async () => {
    const size = 8 << 20;
    const { gateway, paths, waiting } = await gatewayOverHeldBackend();

    const client = connect(gateway.port, '127.0.0.1');
    const body = Buffer.alloc(1 << 20, 't');
    let sent = 64 << 10;
    let head = '';
    let bytes = 0;
    let tail = '';
    let error: string | undefined;
    client.on('data', (chunk: Buffer) => {
      if (head === '') head = chunk.toString('latin1', 0, chunk.indexOf('\r\n\r\n') + 4);
      bytes += chunk.length;
      tail = (tail + chunk.subarray(-512).toString('latin1')).slice(-512);
      // The body goes on while the answer comes, the rest of it once the answer is whole: what
      // the gateway is still to read when it has sent its last byte.
      const whole = bytes - head.length === size;
      const next = whole ? body.length : Math.min(body.length, sent + (4 << 10));
      if (next > sent) client.write(body.subarray(sent, next));
      sent = next;
      if (whole) return void client.end();
      // A client that reads a little slower than the gateway writes: the gateway's socket then
      // holds unsent bytes when the answer ends, which a reset would throw away.
      client.pause();
      setTimeout(() => client.resume(), 1);
    });
    client.on('error', (cause: NodeJS.ErrnoException) => (error = cause.code));
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => waiting.length === 1, { timeoutMs: 5_000, message: 'the request to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    // Sent once the drain has made the answer to /big the connection's last.
    client.write(Buffer.concat([Buffer.from(`POST /behind HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`), body.subarray(0, sent)]));
    await waitFor(async () => (await logOf(gateway.process)).includes('closes its connection is not served'), {
      timeoutMs: 5_000,
      message: 'the gateway to read the request behind the answer',
    });
    waiting[0]!.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    waiting[0]!.end(Buffer.alloc(size, 'b'));
    await closed;
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\nconnection: close\r\n/i);
    expect({ error, body: bytes - head.length, tail }).toEqual({ error: undefined, body: size, tail: 'b'.repeat(512) });
    expect(paths).toEqual(['/big']);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
  });

  // Node's server counts a connection whose answer is written and whose next request has not begun
  // as idle, and the drain closes idle connections every 50 ms: a lingering one among them would
  // be closed before the bytes its client sends after the answer reach it, and those bytes, reaching
  // a closed socket, would have it reset, the end of the answer still on its way with it. An idle
  // keep-alive connection is still closed at once.
  it('keeps a draining connection lingering after its last answer when the client sends a request only once the answer is written, and closes an idle keep-alive one at once', async () => {
    const size = 512 << 10;
    const { gateway, paths, waiting, held } = await gatewayOverHeldBackend();

    // An answer whose head is sent before the drain, which therefore keeps its connection alive:
    // once it ends, the connection is idle, and the drain closes it (long before keepAliveTimeout).
    const keptAlive = connect(gateway.port, '127.0.0.1');
    closers.push(() => keptAlive.destroy());
    let streamed = '';
    let keptAliveClosed = false;
    keptAlive.on('data', (chunk) => (streamed += chunk.toString()));
    keptAlive.on('error', () => undefined);
    keptAlive.on('close', () => (keptAliveClosed = true));
    keptAlive.write('GET /stream HTTP/1.1\r\nHost: a\r\n\r\n');

    const client = connect(gateway.port, '127.0.0.1');
    // Nothing read until the gateway has written the whole answer: the kernel's buffers hold it.
    client.pause();
    const chunks: Buffer[] = [];
    let error: string | undefined;
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    client.on('error', (cause: NodeJS.ErrnoException) => (error = cause.code));
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => waiting.length === 2, { timeoutMs: 5_000, message: 'the requests to reach the backend' });
    held('/stream')!.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4 });
    held('/stream')!.write('on');
    await waitFor(() => streamed.endsWith('on'), { timeoutMs: 5_000, message: 'the head of /stream' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    held('/stream')!.end('ce');
    held('/big')!.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    held('/big')!.end(Buffer.alloc(size, 'b'));
    await waitFor(() => keptAliveClosed, { timeoutMs: 5_000, message: 'the idle keep-alive connection to be closed' });
    expect(streamed).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nonce$/);
    expect(streamed).not.toMatch(/\r\nconnection: close\r\n/i);
    // The access line is written once the answer has ended: the gateway has written all of it.
    await waitFor(async () => /"path":"\/big".*"status":200/.test(await logOf(gateway.process)), {
      timeoutMs: 5_000,
      message: 'the gateway to write the whole answer',
    });
    // A client that sends its next request a while after the answer was written (several of the
    // drain's 50 ms idle sweeps): only then does it read the answer.
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.write(`POST /behind HTTP/1.1\r\nHost: a\r\nContent-Length: ${64 << 10}\r\n\r\n${'t'.repeat(64 << 10)}`);
    client.resume();
    await closed;
    const answer = Buffer.concat(chunks);
    const headLength = answer.indexOf('\r\n\r\n') + 4;
    const head = answer.toString('latin1', 0, headLength);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\nconnection: close\r\n/i);
    expect({ error, body: answer.length - headLength, tail: answer.toString('latin1', answer.length - 512) }).toEqual({
      error: undefined,
      body: size,
      tail: 'b'.repeat(512),
    });
    expect(paths.sort()).toEqual(['/big', '/stream']);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
  });

  it('keeps a connection lingering after its last answer until the drain deadline, and cuts it there, so SIGTERM ends the process in time', async () => {
    // 3 s: the steps before the answer (the listener closing, the log line) must fit in it on a loaded machine.
    const { gateway, waiting } = await gatewayOverHeldBackend('\nshutdown: { drainTimeout: 3s }\n');

    // Half-open allowed: the client does not close its side when the gateway closes its own.
    const client = connect({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    closers.push(() => client.destroy());
    let answer = '';
    client.on('data', (chunk) => (answer += chunk.toString()));
    client.on('error', () => undefined);
    client.write('GET /held HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => waiting.length === 1, { timeoutMs: 5_000, message: 'the request to reach the backend' });
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    // A body that never ends and a client that never closes: the connection lingers after the answer.
    client.write('POST /behind HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nstarted');
    const lastSentAt = Date.now();
    await waitFor(async () => (await logOf(gateway.process)).includes('closes its connection is not served'), {
      timeoutMs: 5_000,
      message: 'the gateway to read the request behind the answer',
    });
    waiting[0]!.end('answered');
    await waitFor(() => answer.endsWith('answered'), { timeoutMs: 5_000, message: 'the answer' });
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
    const exitedAt = Date.now();
    // The lingering connection held the drain until its deadline (3 s after the signal): a gateway
    // that closed it with the answer would have exited at once.
    expect(exitedAt - signalledAt).toBeGreaterThanOrEqual(2_900);
    // Cut at the deadline, not when the linger would give up (5 s after the client's last bytes).
    expect(exitedAt - lastSentAt).toBeLessThan(5_000);
  });

  it('holds a connection that never sends its head (no byte, or part of one) to headersTimeout while draining, not to the drain deadline: SIGTERM ends the process long before drainTimeout', async () => {
    const { gateway } = await gatewayOverHeldBackend('\nlimits: { headersTimeout: 1s }\nshutdown: { drainTimeout: 20s }\n');
    const silent = async (sent: string) => {
      const client = connect(gateway.port, '127.0.0.1');
      closers.push(() => client.destroy());
      let answer = '';
      client.on('data', (chunk) => (answer += chunk.toString()));
      client.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
      await new Promise((resolve) => client.once('connect', resolve));
      if (sent !== '') client.write(sent);
      return { closed, answer: () => answer };
    };
    const [mute, partial] = await Promise.all([silent(''), silent('GET /never-finished HTTP/1.1\r\nHost: a\r\n')]);
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    expect((await gateway.process.waitForExit(15_000)).code).toBe(0);
    // headersTimeout (1 s) and Node's check of it (every second), not the 20 s drain deadline: node:http's
    // close stopped those checks, so such a connection held the drain to its end.
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    await Promise.all([mute.closed, partial.closed]);
    // Each is answered 408, or closed with nothing (the one that sent nothing may go with the drain's idle
    // sweeps; the other's bytes may reach the gateway only after that): never anything else.
    const timedOut = expect.stringMatching(/^(HTTP\/1\.1 408 |$)/);
    expect([mute.answer(), partial.answer()]).toEqual([timedOut, timedOut]);
  });

  it('answers a WebSocket upgrade pipelined while draining with a logged 503 once the answer before it is whole, and passes it to no upstream', async () => {
    const streams: ServerResponse[] = [];
    let upgrades = 0;
    const backend = createHttpServer((request, response) => {
      request.resume();
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('streamed-');
      streams.push(response);
    });
    backend.on('upgrade', (_request, socket) => {
      upgrades += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const gateway = await startGateway(configFor((backend.address() as AddressInfo).port));
    gateways.push(gateway);

    const client = connect(gateway.port, '127.0.0.1');
    let answer = '';
    let closed = false;
    client.on('data', (chunk) => (answer += chunk.toString()));
    client.on('error', () => undefined);
    client.on('close', () => (closed = true));
    client.write('GET /stream HTTP/1.1\r\nHost: a\r\n\r\n');
    // Its head already sent, the streamed answer keeps the connection open through the drain.
    await waitFor(() => answer.includes('streamed-'), { timeoutMs: 5_000, message: 'the head and first bytes of the streamed answer' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    client.write(`GET /ws HTTP/1.1\r\nHost: a\r\n${WS_HANDSHAKE}\r\n`);
    await waitFor(async () => closed || (await logOf(gateway.process)).includes('refuses waits for the answers before it'), {
      timeoutMs: 5_000,
      message: 'the gateway to read the upgrade',
    });
    streams[0]!.end('rest');
    await waitFor(() => closed, { timeoutMs: 10_000, message: 'the gateway to close the connection' });
    expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*streamed-[^]*rest[^]*\r\n0\r\n\r\nHTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n\r\n\{"error":"draining","status":503,"message":"Service Unavailable"\}$/);
    expect(upgrades).toBe(0);
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
    const lines = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('"errorClass":"draining"'));
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([expect.objectContaining({ status: 503, method: 'GET', path: '/ws', bytes: 65 })]);
  });

  it.each(['HTTP/1.1', 'HTTP/2'] as const)('logs a %s request the drain deadline cuts as the gateway\'s doing (503 drain-timeout), not as a client that left (499 cancelled)', async (protocol) => {
    const h2c = protocol === 'HTTP/2';
    const { gateway, waiting } = await gatewayOverHeldBackend('shutdown: { drainTimeout: 1s }\n', '', h2c);
    let cut: Promise<unknown>;
    if (h2c) {
      const session = http2Connect(`http://127.0.0.1:${gateway.port}`);
      session.on('error', () => undefined);
      closers.push(() => session.destroy());
      const stream = session.request({ ':path': '/held' });
      stream.resume();
      cut = new Promise((resolve) => stream.on('close', resolve).on('error', () => undefined));
    } else {
      cut = fetch(`${gateway.url}/held`).then((response) => response.text()).catch((error: unknown) => error);
    }
    await waitFor(() => waiting.length === 1, { message: 'the request to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await cut;
    expect((await gateway.process.waitForExit(10_000)).code).toBe(0);
    const line = (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/held"'));
    // The client waited all along: the gateway cut it, at the deadline it was told to keep.
    expect(JSON.parse(line ?? '{}')).toMatchObject({ status: 503, errorClass: 'drain-timeout', aborted: true });
  });

  it('closes open WebSockets at the drain deadline, so SIGTERM always ends the process', async () => {
    const backend = await startBackend({ name: 'ws' });
    closers.push(() => void backend.process.kill());
    const gateway = await startGateway(`${configFor(backend.port)}\nshutdown: { drainTimeout: 1s }\n`);
    gateways.push(gateway);
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws`);
    const closed = new Promise<number>((resolve) => socket.addEventListener('close', () => resolve(Date.now())));
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
    });
    const signalledAt = Date.now();
    process.kill(gateway.process.pid!, 'SIGTERM');
    // A WebSocket left open past the deadline would keep the process alive: it never exits.
    const exit = await gateway.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
    // Open until the deadline (1 s), not cut at the signal: a WebSocket gets the drain time too.
    expect((await closed) - signalledAt).toBeGreaterThanOrEqual(900);
    // Its line is written once the tunnel has closed, which the deadline's cut did just before the
    // access log closed: the shutdown waits for it rather than exit without it.
    const lines = (await logOf(gateway.process)).split('\n').filter((text) => text.includes('"path":"/ws"'));
    expect(lines.map((text) => JSON.parse(text) as unknown)).toEqual([expect.objectContaining({ status: 101, service: 'one' })]);
  });
});
