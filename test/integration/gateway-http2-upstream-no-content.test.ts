import { readFile } from 'node:fs/promises';
import { connect, constants, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceView } from '../../gateway/admin/service-view.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { sampleValue, type PrometheusFamily } from '../harness/prometheus-text.ts';

/** An h2c upstream of `startNoContentUpstream`, with the streams it got by the first segment of their path. */
interface NoContentUpstream {
  readonly server: Http2Server;
  readonly port: number;
  readonly streams: Map<string, number>;
  /** The `/hold/` streams still open. */
  readonly held: Set<string>;
}

/** Every stream `upstream` got. */
function streamsOf(upstream: NoContentUpstream): number {
  return [...upstream.streams.values()].reduce((sum, count) => sum + count, 0);
}

/** The samples of `switchboard_upstream_errors_total`, by their labels. */
function upstreamErrors(metrics: Map<string, PrometheusFamily>): Record<string, number> {
  return Object.fromEntries((metrics.get('switchboard_upstream_errors_total')?.samples ?? []).map((sample) => [JSON.stringify(sample.labels), sample.value]));
}

/**
 * An h2c upstream whose answers have no content. Under `/no-content/`, a `sloppy` one answers 204
 * with `content-length: 5` (RFC 9110 §8.6 forbids the server a 204's Content-Length; nghttp2 takes
 * the head for malformed and resets the stream with PROTOCOL_ERROR, RFC 9113 §8.1.1), another a
 * plain 204; `/not-modified` gets a 304 with the length its 200 would have (allowed),
 * `/no-content-zero` a 204 with `content-length: 0`, `/hold/` no answer at all, anything else a
 * 200. Every answer names the upstream (`x-upstream`). It counts the streams it gets by the first
 * segment of their path: a retry shows as one more.
 */
async function startNoContentUpstream(name: string, sloppy: boolean): Promise<NoContentUpstream> {
  const streams = new Map<string, number>();
  const held = new Set<string>();
  const server = createServer();
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const first = `/${path.split('/')[1]}`;
    streams.set(first, (streams.get(first) ?? 0) + 1);
    stream.on('error', () => undefined);
    const named = { 'x-upstream': name };
    if (first === '/no-content') stream.respond({ ':status': 204, ...named, ...(sloppy ? { 'content-length': '5' } : {}) }, { endStream: true });
    else if (first === '/no-content-zero') stream.respond({ ':status': 204, 'content-length': '0', ...named }, { endStream: true });
    else if (first === '/not-modified') stream.respond({ ':status': 304, 'content-length': '5', etag: '"v1"', ...named }, { endStream: true });
    else if (first === '/hold') {
      held.add(path);
      stream.on('close', () => held.delete(path));
    } else {
      stream.respond({ ':status': 200, ...named });
      stream.end('ok');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, streams, held };
}

