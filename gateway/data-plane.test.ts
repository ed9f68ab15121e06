import { request, type ClientRequest } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config/index.ts';
import { startGateway, type Gateway } from './pipeline.ts';
import { listenOnLoopback, until } from './transports/transport-http2-testing.ts';

/** The drain's bound here; the upstream pools get their own 1 s (UPSTREAM_CLOSE_GRACE_MS) after it. */
const DRAIN_TIMEOUT_MS = 100;

describe('a gateway shutting down while its upstreams have stopped reading an upload', () => {
  const servers: (TcpServer | Http2Server)[] = [];
  const sockets = new Set<Socket>();
  const uploads: ClientRequest[] = [];
  let gateway: Gateway | undefined;
  let closing: Promise<void> | undefined;

  afterEach(async () => {
    // What a close past its bound still waits for: the upstreams' sockets, closed by their peers here.
    for (const upload of uploads.splice(0)) upload.destroy();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await (closing ?? gateway?.close());
    closing = undefined;
    gateway = undefined;
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /** An HTTP/1.1 upstream that reads a request's first bytes, then nothing more, and never answers. */
  async function http1Upstream(received: () => void): Promise<number> {
    const server = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => (received(), socket.pause()));
    });
    servers.push(server);
    return listenOnLoopback(server);
  }

  /**
   * An h2c upstream that stops reading its connection once a stream opens, and never answers: a
   * relay in front of a real HTTP/2 server pauses the gateway's side (node:http2 lets nobody pause
   * a session's own socket).
   */
  async function h2cUpstream(received: () => void): Promise<number> {
    const relayed = new Set<Socket>();
    const backend = createHttp2Server();
    backend.on('session', (session) => session.on('error', () => undefined));
    backend.on('stream', (stream) => {
      stream.on('error', () => undefined);
      received();
      for (const socket of relayed) socket.pause();
    });
    servers.push(backend);
    const backendPort = await listenOnLoopback(backend);
    const relay = createTcpServer((from) => {
      const to = connect(backendPort, '127.0.0.1');
      for (const socket of [from, to]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
      }
      relayed.add(from);
      from.pipe(to);
      to.pipe(from);
      from.on('close', () => (relayed.delete(from), to.destroy()));
      to.on('close', () => from.destroy());
    });
    servers.push(relay);
    return listenOnLoopback(relay);
  }

  /** Uploads to `path` a body that never ends, as fast as the gateway takes it. */
  function upload(port: number, path: string): void {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const body = Readable.from((function* endless() {
      for (;;) yield chunk;
    })());
    const sending = request({ port, host: '127.0.0.1', method: 'POST', path, headers: { 'content-type': 'application/octet-stream' } });
    sending.on('error', () => undefined);
    body.pipe(sending);
    uploads.push(sending);
  }

  // Gateway.close is what SIGTERM runs (main.ts, through the config follower) before the process exits.
  it("closes within the drain bound and the upstream pools' 1 s grace, where the h2c pool left to close gracefully waits for its peer", async () => {
    let received = { http1: 0, h2c: 0 };
    const http1Port = await http1Upstream(() => (received = { ...received, http1: received.http1 + 1 }));
    const h2cPort = await h2cUpstream(() => (received = { ...received, h2c: received.h2c + 1 }));
    // Upstream timeouts far past the test: only the shutdown can end the uploads.
    const timeouts = '{ connect: 1s, headers: 60s, idleBody: 60s }';
    gateway = await startGateway(
      parseConfig(
        'g.yaml',
        `listen: 127.0.0.1:0
admin: false
accessLog: false
shutdown: { drainTimeout: ${DRAIN_TIMEOUT_MS}ms }
services:
  http1: { instances: ["127.0.0.1:${http1Port}"], timeouts: ${timeouts}, retries: false, healthCheck: false, outlierDetection: false }
  h2c: { protocol: h2c, instances: ["127.0.0.1:${h2cPort}"], timeouts: ${timeouts}, retries: false, healthCheck: false, outlierDetection: false }
routes:
  - { path: /http1, service: http1 }
  - { path: /h2c, service: h2c }
`,
      ),
    );
    upload(gateway.port, '/http1/upload');
    upload(gateway.port, '/h2c/upload');
    expect(await until(() => received.http1 === 1 && received.h2c === 1, 3_000), 'both upstreams got their upload').toBe(true);

    const started = performance.now();
    let closedAfterMs: number | undefined;
    closing = gateway.close().then(() => void (closedAfterMs = performance.now() - started));
    // The drain's 100 ms, the pools' 1 s, and room for a busy machine. The drain's cut aborts the
    // HTTP/1.1 upload, and undici destroys its connection; the h2c session's graceful close would
    // wait for its peer to close the connection, which this one never does (25 s, measured, with
    // the pools closed without a grace, which then falls back to the default drainTimeout).
    const boundMs = DRAIN_TIMEOUT_MS + 1_000 + 1_500;
    expect(await until(() => closedAfterMs !== undefined, boundMs), `the gateway closed within ${boundMs} ms`).toBe(true);
  });
});
