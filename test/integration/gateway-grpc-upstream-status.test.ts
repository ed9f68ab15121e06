import { connect, constants } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGrpcBackend } from '../harness/grpc.ts';
import { logOf, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** How a raw gRPC call through the gateway ended: where its status came and whether a message came before it. */
interface CallEnd {
  /** The HTTP status and content type of the answer's first HEADERS frame. */
  readonly httpStatus: number;
  readonly contentType: string;
  readonly headers: Record<string, unknown>;
  readonly grpcStatus: number;
  readonly grpcMessage: string;
  /** True for a Trailers-Only answer: one HEADERS frame with END_STREAM. */
  readonly trailersOnly: boolean;
  readonly dataBytes: number;
}

/**
 * One gRPC call to the gateway over a raw HTTP/2 stream (the fixture's `test.Echo/<method>` with
 * the message `code`), routed to the gateway service `target` by the `x-target` header.
 */
function call(port: number, target: string, method: 'Fail' | 'FailStream', code: number): Promise<CallEnd> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': `/test.Echo/${method}`, 'content-type': 'application/grpc', te: 'trailers', 'x-target': target });
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    let trailersOnly = false;
    let dataBytes = 0;
    stream.on('response', (received, flags) => {
      headers = received;
      trailersOnly = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => (dataBytes += chunk.length));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      const ending = trailersOnly ? headers : trailers;
      resolve({ httpStatus: Number(headers[':status']), contentType: String(headers['content-type']), headers, grpcStatus: Number(ending['grpc-status']), grpcMessage: decodeURIComponent(String(ending['grpc-message'] ?? '')), trailersOnly, dataBytes });
    });
    const message = Buffer.from(String(code));
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    stream.end(frame);
  });
}

