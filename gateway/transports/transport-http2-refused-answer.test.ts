import { Agent, createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type Http2Server } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { AttemptResult } from './transport.ts';
import { listenOnLoopback } from './transport-http2-testing.ts';
import { REFUSALS_BEFORE_RETIRING } from './transport-http2-peer-end.ts';
import { Http2Transport } from './transport-http2.ts';
import { recordingPick } from './transport-testing.ts';

/**
 * node:http2 resets a stream with PROTOCOL_ERROR when nghttp2 refuses the upstream's answer head (a
 * 204 with a Content-Length other than 0), and counts each as an invalid frame, for good: past its
 * `maxSessionInvalidFrames` (1,000) it destroys the session, and every other stream on it with it.
 */
describe('Http2Transport: answers node:http2 refuses on a session that carries other streams', () => {
  let upstream: Http2Server | undefined;
  let gateway: Server | undefined;
  let transport: Http2Transport | undefined;

  afterEach(async () => {
    await transport?.close(0);
    gateway?.closeAllConnections();
    await Promise.all([upstream && new Promise((resolve) => upstream!.close(resolve)), gateway && new Promise((resolve) => gateway!.close(resolve))]);
    upstream = gateway = transport = undefined;
  });

  /** Serves each request through `transport` (an error class answered as the gateway does), pushing each attempt's result to `ended`; resolves with the port. */
  function serveThrough(ended: AttemptResult[] = []): Promise<number> {
    gateway = createHttpServer((request, response) => {
      const context = initialContext(request, response);
      void transport!.attempt(context, recordingPick().pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 30_000 }, null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        ended.push(result);
      });
    });
    return listenOnLoopback(gateway);
  }

  it('retires the session before node:http2 destroys it, so a long answer in flight on it finishes whole', async () => {
    let finishLong: (() => void) | undefined;
    let sessions = 0;
    upstream = createServer();
    upstream.on('session', (session) => {
      sessions += 1;
      session.on('error', () => undefined);
    });
    upstream.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':path'] === '/long') {
        stream.respond({ ':status': 200 });
        stream.write('part-');
        finishLong = () => stream.end('whole');
      } else stream.respond({ ':status': 204, 'content-length': '5' }, { endStream: true });
    });
    const upstreamPort = await listenOnLoopback(upstream);
    transport = new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${upstreamPort}`, connectTimeoutMs: 2_000, tls: undefined });
    const ended: AttemptResult[] = [];
    const port = await serveThrough(ended);
    // Cut, it rejects before the test awaits it.
    const long = sendTestRequest(port, '/long').catch((error: Error) => ({ status: 0, body: Buffer.from(error.message) }));
    // 1,100 refused answers, 20 at a time, while the long answer waits on the same session.
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    try {
      for (let sent = 0; sent < 1_100; sent += 20) {
        const statuses = await Promise.all(Array.from({ length: 20 }, () => sendTestRequest(port, '/no-content', { agent }).then((answer) => answer.status)));
        expect(statuses).toEqual(Array.from({ length: 20 }, () => 502));
      }
    } finally {
      agent.destroy();
    }
    expect(ended.filter((result) => !result.ok && result.errorClass === 'http2-protocol-error')).toHaveLength(1_100);
    // Without the retirement node destroyed the session at the 1,001st (ERR_HTTP2_TOO_MANY_INVALID_FRAMES), cutting the long answer.
    expect(sessions).toBeGreaterThan(1);
    finishLong!();
    const answer = await long;
    expect([answer.status, answer.body.toString('utf8')]).toEqual([200, 'part-whole']);
  }, 60_000);

  // Retired, the only session would keep its place in a one-session pool for as long as the long
  // answer on it lasts (a gRPC watch: for good), and every request after would wait for a stream
  // until a 503 pool-overflow: the instance lost to all for want of the room node still left.
  it('keeps the only session of a full pool taking requests past the refusals, while a long answer lasts on it', async () => {
    upstream = createServer();
    upstream.on('session', (session) => session.on('error', () => undefined));
    upstream.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':path'] === '/long') {
        stream.respond({ ':status': 200 });
        stream.write('part-');
      } else if (headers[':path'] === '/ok') {
        stream.respond({ ':status': 200 });
        stream.end('ok');
      } else stream.respond({ ':status': 204, 'content-length': '5' }, { endStream: true });
    });
    const upstreamPort = await listenOnLoopback(upstream);
    transport = new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${upstreamPort}`, connectTimeoutMs: 2_000, tls: undefined }, { maxSessions: 1, idleMs: 4_000 });
    const port = await serveThrough();
    void sendTestRequest(port, '/long').catch(() => undefined);
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    try {
      for (let sent = 0; sent < REFUSALS_BEFORE_RETIRING + 20; sent += 20) {
        const statuses = await Promise.all(Array.from({ length: 20 }, () => sendTestRequest(port, '/no-content', { agent }).then((answer) => answer.status)));
        expect(statuses).toEqual(Array.from({ length: 20 }, () => 502));
      }
      const ok = await sendTestRequest(port, '/ok', { agent });
      expect([ok.status, ok.body.toString('utf8')]).toEqual([200, 'ok']);
    } finally {
      agent.destroy();
    }
  }, 60_000);
});
