import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PickedEndpoint, Picker } from '../../../src/balance/picker.ts';
import { waitFor } from '../../../test/harness/wait.ts';
import type { GatewayContext } from '../../context.ts';
import { initialContext, sendTestRequest } from '../../middleware/middleware-testing.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { createProxy } from '../../proxy/proxy.ts';
import { TEST_PROXY_POLICY } from '../../proxy/proxy-testing.ts';
import type { AttemptReceiver, UpstreamTransports } from '../../transports/index.ts';
import { createRequestTracer } from './tracing-sdk.ts';

/** One exported span as OTLP/JSON carries it, attributes flattened. */
interface ExportedSpan {
  readonly traceId: string;
  readonly kind: number;
  readonly status: { code?: number; message?: string };
  readonly attributes: Record<string, string | number>;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number };
}

const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

const listen = async (server: Server): Promise<number> => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
};

/** A real OTLP/HTTP JSON receiver on port 0 that keeps every span it is sent. */
async function startCollector(): Promise<{ server: Server; port: number; spans: ExportedSpan[] }> {
  const spans: ExportedSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: (Omit<ExportedSpan, 'attributes' | 'status'> & { status?: ExportedSpan['status']; attributes?: OtlpAttribute[] })[] }[] }[] };
      for (const resource of body.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            const attributes = Object.fromEntries((span.attributes ?? []).map(({ key, value }) => [key, value.stringValue ?? Number(value.intValue)]));
            spans.push({ ...span, status: span.status ?? {}, attributes });
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { server, port: await listen(server), spans };
}

describe('server and attempt span status (a real tracer, a real OTLP receiver, scripted fakes for the upstream)', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let gateway: Server;
  let gatewayPort: number;
  let tracer: ReturnType<typeof createRequestTracer>;
  let grpcStatus = 0;
  const traceIds: string[] = [];

  beforeAll(async () => {
    collector = await startCollector();
    tracer = createRequestTracer({
      endpoint: `http://127.0.0.1:${collector.port}/v1/traces`,
      sampleRatio: 1,
      serviceName: 'sb-test',
      headers: {},
      maxQueueSize: 100,
      maxBatchSize: 10,
      flushIntervalMs: 20,
      exportTimeoutMs: 2_000,
    });
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'grpc', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    // The upstream's answer as a transport reports it: HTTP 200, the call's status in its trailers.
    const transport = {
      attemptThen(context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        context.outcome.status = 200;
        // /cut: the upstream resets the stream after its headers were relayed.
        if (context.upstream.path === '/cut') {
          context.response.writeHead(200);
          (context.response as ServerResponse).write('part');
          return receiver.attemptEnded({ ok: false, errorClass: 'reset-after-headers', responseStarted: true, error: new Error('reset') });
        }
        context.outcome.grpcStatus = grpcStatus;
        context.response.end();
        receiver.attemptEnded({ ok: true });
      },
    };
    const proxy = createProxy({ pickerFor: () => picker, policyFor: () => TEST_PROXY_POLICY, transports: { get: () => transport } as unknown as UpstreamTransports });
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      context.service = 'svc';
      context.trace = tracer.start(context);
      traceIds.push(context.trace.traceId);
      // /refused: a middleware's refusal before the proxy, as jwtAuth's 401.
      if (request.url === '/refused') {
        sendErrorAnswer(context, 401, 'missing-token', 'a bearer token is required');
        return context.trace.end(context);
      }
      void proxy(context).then(() => context.trace!.end(context));
    });
    gatewayPort = await listen(gateway);
  });

  afterAll(async () => {
    await tracer.shutdown(2_000);
    await Promise.all([new Promise((resolve) => gateway.close(resolve)), new Promise((resolve) => collector.server.close(resolve))]);
  });

  it.each([
    [14, true],
    [13, true],
    [2, true],
    [8, false],
    [5, false],
    [4, false],
    [0, false],
  ])('grpc-status %i: the server and attempt spans carry it and are errors: %s, as the metrics and health count the call', async (code, failed) => {
    grpcStatus = code;
    const answer = await sendTestRequest(gatewayPort, '/test.Echo/Echo', { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: 'x' });
    expect(answer.status).toBe(200);
    const traceId = traceIds.at(-1)!;
    await waitFor(() => collector.spans.filter((span) => span.traceId === traceId).length === 2, { timeoutMs: 5_000 });
    const spans = collector.spans.filter((span) => span.traceId === traceId);
    const server = spans.find((span) => span.kind === SERVER)!;
    const attempt = spans.find((span) => span.kind === CLIENT)!;
    for (const span of [server, attempt]) {
      expect(span.attributes['http.response.status_code']).toBe(200);
      expect(span.attributes['rpc.grpc.status_code']).toBe(code);
      expect(span.attributes['error.type']).toBe(failed ? 'grpc-error' : undefined);
      expect(span.status.code === STATUS_ERROR).toBe(failed);
    }
  });

  /** The server span of the last request, once exported. */
  async function lastServerSpan(): Promise<ExportedSpan> {
    const traceId = traceIds.at(-1)!;
    return waitFor(() => collector.spans.find((span) => span.traceId === traceId && span.kind === SERVER), { timeoutMs: 5_000 });
  }

  it("does not make the gateway's own 4xx refusal an error: a 4xx is the client's, and the class stays in error.type", async () => {
    expect((await sendTestRequest(gatewayPort, '/refused')).status).toBe(401);
    const server = await lastServerSpan();
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 401, 'error.type': 'missing-token' });
    expect(server.status.code).not.toBe(STATUS_ERROR);
  });

  it('makes an answer the upstream cut off after its 200 headers an error', async () => {
    await sendTestRequest(gatewayPort, '/cut').catch(() => undefined);
    const server = await lastServerSpan();
    expect(server.attributes).toMatchObject({ 'http.response.status_code': 200, 'error.type': 'reset-after-headers' });
    expect(server.status.code).toBe(STATUS_ERROR);
  });
});
