import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startGrpcBackend, startGrpcioBackend } from '../harness/grpc.ts';
import { callBody, frame, http1Call, http2Call, readAnswer } from '../harness/grpc-web-calls.ts';
import { logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

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
middlewares:
  grpc-web: { grpcWeb: {} }
services:
  translated:
    instances: [${instance}]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
  untranslated:
    instances: [${instance}]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
  untranslated-failing:
    instances: [${instance}]
routes:
  - { headers: { x-target: translated }, service: translated, middlewares: [grpc-web] }
  - { headers: { x-target: untranslated }, service: untranslated }
  - { headers: { x-target: untranslated-failing }, service: untranslated-failing }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  const TYPES = ['application/grpc-web+proto', 'application/grpc-web-text'] as const;

  describe.each(TYPES)('with grpcWeb, %s over HTTP/1.1', (type) => {
    // A -text body cut in pieces that no 4-character group fits.
    const pieces = type.includes('-text') ? [1, 5, 3, 7] : undefined;

    it('a unary call gets its reply and OK in a trailer frame, in the call\'s own content type, no HTTP trailers', async () => {
      const answer = await http1Call(gateway.port, 'translated', 'SayHello', type, 'web', pieces);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe(type);
      expect(answer.trailers).toEqual({});
      expect(readAnswer(type, answer)).toEqual({ messages: ['Hello web'], trailers: { 'grpc-status': '0' }, trailerFrame: true });
    });

    it('a server-streaming call gets each message, then its status', async () => {
      const answer = await http1Call(gateway.port, 'translated', 'SayHellos', type, 'stream', pieces);
      expect(answer.headers['content-type']).toBe(type);
      const read = readAnswer(type, answer);
      expect(read.messages).toEqual(['Hello stream #0', 'Hello stream #1', 'Hello stream #2']);
      expect(read.trailers['grpc-status']).toBe('0');
    });

    it('a call the server fails after a message gets its status, message and custom metadata in the trailer frame', async () => {
      const answer = await http1Call(gateway.port, 'translated', 'SayHellosThenFail', type, 'nobody', pieces);
      const read = readAnswer(type, answer);
      expect(read.messages).toEqual(['Hello nobody #0']);
      expect(read.trailerFrame).toBe(true);
      expect(read.trailers).toMatchObject({ 'grpc-status': '5', 'grpc-message': 'no greeting for nobody', 'x-reason': 'no-such-name', 'x-detail-bin': Buffer.from([0, 1, 0xfe]).toString('base64').replace(/=+$/, '') });
    });

    it('a unary call the server fails at once gets its Trailers-Only answer as it came: status and custom metadata as headers, no body', async () => {
      const answer = await http1Call(gateway.port, 'translated', 'SayNothing', type, 'nobody', pieces);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe(type);
      expect(answer.body.length).toBe(0);
      expect(readAnswer(type, answer)).toMatchObject({ trailerFrame: false, trailers: { 'grpc-status': '5', 'grpc-message': 'no greeting for nobody', 'x-reason': 'no-such-name' } });
    });
  });

  it.each(TYPES)("with grpcWeb, %s: a call whose grpc-timeout passes mid-stream ends with the gateway's DEADLINE_EXCEEDED as a trailer frame after the message", async (type) => {
    const answer = await http1Call(gateway.port, 'translated', 'SayHelloThenWait', type, 'late', undefined, { 'grpc-timeout': '2S' });
    expect(answer.headers['content-type']).toBe(type);
    expect(readAnswer(type, answer)).toMatchObject({ messages: ['Hello late #0'], trailerFrame: true, trailers: { 'grpc-status': '4' } });
  });

  it('calls the gateway ended at their deadline free the server: twenty of them, then a call is answered at once', async () => {
    // More calls than the fixture has threads (16): each one held its thread for 30 s after its end.
    const late = await Promise.all(Array.from({ length: 20 }, () => http1Call(gateway.port, 'translated', 'SayHelloThenWait', 'application/grpc-web+proto', 'late', undefined, { 'grpc-timeout': '300m' })));
    expect(late.map((answer) => readAnswer('application/grpc-web+proto', answer).trailers['grpc-status'])).toEqual(Array(20).fill('4'));
    const started = performance.now();
    const answer = await http1Call(gateway.port, 'translated', 'SayHello', 'application/grpc-web+proto', 'next', undefined, { 'grpc-timeout': '10S' });
    expect(readAnswer('application/grpc-web+proto', answer)).toMatchObject({ messages: ['Hello next'], trailers: { 'grpc-status': '0' } });
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it.each([
    ['a character outside base64', (good: string) => `${good.slice(0, 8)}!${good.slice(9)}`, undefined],
    ['a length not a multiple of 4 at the end', (good: string) => `${good}AAA`, undefined],
    // The good part is on its way upstream when the bad one comes: the stream is cancelled.
    ['a bad piece after good ones, streamed', (good: string) => `${good}AA*A`, [4, 8]],
  ] as const)('with grpcWeb, a -text body that is not base64 (%s) is refused as the client\'s: INTERNAL at once, never counted against the instance', async (_what, spoil, pieces) => {
    const errorsOf = async (errorClass: string) => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'translated', class: errorClass }) ?? 0;
    const before = { instance: (await admin.instance('translated', 'grpcio'))!.errors, grpcErrors: await errorsOf('grpc-error') };
    const type = 'application/grpc-web-text';
    const started = performance.now();
    const answer = await http1Call(gateway.port, 'translated', 'SayHello', type, 'bad', pieces, {}, Buffer.from(spoil(callBody(type, 'bad').toString('latin1')), 'latin1'));
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(answer.status).toBe(200);
    expect(readAnswer(type, answer)).toMatchObject({ messages: [], trailers: { 'grpc-status': '13', 'grpc-message': expect.stringContaining('not base64') } });
    // The attempt is reported before the answer goes out.
    expect((await admin.instance('translated', 'grpcio'))!.errors).toBe(before.instance);
    expect(await errorsOf('grpc-error')).toBe(before.grpcErrors);
  });

  it.each(TYPES)('with grpcWeb, %s over HTTP/2: unary and server streaming, the status in the body, not in HTTP/2 trailers', async (type) => {
    const unary = await http2Call(gateway.port, 'translated', 'SayHello', type, 'h2');
    expect(unary.headers['content-type']).toBe(type);
    expect(unary.trailers).toEqual({});
    expect(readAnswer(type, unary)).toMatchObject({ messages: ['Hello h2'], trailers: { 'grpc-status': '0' } });
    const stream = await http2Call(gateway.port, 'translated', 'SayHellos', type, 'h2');
    expect(readAnswer(type, stream)).toMatchObject({ messages: ['Hello h2 #0', 'Hello h2 #1', 'Hello h2 #2'], trailers: { 'grpc-status': '0' } });
  });

  it("with grpcWeb, a translated call counts by its real grpc-status, as a native call does", async () => {
    const counted = async () => sampleValue(await admin.metrics(), 'switchboard_grpc_calls_total', { service: 'translated', grpc_service: 'helloworld.Greeter', grpc_method: 'SayNothing', grpc_code: '5' }) ?? 0;
    const before = await counted();
    await http1Call(gateway.port, 'translated', 'SayNothing', 'application/grpc-web+proto', 'counted');
    await waitFor(async () => (await counted()) === before + 1, { timeoutMs: 5_000, message: 'the NOT_FOUND counted' });
    expect(await admin.instance('translated', 'grpcio')).toMatchObject({ health: { state: 'healthy' } });
  });

  it('with grpcWeb, a translated call the instance fails (UNAVAILABLE, as plain gRPC) counts against it as grpc-error, never as grpc-web-unsupported', async () => {
    const errorsOf = async (errorClass: string) => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'translated', class: errorClass }) ?? 0;
    const before = { instance: (await admin.instance('translated', 'grpcio'))!.errors, grpcErrors: await errorsOf('grpc-error') };
    const answer = await http1Call(gateway.port, 'translated', 'SayUnavailable', 'application/grpc-web+proto', 'failing');
    expect(answer.headers['content-type']).toBe('application/grpc-web+proto');
    expect(readAnswer('application/grpc-web+proto', answer)).toMatchObject({ trailers: { 'grpc-status': '14', 'grpc-message': 'overloaded' } });
    await waitFor(async () => (await errorsOf('grpc-error')) === before.grpcErrors + 1, { timeoutMs: 5_000, message: 'the UNAVAILABLE counted as grpc-error' });
    expect((await admin.instance('translated', 'grpcio'))!.errors).toBe(before.instance + 1);
    expect(await errorsOf('grpc-web-unsupported')).toBe(0);
  });

  it('without grpcWeb, a call the server reads and fails (UNAVAILABLE, plain gRPC) counts against the instance as grpc-error, not as grpc-web-unsupported', async () => {
    const errorsOf = async (errorClass: string) => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'untranslated-failing', class: errorClass }) ?? 0;
    const before = { instance: (await admin.instance('untranslated-failing', 'grpcio'))!.errors, unsupported: await errorsOf('grpc-web-unsupported') };
    // With te: trailers grpcio reads the call's frames (gRPC-Web frames its messages as gRPC does) and runs the method.
    const answer = await http2Call(gateway.port, 'untranslated-failing', 'SayUnavailable', 'application/grpc-web+proto', 'failing', { te: 'trailers' });
    expect(answer.headers['content-type']).toMatch(/^application\/grpc(\+proto)?$/);
    expect(answer.headers['grpc-status']).toBe('14');
    await waitFor(async () => (await errorsOf('grpc-error')) === 1, { timeoutMs: 5_000, message: 'the UNAVAILABLE counted as grpc-error' });
    expect((await admin.instance('untranslated-failing', 'grpcio'))!.errors).toBe(before.instance + 1);
    expect(await errorsOf('grpc-web-unsupported')).toBe(before.unsupported);
  });

  it('without grpcWeb, ten calls the server cannot read are relayed as they come, counted as grpc-web-unsupported against no instance, and warned about once', async () => {
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

describe('gRPC-Web calls sent as they came to a grpc-js server, which reads them as gRPC, through the real gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await startGrpcBackend('js');
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
services:
  plain-js:
    instances: [{ id: js, host: 127.0.0.1, port: ${backend.port}, protocol: grpc }]
    outlierDetection: { consecutiveErrors: 3, baseEjectionTime: 60s }
routes:
  - { headers: { x-target: plain-js }, service: plain-js }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it("a handler's own UNKNOWN (Trailers-Only) looks like a refusal: never counted against the instance, and the warning quotes it and says it may be either", async () => {
    for (let call = 0; call < 5; call += 1) {
      // test.Echo/Fail answers the code it is sent: the handler's own failure of a call grpc-js read.
      const answer = await http1Call(gateway.port, 'plain-js', '/test.Echo/Fail', 'application/grpc-web+proto', '', undefined, {}, frame(Buffer.from('2')));
      expect(answer.headers['content-type']).toMatch(/^application\/grpc(\+proto)?$/);
      expect(answer.headers['grpc-status']).toBe('2');
      expect(decodeURIComponent(String(answer.headers['grpc-message']))).toBe('js failed with 2');
    }
    const errors = async () => sampleValue(await admin.metrics(), 'switchboard_upstream_errors_total', { service: 'plain-js', class: 'grpc-web-unsupported' }) ?? 0;
    await waitFor(async () => (await errors()) === 5, { timeoutMs: 5_000, message: 'five grpc-web-unsupported counted' });
    const metrics = await admin.metrics();
    expect(sampleValue(metrics, 'switchboard_outlier_ejections_total', { service: 'plain-js' }) ?? 0).toBe(0);
    expect(sampleValue(metrics, 'switchboard_upstream_errors_total', { service: 'plain-js', class: 'grpc-error' }) ?? 0).toBe(0);
    expect(await admin.instance('plain-js', 'js')).toMatchObject({ errors: 0, health: { state: 'healthy' } });
    const warnings = (await logOf(gateway.process)).split('\n').filter((line) => line.includes('grpc-web-unsupported') && line.includes('"level":40'));
    expect(warnings).toHaveLength(1);
    const warning = JSON.parse(warnings[0]!) as Record<string, unknown>;
    expect(warning).toMatchObject({ status: 200, grpcStatus: 2, grpcMessage: 'js%20failed%20with%202' });
    expect(warning['msg']).toContain('the failure of a call the server read');
  });
});

describe('grpcWeb on a route whose instances are HTTP/1.1 (protocol: http), through the real gateway', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    backend = await startBackend({ name: 'http1' });
    gateway = await startGateway(`
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
middlewares:
  grpc-web: { grpcWeb: {} }
services:
  http1:
    instances: [{ id: plain, host: 127.0.0.1, port: ${backend.port}, protocol: http }]
routes:
  - { headers: { x-target: http1 }, service: http1, middlewares: [grpc-web] }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('warns once per route and service that gRPC needs grpc or grpcs instances, and still sends the calls', async () => {
    for (let call = 0; call < 3; call += 1) await http1Call(gateway.port, 'http1', 'SayHello', 'application/grpc-web+proto', 'browser');
    const warned = async () => (await logOf(gateway.process)).split('\n').filter((line) => line.includes('gRPC needs HTTP/2'));
    await waitFor(async () => (await warned()).length === 1, { timeoutMs: 5_000, message: 'the warning logged' });
    expect((await warned())[0]).toContain('protocol grpc or grpcs');
    expect(await warned()).toHaveLength(1);
  });
});
