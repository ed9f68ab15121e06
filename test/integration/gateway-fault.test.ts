import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { connect as connectHttp2, constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { echoClient, unary } from '../harness/grpc.ts';
import { logOf, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** A request as the backend got it: its path and, for the delay test, when it arrived and when the client sent it. */
interface Arrival {
  readonly path: string;
  readonly arrivedAt: number;
  readonly sentAt: number | undefined;
}

/** The time on this process's monotonic clock, in milliseconds with fractions; the client and the backend read the same one. */
const now = () => performance.timeOrigin + performance.now();

const DELAY_MS = 400;
/**
 * The delay a test's client leaves during: the time from seeing the delay start (a metric read through
 * the admin API) to going away must stay under it on a loaded CI machine, or the request goes on.
 */
const CANCELLED_DELAY_MS = 3_000;
/** Well past the gateway's `limits.requestTimeout` (2s), so that an upload held unread misses it during the delay. */
const UPLOAD_DELAY_MS = 6_000;

describe('fault: the gateway delays and aborts a share of requests itself', () => {
  let backend: Server;
  let backendPort: number;
  const arrivals: Arrival[] = [];
  let gateway: GatewayProcess;
  let admin: AdminClient;

  const instanceOf = async (service: string) => (await admin.services()).find((view) => view.name === service)?.instances[0];
  const metric = async (name: string, labels: Record<string, string>) => sampleValue(await admin.metrics(), name, labels) ?? 0;
  const reached = (prefix: string) => arrivals.filter((arrival) => arrival.path.startsWith(prefix));

  beforeAll(async () => {
    // A real backend on port 0 in this process: it stamps each request's arrival on the clock the client stamps its sending with.
    backend = createServer((request, response) => {
      const sent = request.headers['x-sent-at'];
      arrivals.push({ path: request.url ?? '', arrivedAt: now(), sentAt: typeof sent === 'string' ? Number(sent) : undefined });
      request.resume();
      response.end('from the backend');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    backendPort = (backend.address() as AddressInfo).port;
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: 127.0.0.1:{{adminPort}}
accessLog: true
limits: { requestTimeout: 2s, headersTimeout: 2s }
services:
  api: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: { consecutiveErrors: 2 } }
  guarded: { instances: [127.0.0.1:${backendPort}], healthCheck: false, outlierDetection: false, circuitBreaker: { window: 60s, requestVolumeThreshold: 5, errorPercentThreshold: 50, sleepWindow: 60s } }
  grpc-api: { instances: [{ host: 127.0.0.1, port: ${backendPort}, protocol: grpc }], healthCheck: false }
middlewares:
  chaos: { fault: { abort: { status: 503, body: "injected failure" } } }
  chaos-json: { fault: { abort: { status: 500 } } }
  slow: { fault: { delay: { duration: ${DELAY_MS}ms } } }
  long: { fault: { delay: { duration: ${CANCELLED_DELAY_MS}ms } } }
  never: { fault: { delay: { duration: 10s, percentage: 0 }, abort: { status: 503, percentage: 0 } } }
  grpc-chaos: { fault: { abort: { status: 503 } } }
  upload-hold: { fault: { delay: { duration: ${UPLOAD_DELAY_MS}ms } } }
routes:
  - { name: abort, path: /abort, service: api, middlewares: [chaos] }
  - { name: abort-guarded, path: /guarded, service: guarded, middlewares: [chaos-json] }
  - { name: delay, path: /delay, service: api, middlewares: [slow] }
  - { name: long, path: /long, service: api, middlewares: [long] }
  - { name: never, path: /never, service: api, middlewares: [never] }
  - { name: plain, path: /plain, service: api }
  - { name: guarded-plain, path: /guarded-plain, service: guarded }
  - { name: upload, path: /upload, service: api, middlewares: [upload-hold] }
  - { name: grpc, grpcService: test.Echo, service: grpc-api, middlewares: [grpc-chaos] }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await instanceOf('api')) !== undefined && (await instanceOf('guarded')) !== undefined, { message: 'the services to list their instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
  });

  it('aborts every request at 100 % with the configured status and body; the backend sees none and stays healthy and in rotation', async () => {
    // More aborts than outlierDetection's consecutiveErrors and the breaker's request volume: none is the instance's.
    for (let index = 0; index < 12; index += 1) {
      const answer = await sendRequest(gateway.port, `/abort/${index}`);
      expect(answer, await logOf(gateway.process)).toMatchObject({ status: 503, body: 'injected failure' });
      expect(answer.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'content-length': '16' });
      expect(answer.headers['x-request-id']).toBeTruthy();
      const json = await sendRequest(gateway.port, `/guarded/${index}`);
      expect([json.status, JSON.parse(json.body).error]).toEqual([500, 'fault-abort']);
    }
    expect(reached('/abort')).toEqual([]);
    expect(reached('/guarded')).toEqual([]);
    for (const service of ['api', 'guarded']) {
      const instance = (await instanceOf(service))!;
      expect([service, instance.requests, instance.errors, instance.health.state, instance.routable]).toEqual([service, 0, 0, 'healthy', true]);
    }
    // The backend is in rotation: routes without the fault reach it, through the breaker of `guarded` (closed: 12 aborts of 500 were none of its).
    expect((await sendRequest(gateway.port, '/plain')).body).toBe('from the backend');
    expect((await sendRequest(gateway.port, '/guarded-plain')).body).toBe('from the backend');
    expect(await metric('switchboard_faults_injected_total', { middleware: 'chaos', fault: 'abort' })).toBe(12);
    const metrics = await admin.metrics();
    expect(metrics.get('switchboard_upstream_errors_total')?.samples.filter((sample) => sample.labels.service === 'api' || sample.labels.service === 'guarded') ?? []).toEqual([]);
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/abort/11"')), { message: 'the access log line of /abort/11' });
    const logged = JSON.parse(line) as Record<string, unknown>;
    expect(logged).toMatchObject({ status: 503, route: 'abort', service: 'api', errorClass: 'fault-abort', attempts: 0 });
    expect(logged.upstream).toBeUndefined();
  });

  it('delays every request at 100 %: the backend gets it only once the delay has passed since the client sent it', async () => {
    const sentAt = now();
    const answer = await sendRequest(gateway.port, '/delay/one', { headers: { 'x-sent-at': String(sentAt) } });
    expect([answer.status, answer.body]).toEqual([200, 'from the backend']);
    const [arrival] = reached('/delay');
    expect(arrival?.sentAt).toBe(sentAt);
    // The gateway had the request no earlier than the client sent it, so its arrival upstream minus the
    // sending is at least the delay (less 1 ms: libuv's timers run on a clock kept in whole milliseconds).
    expect(arrival!.arrivedAt - sentAt).toBeGreaterThanOrEqual(DELAY_MS - 1);
    expect(await metric('switchboard_faults_injected_total', { middleware: 'slow', fault: 'delay' })).toBe(1);
  });

  it('ends a delayed request whose client went away during the delay: nothing reaches the backend, logged 499 cancelled', async () => {
    const client = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/long/cancelled', agent: false });
    client.on('error', () => {});
    client.end();
    // The gateway counts the delay when it starts it: the request is being held.
    await waitFor(async () => (await metric('switchboard_faults_injected_total', { middleware: 'long', fault: 'delay' })) === 1, { message: 'the delay of /long/cancelled to start' });
    client.destroy();
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/long/cancelled"')), { message: 'the access log line of /long/cancelled' });
    expect(JSON.parse(line)).toMatchObject({ status: 499, errorClass: 'cancelled', attempts: 0 });
    // A request delayed after it, for as long, reaches the backend: the cancelled one, whose delay ended first, never did.
    expect((await sendRequest(gateway.port, '/long/after')).status).toBe(200);
    expect(reached('/long').map((arrival) => arrival.path)).toEqual(['/long/after']);
  });

  it('ends a delayed HTTP/2 stream its client cancelled during the delay, and the session goes on', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => {});
    try {
      const before = await metric('switchboard_faults_injected_total', { middleware: 'long', fault: 'delay' });
      const stream = session.request({ ':method': 'GET', ':path': '/long/h2-cancelled' });
      stream.on('error', () => {});
      stream.end();
      await waitFor(async () => (await metric('switchboard_faults_injected_total', { middleware: 'long', fault: 'delay' })) === before + 1, { message: 'the delay of /long/h2-cancelled to start' });
      stream.close(constants.NGHTTP2_CANCEL);
      const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/long/h2-cancelled"')), { message: 'the access log line of /long/h2-cancelled' });
      expect(JSON.parse(line)).toMatchObject({ status: 499, errorClass: 'cancelled', attempts: 0 });
      // The same session's next stream is delayed and passed on: only it reaches the backend.
      const status = await new Promise<number>((resolve, reject) => {
        const next = session.request({ ':method': 'GET', ':path': '/long/h2-after' });
        next.on('response', (headers) => resolve(Number(headers[':status'])));
        next.on('error', reject);
        next.resume();
        next.end();
      });
      expect(status).toBe(200);
      await waitFor(() => reached('/long/h2').length > 0, { message: 'the backend to get /long/h2-after' });
      expect(reached('/long/h2').map((arrival) => arrival.path)).toEqual(['/long/h2-after']);
    } finally {
      session.close();
    }
  });

  it("records the 408 its listener gave an upload whose body missed requestTimeout during the delay, and sends nothing upstream after it", async () => {
    // An upload that announces more than it sends, and more than the gateway buffers unread (so it stops
    // reading): its body is not whole when requestTimeout passes, during the delay. The client keeps its
    // side open after the 408, as one still uploading does: the connection outlives the delay.
    const socket = connectTcp({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`POST /upload/held HTTP/1.1\r\nhost: gateway\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(300_000)}`);
    try {
      await waitFor(() => received.startsWith('HTTP/1.1 408 '), { message: "the listener's 408 to the held upload" });
      // Logged once the delay is over: as the 408 the client got, with no attempt, and the backend never got it.
      const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/upload/held"')), { timeoutMs: UPLOAD_DELAY_MS + 15_000, message: 'the access log line of /upload/held' });
      expect(JSON.parse(line)).toMatchObject({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(reached('/upload')).toEqual([]);
    } finally {
      socket.destroy();
    }
  });

  it('records the 408 its HTTP/2 listener gave a held upload that missed requestTimeout, not a cancelled request', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => {});
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/upload/h2-held', 'content-length': '100000' });
      stream.on('error', () => {});
      stream.write('x'.repeat(1_000));
      const status = await new Promise<number>((resolve) => stream.on('response', (headers) => resolve(Number(headers[':status']))));
      expect(status).toBe(408);
      const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/upload/h2-held"')), { timeoutMs: UPLOAD_DELAY_MS + 15_000, message: 'the access log line of /upload/h2-held' });
      expect(JSON.parse(line)).toMatchObject({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(reached('/upload')).toEqual([]);
    } finally {
      session.close();
    }
  });

  it('ends a pipelined request whose client went away during its delay too, its response not yet on the connection', async () => {
    const delays = () => metric('switchboard_faults_injected_total', { middleware: 'upload-hold', fault: 'delay' });
    const before = await delays();
    const socket = connectTcp(gateway.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /upload/pipelined-1 HTTP/1.1\r\nhost: gateway\r\n\r\nGET /upload/pipelined-2 HTTP/1.1\r\nhost: gateway\r\n\r\n');
    await waitFor(async () => (await delays()) === before + 2, { message: 'both pipelined requests to be delayed' });
    socket.destroy();
    // A request delayed as long after them reaches the backend: theirs, which ended first, never did.
    expect((await sendRequest(gateway.port, '/upload/after-pipelined')).status).toBe(200);
    expect(reached('/upload/').map((arrival) => arrival.path)).toEqual(['/upload/after-pipelined']);
    // Both are logged 499, the queued one too, whose response Node never closes (the gateway ends it).
    for (const path of ['/upload/pipelined-1', '/upload/pipelined-2']) {
      const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes(`"path":"${path}"`)), { message: `the access log line of ${path}` });
      expect(JSON.parse(line)).toMatchObject({ status: 499, errorClass: 'cancelled', attempts: 0 });
    }
  });

  it('passes everything through at percentage 0, undelayed and unaborted', async () => {
    for (let index = 0; index < 10; index += 1) expect((await sendRequest(gateway.port, `/never/${index}`)).status).toBe(200);
    expect(reached('/never')).toHaveLength(10);
    expect(await metric('switchboard_faults_injected_total', { middleware: 'never', fault: 'abort' })).toBe(0);
    expect(await metric('switchboard_faults_injected_total', { middleware: 'never', fault: 'delay' })).toBe(0);
  });

  it('answers a gRPC caller with a gRPC status (UNAVAILABLE for 503), and the backend sees nothing', async () => {
    const client = echoClient(`127.0.0.1:${gateway.port}`);
    try {
      const outcome = await unary(client, 'Echo', 'hello');
      expect([outcome.code, outcome.details]).toEqual([14, 'aborted by fault injection']);
    } finally {
      client.close();
    }
    expect(reached('/test.Echo')).toEqual([]);
  });
});
