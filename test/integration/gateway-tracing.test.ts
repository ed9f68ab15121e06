// OpenTelemetry tracing through a real gateway: a real backend, and a tiny OTLP/HTTP JSON receiver
// (a node:http server in this file) standing in for the collector.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { refusingPort, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** One span as OTLP/JSON carries it, attributes flattened. */
interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly status: { code?: number };
  readonly attributes: Record<string, string | number | boolean>;
  readonly service: string;
}

const SERVER = 2;
const CLIENT = 3;

/**
 * A gateway configuration with the `users` route to the backend on `backendPort`; `top` holds the
 * top-level keys each test varies (admin, tracing, access log), `services` and `routes` add YAML
 * lines to those sections.
 */
function usersGateway(backendPort: number, top: string, more: { services?: string; routes?: string } = {}): string {
  return `
listen: 127.0.0.1:{{port}}
${top}
services:
  users: { instances: ["127.0.0.1:${backendPort}"] }
${more.services ?? ''}routes:
  - { name: users, path: /api/users, service: users, stripPrefix: true }
${more.routes ?? ''}`;
}

/** An OTLP/HTTP receiver that accepts JSON exports on /v1/traces and keeps every span. */
async function startReceiver(): Promise<{ server: Server; port: number; spans: ReceivedSpan[]; contentTypes: string[] }> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      contentTypes.push(request.headers['content-type'] ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
      for (const resource of body.resourceSpans ?? []) {
        const service = String(flatten(resource.resource?.attributes)['service.name']);
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) spans.push({ ...span, parentSpanId: span.parentSpanId ?? '', status: span.status ?? {}, attributes: flatten(span.attributes), service });
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, spans, contentTypes };
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
}
interface OtlpExport {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: (Omit<ReceivedSpan, 'attributes' | 'service' | 'parentSpanId' | 'status'> & { parentSpanId?: string; status?: { code?: number }; attributes?: OtlpAttribute[] })[] }[] }[];
}

function flatten(attributes: OtlpAttribute[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((attributes ?? []).map(({ key, value }) => [key, value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue ?? ''))]));
}

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