describe('an HTTP/2 upstream answering 204 or 304 with a Content-Length', () => {
  let sloppy: NoContentUpstream;
  let good: NoContentUpstream;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    [sloppy, good] = await Promise.all([startNoContentUpstream('sloppy', true), startNoContentUpstream('good', false)]);
    // Two instances behind the default balancer and retries, outlier detection ejecting at three
    // failures in a row for a minute; and the sloppy instance alone behind a service without it.
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  mixed:
    protocol: h2c
    instances: [{ id: sloppy, host: 127.0.0.1, port: ${sloppy.port} }, { id: good, host: 127.0.0.1, port: ${good.port} }]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
  sloppy-only:
    protocol: h2c
    instances: [{ id: sloppy, host: 127.0.0.1, port: ${sloppy.port} }]
    outlierDetection: false
routes:
  - { path: /only, service: sloppy-only, stripPrefix: true }
  - { path: /, service: mixed }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([sloppy, good].map((upstream) => upstream && new Promise((resolve) => upstream.server.close(resolve))));
  });

  /** Runs `check`, with the gateway's log in the message of a failure. */
  async function withLog(check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  }

  /** The access lines of requests whose path starts with `prefix`, parsed, in the order they were written. */
  async function accessLinesUnder(prefix: string): Promise<Record<string, unknown>[]> {
    const field = `"path":${JSON.stringify(prefix).slice(0, -1)}`;
    const lines = (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((line) => line.includes(field) && line.includes('"status":'));
    return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  it('relays a 304 with the length its 200 would have, and a 204 with Content-Length 0, as towards HTTP/1.1', async () => {
    const notModified = await sendRequest(gateway.port, '/not-modified');
    expect([notModified.status, notModified.headers.etag, notModified.body]).toEqual([304, '"v1"', '']);
    const noContent = await sendRequest(gateway.port, '/no-content-zero');
    expect([noContent.status, noContent.headers['content-length'], noContent.body]).toEqual([204, undefined, '']);
  });

  // node:http2 (nghttp2) refuses a 204 whose Content-Length is not 0 before the gateway sees its
  // head (RST_STREAM PROTOCOL_ERROR): the instance broke the protocol, as an HTTP/1.1 instance whose
  // answer is not valid HTTP does (`upstream-protocol`), and it counts against it the same way.
  it('retries a GET the sloppy instance answers 204 with Content-Length 5 on the good one, and ejects the sloppy one after three such answers', async () => {
    await withLog(async () => {
      const answers: { status: number; upstream: unknown }[] = [];
      let sent = 0;
      await waitFor(
        async () => {
          sent += 1;
          const answer = await sendRequest(gateway.port, `/no-content/${sent}`);
          answers.push({ status: answer.status, upstream: answer.headers['x-upstream'] });
          return (await admin.instance('mixed', 'sloppy'))?.health.reason === 'ejected';
        },
        { timeoutMs: 20_000, message: 'the sloppy instance ejected by outlier detection' },
      );
      // Every client got the good instance's answer: none saw the malformed one.
      expect(answers.filter((answer) => answer.status !== 204 || answer.upstream !== 'good')).toEqual([]);
      // Ejected at the third failure in a row, each the first attempt of a request that went on to the good instance.
      expect(sloppy.streams.get('/no-content')).toBe(3);
      // An access line is written as its answer ends: the last may come after the client has it.
      const lines = await waitFor(async () => {
        const written = await accessLinesUnder('/no-content/');
        return written.length === sent ? written : undefined;
      }, { message: `the access lines of the ${sent} requests` });
      expect(lines.filter((line) => line.attempts === 2)).toHaveLength(3);
      expect(lines.every((line) => line.status === 204 && line.errorClass === undefined)).toBe(true);
      const metrics = await admin.metrics();
      expect(sampleValue(metrics, 'switchboard_outlier_ejections_total', { service: 'mixed' })).toBe(1);
      expect(sampleValue(metrics, 'switchboard_upstream_errors_total', { service: 'mixed', class: 'http2-protocol-error' })).toBe(3);
      // Ejected, the sloppy instance gets no more traffic.
      for (let more = 0; more < 4; more += 1) {
        const answer = await sendRequest(gateway.port, `/no-content/after-${more}`);
        expect([answer.status, answer.headers['x-upstream']]).toEqual([204, 'good']);
      }
      expect(sloppy.streams.get('/no-content')).toBe(3);
      // The failures are the sloppy instance's alone.
      expect(good.streams.get('/no-content')).toBe(sent + 4);
      expect(await admin.instance('mixed', 'sloppy')).toMatchObject({ errors: 3 });
      expect(await admin.instance('mixed', 'good')).toMatchObject({ requests: streamsOf(good), errors: 0 });
    });
  });

  it('answers a POST the sloppy instance answers so 502 http2-protocol-error, not sent again, counted against it', async () => {
    await withLog(async () => {
      const before = sloppy.streams.get('/no-content') ?? 0;
      const answer = await sendRequest(gateway.port, '/only/no-content/post', { method: 'POST', body: 'x', headers: { 'content-length': '1' } });
      expect(answer.status).toBe(502);
      expect(await accessLineOf(gateway.process, '/only/no-content/post')).toMatchObject({ status: 502, errorClass: 'http2-protocol-error', attempts: 1 });
      expect(sloppy.streams.get('/no-content')).toBe(before + 1);
      expect(await admin.instance('sloppy-only', 'sloppy')).toMatchObject({ requests: 1, errors: 1 });
    });
  });

  // The client's reset is no fault of the instance's, whatever its code: the attempt is cancelled, counted against nothing.
  it('counts against no instance an HTTP/2 client that resets its stream with PROTOCOL_ERROR while the instance holds the answer', async () => {
    await withLog(async () => {
      const before = await admin.services();
      const errorsBefore = upstreamErrors(await admin.metrics());
      const session = connect(`http://127.0.0.1:${gateway.port}`);
      let holder: NoContentUpstream | undefined;
      try {
        session.on('error', () => undefined);
        const stream = session.request({ ':path': '/hold/reset' });
        stream.on('error', () => undefined);
        holder = await waitFor(() => [sloppy, good].find((upstream) => upstream.held.has('/hold/reset')), { message: 'the held request at an instance' });
        stream.close(constants.NGHTTP2_PROTOCOL_ERROR);
        // The gateway gives the upstream request up.
        await waitFor(() => !holder!.held.has('/hold/reset'), { message: "the upstream stream of the client's reset request closed" });
      } finally {
        session.close();
      }
      expect(await accessLineOf(gateway.process, '/hold/reset')).toMatchObject({ errorClass: 'cancelled' });
      const errorsOf = (services: ServiceView[]) => services.find((service) => service.name === 'mixed')!.instances.map((instance) => [instance.id, instance.errors]);
      expect(errorsOf(await admin.services())).toEqual(errorsOf(before));
      expect(upstreamErrors(await admin.metrics())).toEqual(errorsBefore);
    });
  });
});
