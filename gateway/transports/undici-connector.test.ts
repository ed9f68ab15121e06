import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { createTestCa } from '../../test/harness/certificates.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { hasUndiciParser, resumingConnector } from './undici-connector.ts';

const BODY = 'a'.repeat(64 * 1024);

/** undici's own `kReset`, read from its module: the connector finds it by description, and an undici upgrade may move or rename it. */
const { kReset } = createRequire(import.meta.url)('undici/lib/core/symbols.js') as { kReset: symbol };

/** Answers each connection's first request with `answer`, written at once and followed by the connection's end (FIN). */
async function closingServer(answer: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/**
 * One GET through `pool` whose handler pauses after every chunk and resumes `resumeAfterMs` later
 * (never when undefined), as the gateway does for a client that reads slowly: the body it got, or the error.
 */
function slowlyRead(pool: Pool, resumeAfterMs: number | undefined = 20): Promise<{ body: string } | { error: string }> {
  return new Promise((resolve) => {
    let body = '';
    pool.dispatch(
      { path: '/', method: 'GET' },
      {
        onRequestStart() {},
        onResponseStart() {},
        onResponseData(controller, chunk: Buffer) {
          body += chunk.toString('latin1');
          controller.pause();
          if (resumeAfterMs !== undefined) setTimeout(() => controller.resume(), resumeAfterMs);
        },
        onResponseEnd() {
          resolve({ body });
        },
        onResponseError(_controller, error: Error) {
          resolve({ error: (error as Error & { code?: string }).code ?? error.message });
        },
      },
    );
  });
}

describe('resumingConnector', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function poolFor(answer: string): Promise<Pool> {
    const { server, port } = await closingServer(answer);
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const pool = new Pool(`http://127.0.0.1:${port}`, { connect: resumingConnector({ timeout: 5_000 }) });
    cleanup.push(() => pool.close());
    return pool;
  }

  // Without the connector undici 7.30.2 throws an AssertionError from the socket's 'end' listener
  // (nodejs/undici#5360): this process would crash and vitest report an uncaught exception.
  it.each([
    ['a Content-Length body', `HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`],
    ['a chunked body', `HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`],
    ['a body that ends with the connection', `HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${BODY}`],
    ['an HTTP/1.0 answer', `HTTP/1.0 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`],
    // undici failed this one as "other side closed" though every byte had come.
    ['a keep-alive answer', `HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`],
  ])('completes %s that the server closes while the parser is paused', async (_name, answer) => {
    const pool = await poolFor(answer);
    for (let attempt = 0; attempt < 3; attempt += 1) expect(await slowlyRead(pool)).toEqual({ body: BODY });
  });

  it.each([
    ['not kept alive', 'connection: close', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'],
    ['kept alive', 'keep-alive: timeout=5', 'UND_ERR_SOCKET'],
  ])('still fails a body cut short by the close, %s', async (_name, header, code) => {
    const pool = await poolFor(`HTTP/1.1 200 OK\r\n${header}\r\ncontent-length: ${BODY.length + 10}\r\n\r\n${BODY}`);
    expect(await slowlyRead(pool)).toEqual({ error: code });
  });

  // undici calls finish() on a reset too (onHttpSocketError), with the same assertion.
  it('completes an answer whose connection the server resets while the parser is paused', async () => {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write(`HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1000\r\n\r\n${'r'.repeat(1000)}`, () => socket.resetAndDestroy()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as { port: number }).port}`, { connect: resumingConnector({ timeout: 5_000 }) });
    cleanup.push(() => pool.close());
    // Paused for good: only the reset moves it on.
    const outcome = await slowlyRead(pool, undefined);
    expect(outcome).toEqual({ body: 'r'.repeat(1000) });
  });

  // The write that fails with a reset is held only under undici's parser: a tunnel's socket, with no
  // parser after the upgrade, ended at the reset and waited on that write for good, never closed.
  it('closes an upgraded connection whose write fails with a reset', async () => {
    const upgraded: { tunnel?: Socket } = {};
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\n');
        // The tunnel's next write comes after the reset and before its socket reads: it fails first.
        socket.once('data', () => {
          socket.resetAndDestroy();
          upgraded.tunnel!.write(BODY);
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as { port: number }).port}`, { connect: resumingConnector({ timeout: 5_000 }) });
    cleanup.push(() => pool.close());
    const tunnel = (await pool.upgrade({ path: '/', protocol: 'test' })).socket as Socket;
    upgraded.tunnel = tunnel;
    cleanup.push(async () => void tunnel.destroy());
    tunnel.on('error', () => undefined);
    tunnel.on('data', () => undefined);
    // As the gateway's splice: the upstream's end is passed on, and its own side ended.
    tunnel.on('end', () => tunnel.end());
    tunnel.write('x');
    await waitFor(() => tunnel.destroyed, { timeoutMs: 5_000, message: 'the tunnel to close after the reset' });
  });

  // Defensive (see `markNotReusable`): a socket whose write is held takes no further request.
  it('marks a socket whose body write fails with a reset as not to be reused', async () => {
    const body = new Readable({ read() {} });
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      // The body's next chunk is written after the reset and before the client's socket reads: its write fails first.
      socket.once('data', () => {
        socket.resetAndDestroy();
        body.push(BODY);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const connect = resumingConnector({ timeout: 5_000 });
    let socket: Socket | undefined;
    const pool = new Pool(`http://127.0.0.1:${(server.address() as { port: number }).port}`, {
      connections: 1,
      connect: (options, callback) =>
        connect(options, (...args) => {
          socket = args[1] ?? undefined;
          callback(...args);
        }),
    });
    cleanup.push(() => pool.close());
    body.push('x');
    const outcome = await pool.request({ path: '/', method: 'POST', body }).then(
      () => 'answered',
      (error: Error & { code?: string }) => error.code,
    );
    expect(outcome).toBe('UND_ERR_SOCKET');
    expect((socket as unknown as Record<symbol, unknown>)[kReset]).toBe(true);
  });

  it('passes a connection that fails on as the error it is', async () => {
    const { server, port } = await closingServer('');
    await new Promise((resolve) => server.close(resolve));
    const pool = new Pool(`http://127.0.0.1:${port}`, { connect: resumingConnector({ timeout: 5_000 }) });
    cleanup.push(() => pool.close());
    expect(await slowlyRead(pool)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('finds the parser undici keeps on its sockets (an undici upgrade that moves it fails here)', async () => {
    const { server, port } = await closingServer(`HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok`);
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    let seen: boolean | undefined;
    const connect = resumingConnector({ timeout: 5_000 });
    const pool = new Pool(`http://127.0.0.1:${port}`, {
      connect: (options, callback) =>
        connect(options, (...args) => {
          // undici attaches its parser right after this callback returns.
          if (args[1] !== null) setImmediate((socket: Socket) => (seen = hasUndiciParser(socket)), args[1]);
          callback(...args);
        }),
    });
    cleanup.push(() => pool.close());
    expect(await slowlyRead(pool)).toEqual({ body: 'ok' });
    expect(seen).toBe(true);
  });

  it("gives the TLS alert of an upstream that wants a client certificate as the cause of undici's socket error", async () => {
    // TLS 1.3: the server judges the client certificate after the client's side of the handshake,
    // so the alert comes on a socket the request was written to, and node:tls leaves it open for its 'end'.
    const dir = await mkdtemp(join(tmpdir(), 'sb-connector-mtls-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const ca = await createTestCa(dir);
    const issued = await ca.issue('backend', 'backend.test');
    const [cert, key, caText] = await Promise.all([readFile(issued.certFile), readFile(issued.keyFile), readFile(ca.caFile)]);
    const server = createHttpsServer({ cert, key, ca: caText, requestCert: true, rejectUnauthorized: true }, (_request, response) => response.end('ok'));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const connect = resumingConnector({ timeout: 5_000, ca: caText, servername: 'backend.test' });
    const pool = new Pool(`https://127.0.0.1:${(server.address() as { port: number }).port}`, { connect });
    cleanup.push(() => pool.close());
    const error = await pool.request({ path: '/', method: 'GET' }).then(
      () => undefined,
      (failure: Error & { code?: string; cause?: { code?: string } }) => failure,
    );
    expect([error?.code, error?.cause?.code]).toEqual(['UND_ERR_SOCKET', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED']);
  });
});
