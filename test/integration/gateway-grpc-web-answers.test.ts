import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGrpcioBackend } from '../harness/grpc.ts';
import { http1Call, http2Call, readAnswer } from '../harness/grpc-web-calls.ts';
import { readGrpcWebAnswer } from '../harness/grpc-web-reader.ts';
import { logOf, startGateway, startProtocolBackend, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

describe('grpcWeb: an upstream answer that is not gRPC, through the real gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    // An HTTP/2 server that is not gRPC (as a proxy in front of one): 200 JSON, or ?status=<code> in text/html.
    backend = await startProtocolBackend({ mode: 'h2c', name: 'not-grpc' });
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
middlewares:
  grpc-web: { grpcWeb: {} }
services:
  not-grpc:
    instances: [{ id: proxy, host: 127.0.0.1, port: ${backend.port}, protocol: grpc }]
routes:
  - { headers: { x-target: not-grpc }, service: not-grpc, middlewares: [grpc-web] }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  const TYPES = ['application/grpc-web+proto', 'application/grpc-web-text'] as const;

  // gRPC's HTTP-to-gRPC table (http-grpc-status-mapping.md), as Envoy's grpc_web filter maps it.
  describe.each(TYPES)('to a %s call over HTTP/1.1', (type) => {
    it.each([
      ['a 502 page of a proxy', '?status=502', 14, 'HTTP 502 (text/html)'],
      ['a 404 page', '?status=404', 12, 'HTTP 404 (text/html)'],
      ['a 200 that is not gRPC', '', 2, 'HTTP 200 (application/json)'],
    ])('%s is a Trailers-Only status the client reads, in an HTTP 200 of the call\'s type, its body dropped', async (_what, query, grpcStatus, said) => {
      const answer = await http1Call(gateway.port, 'not-grpc', `/helloworld.Greeter/SayHello${query}`, type, 'page');
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe(type);
      expect(answer.body.length).toBe(0);
      expect(readGrpcWebAnswer(type, answer.headers, answer.body)).toEqual({ status: grpcStatus, message: `the upstream answered ${said}, not gRPC` });
    });
  });

  it('over HTTP/2 as well', async () => {
    const answer = await http2Call(gateway.port, 'not-grpc', 'SayHello?status=503', 'application/grpc-web+proto', 'page');
    expect(answer.status).toBe(200);
    expect(readGrpcWebAnswer('application/grpc-web+proto', answer.headers, answer.body)).toMatchObject({ status: 14 });
  });

  it("counts by the upstream's HTTP status, as before: a 502 against the instance (http-5xx), a 200 against none, and the access log keeps it beside the gRPC status the client got", async () => {
    const errorsOf = async (errorClass: string) => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'not-grpc', class: errorClass }) ?? 0;
    const before = { http5xx: await errorsOf('http-5xx'), grpcErrors: await errorsOf('grpc-error'), instance: (await admin.instance('not-grpc', 'proxy'))!.errors };
    const failed = await http1Call(gateway.port, 'not-grpc', '/helloworld.Greeter/SayHello?status=502&counted', 'application/grpc-web+proto', 'counted');
    expect(failed.headers['grpc-status']).toBe('14');
    // UNKNOWN to the client, but no gRPC server said so: not a grpc-error of the instance's.
    const unknown = await http1Call(gateway.port, 'not-grpc', '/helloworld.Greeter/SayHello?counted-ok', 'application/grpc-web+proto', 'counted');
    expect(unknown.headers['grpc-status']).toBe('2');
    const logged = async (mark: string) => (await logOf(gateway.process)).split('\n').find((line) => line.includes(mark));
    await waitFor(async () => (await logged('&counted')) !== undefined && (await logged('?counted-ok')) !== undefined, { timeoutMs: 5_000, message: 'both access log lines' });
    expect(JSON.parse((await logged('&counted'))!)).toMatchObject({ status: 502, grpcStatus: 14 });
    expect(JSON.parse((await logged('?counted-ok'))!)).toMatchObject({ status: 200, grpcStatus: 2 });
    expect(await errorsOf('http-5xx')).toBe(before.http5xx + 1);
    expect(await errorsOf('grpc-error')).toBe(before.grpcErrors);
    expect((await admin.instance('not-grpc', 'proxy'))!.errors).toBe(before.instance + 1);
  });
});

describe('grpcWeb: the encoding of the answer, binary or -text, through the real gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    backend = await startGrpcioBackend();
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
middlewares:
  grpc-web: { grpcWeb: {} }
services:
  greeter:
    instances: [{ id: grpcio, host: 127.0.0.1, port: ${backend.port}, protocol: grpc }]
routes:
  - { headers: { x-target: greeter }, service: greeter, middlewares: [grpc-web] }
  # No instance: the gateway's own answer.
  - { headers: { x-target: nowhere }, service: nowhere, middlewares: [grpc-web] }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  // As Envoy's filter and PROTOCOL-WEB.md: the accept header chooses; grpc-web's JavaScript client sends accept with its -text calls.
  it.each([
    ['application/grpc-web-text', 'application/grpc-web', 'application/grpc-web'],
    ['application/grpc-web+proto', 'application/grpc-web-text', 'application/grpc-web-text+proto'],
    ['application/grpc-web-text', 'application/grpc-web-text', 'application/grpc-web-text'],
    // No gRPC-Web type accepted: the call's own encoding (Envoy's would be binary).
    ['application/grpc-web-text', '*/*', 'application/grpc-web-text'],
  ])('a call of %s that accepts %s is answered %s, messages and status alike', async (type, accept, answerType) => {
    const answer = await http1Call(gateway.port, 'greeter', 'SayHellos', type, 'enc', undefined, { accept });
    expect(answer.headers['content-type']).toBe(answerType);
    expect(readAnswer(answerType, answer)).toMatchObject({ messages: ['Hello enc #0', 'Hello enc #1', 'Hello enc #2'], trailers: { 'grpc-status': '0' }, trailerFrame: true });
    expect(readGrpcWebAnswer(answerType, answer.headers, answer.body)).toEqual({ status: 0, message: '' });
  });

  it("the gateway's own answer takes the accepted encoding too", async () => {
    const answer = await http1Call(gateway.port, 'nowhere', 'SayHello', 'application/grpc-web+proto', 'own', undefined, { accept: 'application/grpc-web-text' });
    expect(answer.headers['content-type']).toBe('application/grpc-web-text+proto');
    expect(readGrpcWebAnswer('application/grpc-web-text+proto', answer.headers, answer.body)).toMatchObject({ status: 14 });
  });
});