describe('tracing: W3C and B3 propagation, a server span and an attempt span per request, OTLP/HTTP export', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  const deadPort = { value: 0 };

  /** The headers the backend received for `path` (backend.mjs echoes them). */
  const throughGateway = async (target: GatewayProcess, path: string, headers: Record<string, string> = {}) => {
    const answer = await sendRequest(target.port, path, { headers });
    expect(answer.status).toBe(200);
    return (JSON.parse(answer.body) as { headers: Record<string, string> }).headers;
  };

  const spansOf = (traceId: string) => receiver.spans.filter((span) => span.traceId === traceId);

  beforeAll(async () => {
    receiver = await startReceiver();
    backend = await startBackend({ name: 'traced' });
    deadPort.value = await refusingPort();
    gateway = await startGateway(
      usersGateway(backend.port, `admin: 127.0.0.1:{{adminPort}}\ntracing: { endpoint: "http://127.0.0.1:${receiver.port}/v1/traces", serviceName: sb-test, flushInterval: 50ms }`, {
        services: `  flaky: { balancer: weighted-round-robin, healthCheck: false, outlierDetection: false, instances: ["127.0.0.1:${deadPort.value}", "127.0.0.1:${backend.port}"] }\n`,
        routes: '  - { name: flaky, path: /flaky, service: flaky }\n',
      }),
    );
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    await new Promise((resolve) => receiver?.server.close(resolve));
  });

  it('continues the client trace: one server span, one attempt span under it, and the backend gets the attempt span as parent', async () => {
    const received = await throughGateway(gateway, '/api/users/7?full=1', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' });
    const [version, traceId, parentId, flags] = received.traceparent!.split('-');
    expect([version, traceId, flags]).toEqual(['00', CLIENT_TRACE, '01']);
    expect(received.tracestate).toBe('vendor=abc');
    await waitFor(() => spansOf(CLIENT_TRACE).length >= 2, { timeoutMs: 10_000, message: 'two spans at the receiver' });
    const spans = spansOf(CLIENT_TRACE);
    expect(spans).toHaveLength(2);
    const server = spans.find((span) => span.kind === SERVER)!;
    const attempt = spans.find((span) => span.kind === CLIENT)!;
    expect(server.parentSpanId).toBe(CLIENT_SPAN);
    expect(server.service).toBe('sb-test');
    expect(server.name).toBe('GET users');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/api/users/7',
      'http.route': 'users',
      'switchboard.route': 'users',
      'switchboard.service': 'users',
      'switchboard.instance': `127.0.0.1:${backend.port}`,
      'switchboard.attempts': 1,
      'http.response.status_code': 200,
    });
    expect(server.attributes['error.type']).toBeUndefined();
    expect(attempt.parentSpanId).toBe(server.spanId);
    expect(attempt.spanId).toBe(parentId);
    expect(attempt.attributes).toMatchObject({ 'switchboard.attempt': 1, 'switchboard.instance': `127.0.0.1:${backend.port}`, 'server.port': backend.port, 'http.response.status_code': 200 });
    expect(receiver.contentTypes.every((type) => type.startsWith('application/json'))).toBe(true);
    // The access log line names the trace.
    await waitFor(async () => (await readFile(gateway.process.logFile, 'utf8')).includes(`"traceId":"${CLIENT_TRACE}"`), { timeoutMs: 5_000, message: 'the trace id in the access log' });
  });

  it('starts a new trace for a request without one, and continues a B3 single-header trace in both formats', async () => {
    const fresh = await throughGateway(gateway, '/api/users/fresh');
    const freshTrace = fresh.traceparent!.split('-')[1]!;
    expect(freshTrace).toMatch(/^[0-9a-f]{32}$/);
    expect(freshTrace).not.toBe(CLIENT_TRACE);
    await waitFor(() => spansOf(freshTrace).length >= 2, { timeoutMs: 10_000, message: 'the new trace at the receiver' });
    expect(spansOf(freshTrace).find((span) => span.kind === SERVER)!.parentSpanId).toBe('');

    const b3Trace = 'a3ce929d0e0e47364bf92f3577b34da6';
    const viaB3 = await throughGateway(gateway, '/api/users/b3', { b3: `${b3Trace}-${CLIENT_SPAN}-1` });
    expect(viaB3.traceparent!.split('-')[1]).toBe(b3Trace);
    expect(viaB3.b3!.startsWith(`${b3Trace}-`)).toBe(true);
    await waitFor(() => spansOf(b3Trace).length >= 2, { timeoutMs: 10_000, message: 'the B3 trace at the receiver' });
    expect(spansOf(b3Trace).find((span) => span.kind === SERVER)!.parentSpanId).toBe(CLIENT_SPAN);
  });

  it('continues a B3 multi-header trace in that encoding, and follows a B3 sampling decision sent without trace ids', async () => {
    const multiTrace = '5bf92f3577b34da6a3ce929d0e0e4737';
    const viaMulti = await throughGateway(gateway, '/api/users/b3-multi', { 'X-B3-TraceId': multiTrace, 'X-B3-SpanId': CLIENT_SPAN, 'X-B3-ParentSpanId': 'aaaaaaaaaaaaaaaa', 'X-B3-Sampled': '1' });
    expect(viaMulti.traceparent!.split('-')[1]).toBe(multiTrace);
    expect(viaMulti['x-b3-traceid']).toBe(multiTrace);
    expect(viaMulti['x-b3-sampled']).toBe('1');
    expect(viaMulti.b3).toBeUndefined();
    await waitFor(() => spansOf(multiTrace).length >= 2, { timeoutMs: 10_000, message: 'the B3 multi-header trace at the receiver' });
    const server = spansOf(multiTrace).find((span) => span.kind === SERVER)!;
    const attempt = spansOf(multiTrace).find((span) => span.kind === CLIENT)!;
    expect(server.parentSpanId).toBe(CLIENT_SPAN);
    expect(viaMulti['x-b3-spanid']).toBe(attempt.spanId);
    expect(viaMulti['x-b3-parentspanid']).toBe(server.spanId);

    // `b3: 0` and `X-B3-Sampled: 0` alone say "do not trace": the gateway starts a new trace
    // (sampleRatio is 1 here), unsampled, and records nothing of it; `b3: 1` alone is traced.
    const denied = [await throughGateway(gateway, '/api/users/b3-deny', { b3: '0' }), await throughGateway(gateway, '/api/users/b3-deny-multi', { 'X-B3-Sampled': '0' })];
    for (const headers of denied) {
      expect(headers.traceparent!.split('-')[3]).toBe('00');
    }
    expect(denied[0]!.b3!.endsWith('-0')).toBe(true);
    expect(denied[1]!['x-b3-sampled']).toBe('0');
    const accepted = await throughGateway(gateway, '/api/users/b3-accept', { b3: '1' });
    const acceptedTrace = accepted.traceparent!.split('-')[1]!;
    expect(accepted.traceparent!.split('-')[3]).toBe('01');
    await waitFor(() => spansOf(acceptedTrace).length >= 2, { timeoutMs: 10_000, message: 'the accepted trace at the receiver' });
    // Sent before the accepted one, so exported no later: none of the denied traces was recorded.
    for (const headers of denied) expect(spansOf(headers.traceparent!.split('-')[1]!)).toEqual([]);
  });

  it('sends B3 beside traceparent naming the same span, and reads B3 when the traceparent beside it does not parse', async () => {
    // A client that speaks both: the upstream's B3 must not carry the client's own (other) trace and span.
    const staleTrace = '80f198ee56343ba864fe8b2a57d3eff7';
    const both = await throughGateway(gateway, '/api/users/both', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, b3: `${staleTrace}-e457b5a2e4d86bd1-1` });
    const [, traceId, spanId] = both.traceparent!.split('-');
    expect(traceId).toBe(CLIENT_TRACE);
    expect(both.b3).toBe(`${CLIENT_TRACE}-${spanId}-1`);
    const bothMulti = await throughGateway(gateway, '/api/users/both-multi', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'X-B3-TraceId': staleTrace, 'X-B3-SpanId': 'e457b5a2e4d86bd1', 'X-B3-Sampled': '1' });
    expect([bothMulti['x-b3-traceid'], bothMulti['x-b3-spanid']]).toEqual([CLIENT_TRACE, bothMulti.traceparent!.split('-')[2]]);
    // An OpenTelemetry SDK with the tracecontext, b3 and b3multi propagators sends all three: each B3 encoding is rewritten,
    // and a B3 debug flag beside the traceparent that won is not left claiming a debug trace the gateway did not record.
    const all = await throughGateway(gateway, '/api/users/all', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00`, b3: `${staleTrace}-e457b5a2e4d86bd1-d`, 'X-B3-TraceId': staleTrace, 'X-B3-SpanId': 'e457b5a2e4d86bd1', 'X-B3-Flags': '1' });
    const allSpan = all.traceparent!.split('-')[2];
    expect([all.b3, all['x-b3-traceid'], all['x-b3-spanid'], all['x-b3-sampled'], all['x-b3-flags']]).toEqual([`${CLIENT_TRACE}-${allSpan}-0`, CLIENT_TRACE, allSpan, '0', undefined]);

    // A traceparent that does not parse is ignored, with its tracestate; the B3 beside it is the trace.
    const b3Trace = '6bf92f3577b34da6a3ce929d0e0e4738';
    const fallback = await throughGateway(gateway, '/api/users/bad-traceparent', { traceparent: 'garbage', tracestate: 'vendor=stale', b3: `${b3Trace}-${CLIENT_SPAN}-1` });
    expect(fallback.traceparent!.split('-')[1]).toBe(b3Trace);
    expect(fallback.b3).toBe(`${b3Trace}-${fallback.traceparent!.split('-')[2]}-1`);
    expect(fallback.tracestate).toBeUndefined();
    await waitFor(() => spansOf(b3Trace).length >= 2, { timeoutMs: 10_000, message: 'the B3 trace at the receiver' });
    expect(spansOf(b3Trace).find((span) => span.kind === SERVER)!.parentSpanId).toBe(CLIENT_SPAN);
  });

  it('gives each attempt its own span, with the upstream error class on the failed one and the count on the request', async () => {
    // Weighted round-robin over a dead and a live instance (no health checks): at least one of two
    // requests tries the dead instance first and is retried on the live one (both may, as the
    // retry's own pick moves the rotation too).
    const sent = [await throughGateway(gateway, '/flaky/1'), await throughGateway(gateway, '/flaky/2')].map((headers) => ({ headers, traceId: headers.traceparent!.split('-')[1]! }));
    await waitFor(() => sent.every(({ traceId }) => spansOf(traceId).some((span) => span.kind === SERVER)), { timeoutMs: 10_000, message: 'both requests at the receiver' });
    const retried = sent.filter(({ traceId }) => spansOf(traceId).find((span) => span.kind === SERVER)!.attributes['switchboard.attempts'] === 2);
    expect(retried.length).toBeGreaterThanOrEqual(1);
    const { headers: received, traceId } = retried[0]!;
    await waitFor(() => spansOf(traceId).length >= 3, { timeoutMs: 10_000, message: 'three spans of the retried request' });
    const server = spansOf(traceId).find((span) => span.kind === SERVER)!;
    const attempts = spansOf(traceId).filter((span) => span.kind === CLIENT).sort((a, b) => Number(a.attributes['switchboard.attempt']) - Number(b.attributes['switchboard.attempt']));
    expect(server.attributes).toMatchObject({ 'switchboard.attempts': 2, 'switchboard.instance': `127.0.0.1:${backend.port}`, 'http.response.status_code': 200 });
    expect(attempts.map((span) => [span.attributes['switchboard.attempt'], span.attributes['switchboard.instance'], span.attributes['error.type'] ?? null])).toEqual([
      [1, `127.0.0.1:${deadPort.value}`, 'connect-refused'],
      [2, `127.0.0.1:${backend.port}`, null],
    ]);
    expect(attempts[0]!.status.code).toBe(2);
    expect(received.traceparent!.split('-')[2]).toBe(attempts[1]!.spanId);
  });

  it('leaves requests unaffected when the collector is down, and counts the spans it drops', async () => {
    const deadCollector = await refusingPort();
    const orphan = await startGateway(
      usersGateway(backend.port, `admin: 127.0.0.1:{{adminPort}}\naccessLog: false\ntracing: { endpoint: "http://127.0.0.1:${deadCollector}/v1/traces", flushInterval: 50ms, exportTimeout: 1s }`),
    );
    try {
      const REQUESTS = 60;
      const latencies = { live: [] as number[], down: [] as number[] };
      for (let index = 0; index < REQUESTS; index += 1) {
        for (const [name, target] of [['down', orphan], ['live', gateway]] as const) {
          const started = performance.now();
          const answer = await sendRequest(target.port, `/api/users/${index}`);
          latencies[name].push(performance.now() - started);
          expect(answer.status).toBe(200);
        }
      }
      const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!.toFixed(2);
      console.log(`tracing latency over ${REQUESTS} requests each: collector up median ${median(latencies.live)} ms, collector down median ${median(latencies.down)} ms`);
      const admin = adminClient(`http://127.0.0.1:${orphan.adminPort}`);
      const dropped = await waitFor(
        async () => {
          const value = sampleValue(await admin.metrics(), 'switchboard_tracing_spans_dropped_total', { reason: 'export-failed' }) ?? 0;
          return value >= 2 * REQUESTS && value;
        },
        { timeoutMs: 20_000, message: 'every span of the requests counted as dropped' },
      );
      expect(dropped).toBe(2 * REQUESTS);
      expect(sampleValue(await admin.metrics(), 'switchboard_tracing_spans_exported_total') ?? 0).toBe(0);
    } finally {
      await orphan.process.stop();
    }
  });

  it('is off by default: the client trace headers pass through untouched and the access log has no trace id', async () => {
    const plain = await startGateway(usersGateway(backend.port, 'admin: false'));
    try {
      const traceparent = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;
      const received = await throughGateway(plain, '/api/users/off', { traceparent });
      expect(received.traceparent).toBe(traceparent);
      await waitFor(async () => (await readFile(plain.process.logFile, 'utf8')).includes('"path":"/api/users/off"'), { timeoutMs: 5_000, message: 'the access log line' });
      expect(await readFile(plain.process.logFile, 'utf8')).not.toContain('traceId');
    } finally {
      await plain.process.stop();
    }
  });
});
