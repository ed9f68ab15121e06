import { request as http1Request, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGrpcioBackend } from '../harness/grpc.ts';
import { logOf, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** What a gRPC-Web client got: the head, the raw body, and HTTP trailers (a browser sees none). */
interface WebAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: Record<string, unknown>;
}

/** A helloworld message, hand-encoded: one string in field 1 (HelloRequest.name, HelloReply.message). */
function message(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

/** A length-prefixed frame (the 5-byte header of gRPC and gRPC-Web) around `payload`. */
function frame(payload: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The request body of a call of `type` with the message `name`: in base64 for `-text`. */
function callBody(type: string, name: string): Buffer {
  const bytes = frame(message(name));
  return type.includes('-text') ? Buffer.from(bytes.toString('base64'), 'latin1') : bytes;
}

/**
 * A gRPC-Web call over HTTP/1.1, as a browser sends it, to `helloworld.Greeter/<method>` on the
 * gateway's route `target`; `pieces` sends the body in chunks of those sizes (chunked), else whole with a length.
 */
function http1Call(port: number, target: string, method: string, type: string, name: string, pieces?: readonly number[], extra: Record<string, string> = {}): Promise<WebAnswer> {
  const body = callBody(type, name);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': type, 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1', 'x-target': target, accept: type, ...extra };
    if (pieces === undefined) headers['content-length'] = String(body.length);
    const request = http1Request({ host: '127.0.0.1', port, method: 'POST', path: `/helloworld.Greeter/${method}`, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks), trailers: response.trailers }));
      response.on('error', reject);
    });
    request.on('error', reject);
    if (pieces === undefined) return void request.end(body);
    let offset = 0;
    for (const size of pieces) {
      request.write(body.subarray(offset, offset + size));
      offset += size;
    }
    request.end(body.subarray(offset));
  });
}

describe('gRPC-Web calls to a plain gRPC server (grpcio), through the real gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await startGrpcioBackend();
    const instance = `{ id: grpcio, host: 127.0.0.1, port: ${backend.port}, protocol: grpc }`;
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  untranslated:
    instances: [${instance}]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
routes:
  - { headers: { x-target: untranslated }, service: untranslated }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('ten calls the server cannot read are relayed as they come, counted as grpc-web-unsupported against no instance, and warned about once', async () => {
    for (let call = 0; call < 10; call += 1) {
      const answer = await http1Call(gateway.port, 'untranslated', 'SayHello', 'application/grpc-web+proto', 'browser');
      // Relayed as today: the plain gRPC server's own refusal.
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toMatch(/^application\/grpc(\+proto)?$/);
    }
    const errors = async () => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'untranslated', class: 'grpc-web-unsupported' }) ?? 0;
    await waitFor(async () => (await errors()) === 10, { timeoutMs: 5_000, message: 'ten grpc-web-unsupported counted' });
    const metrics = await admin.metrics();
    expect(sampleValue(metrics, 'switchboard_outlier_ejections_total', { service: 'untranslated' }) ?? 0).toBe(0);
    expect(sampleValue(metrics, 'switchboard_upstream_errors_total', { service: 'untranslated', class: 'grpc-error' }) ?? 0).toBe(0);
    expect(await admin.instance('untranslated', 'grpcio')).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    const warnings = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('cannot read gRPC-Web'));
    expect(warnings).toHaveLength(1);
  });
});
