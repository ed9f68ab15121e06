import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, sendRequest, startGateway, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/**
 * An h2c upstream whose answers have no content but announce a length: a 204 with `content-length: 5`
 * (RFC 9110 §8.6 forbids it; RFC 9113 §8.1.1 does not call it malformed, and nginx relays it), a
 * 304 with the length its 200 would have (allowed), a 204 with `content-length: 0`; anything else is
 * a 200. It counts the streams it gets by path: a retry shows as a second stream.
 */
async function startNoContentUpstream(): Promise<{ server: Http2Server; port: number; streams: Map<string, number> }> {
  const streams = new Map<string, number>();
  const server = createServer();
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    streams.set(path, (streams.get(path) ?? 0) + 1);
    stream.on('error', () => undefined);
    if (path === '/no-content') stream.respond({ ':status': 204, 'content-length': '5' }, { endStream: true });
    else if (path === '/no-content-zero') stream.respond({ ':status': 204, 'content-length': '0' }, { endStream: true });
    else if (path === '/not-modified') stream.respond({ ':status': 304, 'content-length': '5', etag: '"v1"' }, { endStream: true });
    else {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, streams };
}

describe('an HTTP/2 upstream answering 204 or 304 with a Content-Length', () => {
  let upstream: Awaited<ReturnType<typeof startNoContentUpstream>>;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    upstream = await startNoContentUpstream();
    // Outlier detection and a breaker that would both trip within three failures counted against the instance; default retries.
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  sloppy:
    instances: [{ host: 127.0.0.1, port: ${upstream.port}, protocol: h2c }]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
    circuitBreaker: { window: 60s, requestVolumeThreshold: 3, errorPercentThreshold: 50, sleepWindow: 60s }
routes:
  - { path: /, service: sloppy }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  it('relays a 304 with the length its 200 would have, and a 204 with Content-Length 0, as towards HTTP/1.1', async () => {
    const notModified = await sendRequest(gateway.port, '/not-modified');
    expect([notModified.status, notModified.headers.etag, notModified.body]).toEqual([304, '"v1"', '']);
    const noContent = await sendRequest(gateway.port, '/no-content-zero');
    expect([noContent.status, noContent.headers['content-length'], noContent.body]).toEqual([204, undefined, '']);
  });

  // node:http2 (nghttp2) refuses a 204 whose Content-Length is not 0 before the gateway sees its head
  // (RST_STREAM PROTOCOL_ERROR), so it cannot be relayed as an HTTP/1.1 instance's is; the answer the
  // same upstream gives over HTTP/1.1 counts as a success, and this one counts against it no more.
  it('answers 502 http2-protocol-error to a 204 with Content-Length 5, not retried, counted against no instance', async () => {
    try {
      for (let sent = 0; sent < 4; sent += 1) expect((await sendRequest(gateway.port, '/no-content')).status).toBe(502);
      expect(await accessLineOf(gateway.process, '/no-content')).toMatchObject({ status: 502, errorClass: 'http2-protocol-error', attempts: 1 });
      // Each request reached the upstream once: another instance of the same code would answer the same.
      expect(upstream.streams.get('/no-content')).toBe(4);
      // Neither the breaker nor outlier detection took the instance out: its other answers still flow.
      expect((await sendRequest(gateway.port, '/still-there')).status).toBe(200);
      const metrics = await admin.metrics();
      expect(sampleValue(metrics, 'switchboard_outlier_ejections_total', { service: 'sloppy' }) ?? 0).toBe(0);
      // Upstream errors are the instance's failures: none was.
      expect((metrics.get('switchboard_upstream_errors_total')?.samples ?? []).filter((sample) => sample.labels.service === 'sloppy')).toEqual([]);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  });
});