describe("a gRPC upstream's failure status counts against it as a 5xx would; the caller's own codes never do", () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await startGrpcBackend('grpc-backend');
    const instance = `{ host: 127.0.0.1, port: ${backend.port}, protocol: grpc }`;
    // One backend behind three services, each with its own breaker or outlier detection.
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  trailers-only:
    instances: [${instance}]
    outlierDetection: false
    circuitBreaker: { window: 60s, requestVolumeThreshold: 10, errorPercentThreshold: 50, sleepWindow: 60s }
  after-message:
    instances: [${instance}]
    outlierDetection: false
    circuitBreaker: { window: 60s, requestVolumeThreshold: 10, errorPercentThreshold: 50, sleepWindow: 60s }
  ejecting:
    instances: [${instance}]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
  degraded:
    instances: [${instance}]
    outlierDetection: false
    circuitBreaker:
      { window: 60s, requestVolumeThreshold: 3, errorPercentThreshold: 50, sleepWindow: 60s, fallback: { status: 200, headers: { content-type: application/json, x-degraded: "yes" }, body: '{"items":[]}' } }
  shedding:
    instances: [${instance}]
    outlierDetection: false
    circuitBreaker: { window: 60s, requestVolumeThreshold: 3, errorPercentThreshold: 50, sleepWindow: 60s, fallback: { status: 429, body: busy } }
routes:
  - { headers: { x-target: trailers-only }, service: trailers-only }
  - { headers: { x-target: after-message }, service: after-message }
  - { headers: { x-target: ejecting }, service: ejecting }
  - { headers: { x-target: degraded }, service: degraded }
  - { headers: { x-target: shedding }, service: shedding }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  /** The breaker of gateway service `service`, as /api/breakers shows it. */
  async function breakerOf(service: string): Promise<{ state: string; requests: number; failures: number }> {
    const view = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string; state: string; requests: number; failures: number }[] }[] };
    return view.workers[0]!.breakers.find((breaker) => breaker.service === service)!;
  }

  // The caller's doing: CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, UNIMPLEMENTED, UNAUTHENTICATED; and RESOURCE_EXHAUSTED, a 429.
  const CLIENT_CODES = [1, 3, 4, 5, 12, 16, 8, 3, 5, 3, 5, 3];

  it.each([
    ['trailers-only', 'Fail', true],
    ['after-message', 'FailStream', false],
  ] as const)('%s: UNAVAILABLE opens the breaker, after calls failed with the caller\'s own codes left it closed with no failure', async (service, method, trailersOnly) => {
    try {
      for (const code of CLIENT_CODES) {
        const end = await call(gateway.port, service, method, code);
        // Each reached the backend and came back as it sent it, in the shape under test.
        expect(end).toMatchObject({ grpcStatus: code, grpcMessage: `grpc-backend failed with ${code}`, trailersOnly });
        expect(end.dataBytes > 0).toBe(!trailersOnly);
      }
      expect(await breakerOf(service)).toMatchObject({ state: 'closed', requests: CLIENT_CODES.length, failures: 0 });

      // UNAVAILABLE, relayed as the backend sent it, until the window holds 50 % failures: then the breaker answers itself.
      const unavailable: CallEnd[] = [];
      for (let sent = 0; sent < CLIENT_CODES.length; sent += 1) unavailable.push(await call(gateway.port, service, method, 14));
      expect(unavailable.every((end) => end.grpcStatus === 14 && end.grpcMessage === 'grpc-backend failed with 14' && end.trailersOnly === trailersOnly)).toBe(true);
      expect(await breakerOf(service)).toMatchObject({ state: 'open' });
      const refused = await call(gateway.port, service, method, 0);
      expect(refused.grpcStatus).toBe(14);
      expect(refused.grpcMessage).not.toContain('grpc-backend');
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  });

  // A static fallback is an HTTP answer (its body is no protobuf message): a gRPC caller that got
  // it as such read a 200 without grpc-status, which gRPC clients take as a failed call of no known cause.
  it.each([
    ['degraded', 14],
    ['shedding', 8],
  ] as const)("%s: an open breaker's static fallback answers a gRPC call with a gRPC status (Trailers-Only), not the HTTP body", async (service, expected) => {
    try {
      for (let sent = 0; sent < 3; sent += 1) expect((await call(gateway.port, service, 'Fail', 14)).grpcStatus).toBe(14);
      expect(await breakerOf(service)).toMatchObject({ state: 'open' });
      const refused = await call(gateway.port, service, 'Fail', 0);
      expect(refused).toMatchObject({ httpStatus: 200, contentType: 'application/grpc', grpcStatus: expected, trailersOnly: true, dataBytes: 0 });
      expect(refused.grpcMessage).toContain('circuit breaker');
      if (service === 'degraded') expect(refused.headers['x-degraded']).toBe('yes');
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  });

  it('outlier detection ejects the instance after consecutive UNAVAILABLE calls, in trailers and Trailers-Only, and not for the caller\'s codes', async () => {
    const ejections = async () => sampleValue(await admin.metrics(), 'switchboard_outlier_ejections_total', { service: 'ejecting' }) ?? 0;
    for (const code of CLIENT_CODES) await call(gateway.port, 'ejecting', code % 2 === 0 ? 'Fail' : 'FailStream', code);
    expect(await ejections()).toBe(0);
    for (const method of ['FailStream', 'Fail', 'FailStream'] as const) expect((await call(gateway.port, 'ejecting', method, 14)).grpcStatus).toBe(14);
    await waitFor(async () => (await ejections()) === 1, { timeoutMs: 10_000, message: 'the instance ejected' });
    // Metrics name the failures' class, as a 5xx answer's is `http-5xx`.
    const metrics = await admin.metrics();
    expect(sampleValue(metrics, 'switchboard_upstream_errors_total', { service: 'ejecting', class: 'grpc-error' })).toBe(3);
    expect(sampleValue(metrics, 'switchboard_grpc_calls_total', { service: 'ejecting', grpc_service: 'test.Echo', grpc_method: 'Fail', grpc_code: '14' })).toBe(1);
  });
});
