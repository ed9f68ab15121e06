import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect, constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, type AddressInfo } from 'node:net';
import grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { rawMethod } from '../harness/grpc.ts';
import { logOf, readGrpcWebAnswer, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** One gRPC message frame: the 5-byte prefix (uncompressed, length) and the bytes. */
function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** How a stream the stub served ended: its RST_STREAM code (0 when it ended cleanly) and when. */
interface StubStreamEnd {
  readonly rstCode: number;
  readonly at: number;
}

const STUB_SERVICE = {
  Forever: rawMethod('/stub.S/Forever', false, true),
  Die: rawMethod('/stub.S/Die', false, true),
  DieEarly: rawMethod('/stub.S/DieEarly', false, true),
  Reset: rawMethod('/stub.S/Reset', false, true),
  ResetNoError: rawMethod('/stub.S/ResetNoError', false, true),
  Meta: rawMethod('/stub.S/Meta', false, false),
  HalfClose: rawMethod('/stub.S/HalfClose', true, true),
};
type StubClient = grpc.Client & Record<keyof typeof STUB_SERVICE, (...args: unknown[]) => unknown>;

describe('gRPC streams through the gateway to a raw HTTP/2 gRPC server: cancellation mid-stream, an upstream gone mid-stream, metadata, half-close', () => {
  let stub: Http2Server;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let client: StubClient;
  /** Each stub stream's end, by the x-key request header. */
  const ends = new Map<string, StubStreamEnd>();
  /** Each stub stream's request headers, by the x-key request header. */
  const requests = new Map<string, IncomingHttpHeaders>();

  beforeAll(async () => {
    stub = createServer();
    stub.on('stream', (stream: ServerHttp2Stream, headers) => {
      const key = String(headers['x-key'] ?? '');
      requests.set(key, headers);
      stream.on('error', () => undefined);
      stream.on('close', () => ends.set(key, { rstCode: stream.rstCode ?? 0, at: performance.now() }));
      const path = headers[':path'];
      const respond = (extra: Record<string, string | string[]> = {}) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...extra }, { waitForTrailers: true });
      if (path === '/stub.S/Forever') {
        respond();
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        const timer = setInterval(() => stream.write(grpcFrame(Buffer.from('tick'))), 20);
        stream.on('close', () => clearInterval(timer));
      } else if (path === '/stub.S/Die') {
        respond();
        stream.write(grpcFrame(Buffer.from('first')), () => setTimeout(() => stream.session?.destroy(), 50));
      } else if (path === '/stub.S/DieEarly') {
        stream.session?.destroy();
      } else if (path === '/plain/die') {
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.write('first part\n', () => setTimeout(() => stream.session?.destroy(), 50));
      } else if (path === '/stub.S/Reset') {
        respond();
        stream.write(grpcFrame(Buffer.from('first')), () => setTimeout(() => stream.close(constants.NGHTTP2_INTERNAL_ERROR), 50));
      } else if (path === '/stub.S/ResetNoError' || path === '/plain/reset-no-error') {
        // RST_STREAM NO_ERROR after a message, with no END_STREAM before it (waitForTrailers holds it back): RFC 9113 §8.1 allows
        // that only after a complete response, so this one was cut short.
        stream.respond({ ':status': 200, 'content-type': path === '/plain/reset-no-error' ? 'text/plain' : 'application/grpc' }, { waitForTrailers: true });
        stream.write(path === '/plain/reset-no-error' ? 'first part\n' : grpcFrame(Buffer.from('first')), () => setTimeout(() => stream.close(constants.NGHTTP2_NO_ERROR), 50));
      } else if (path === '/plain/answer-early') {
        // A whole answer (END_STREAM), then RST_STREAM NO_ERROR without reading the upload: RFC 9113 §8.1's early response.
        stream.respond({ ':status': 200, 'content-type': 'text/plain' });
        stream.end('whole answer\n', () => stream.close(constants.NGHTTP2_NO_ERROR));
      } else if (path === '/stub.S/ManyFields') {
        // An answer of x-n metadata entries in its headers and as many in its trailers.
        const fields = Object.fromEntries(Array.from({ length: Number(headers['x-n']) }, (_, index) => [`x-r-${index}`, `v${index}`]));
        respond(fields);
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', ...fields }));
        stream.resume();
        stream.on('end', () => stream.end(grpcFrame(Buffer.from('many'))));
      } else if (path === '/stub.S/Meta') {
        const echoed = Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith('x-m')).map(([name, value]) => [name, value as string]));
        respond(echoed);
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', ...Object.fromEntries(Object.entries(echoed).map(([name, value]) => [`${name.replace(/^x-m/, 'x-t')}`, value])) }));
        stream.resume();
        stream.on('end', () => stream.end(grpcFrame(Buffer.from('meta'))));
      } else if (path === '/stub.S/WebStall') {
        // A gRPC-Web answer: one message (whole, or its first 3 bytes with x-half), then silence until the call's deadline.
        const text = String(headers['content-type']).startsWith('application/grpc-web-text');
        stream.respond({ ':status': 200, 'content-type': text ? 'application/grpc-web-text' : 'application/grpc-web+proto' });
        const message = grpcFrame(Buffer.from('first'));
        const sent = headers['x-half'] === undefined ? message : message.subarray(0, 3);
        stream.write(text ? sent.toString('base64') : sent);
        stream.resume();
      } else if (path === '/stub.S/Silent') {
        // Takes the upload and never answers: only the call's deadline ends it.
        stream.resume();
      } else if (path === '/stub.S/HeadersThenSilent') {
        // Answers headers and a message, takes the upload, then neither ends nor sends trailers.
        respond();
        stream.write(grpcFrame(Buffer.from('first')));
        stream.resume();
      } else if (path === '/stub.S/TrailersOnly') {
        // Refuses the call at once, Trailers-Only, without reading the upload.
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpc.status.PERMISSION_DENIED) }, { endStream: true });
      } else if (path === '/stub.S/EndsEarly') {
        // A message and its status, whatever the client still sends.
        respond();
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcFrame(Buffer.from('done')));
      } else if (path === '/stub.S/HalfClose') {
        respond();
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.on('data', (chunk: Buffer) => stream.write(grpcFrame(Buffer.from(`echo:${chunk.subarray(5).toString()}`))));
        // Sent only once the client's END_STREAM has come through the gateway.
        stream.on('end', () => {
          stream.write(grpcFrame(Buffer.from('after-end-1')));
          setTimeout(() => stream.end(grpcFrame(Buffer.from('after-end-2'))), 100);
        });
      }
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
consumers:
  caller: { keys: ["sha256:${'0'.repeat(64)}"] }
middlewares:
  key: { keyAuth: { header: X-API-Key } }
services:
  stub: { instances: [{ host: 127.0.0.1, port: ${(stub.address() as AddressInfo).port}, protocol: grpc }], outlierDetection: { consecutiveErrors: 1 }, retries: false }
  plain: { instances: [{ host: 127.0.0.1, port: ${(stub.address() as AddressInfo).port}, protocol: h2c }], outlierDetection: false, retries: false }
routes:
  - { path: /plain, service: plain }
  - { grpcService: stub.S, service: stub }
  - { grpcService: guarded.S, service: stub, middlewares: [key] }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    const Client = grpc.makeGenericClientConstructor(STUB_SERVICE, 'stub.S');
    client = new Client(`127.0.0.1:${gateway.port}`, grpc.credentials.createInsecure()) as never;
  });

  afterAll(async () => {
    client?.close();
    await gateway?.process.stop();
    stub?.close();
  });

  const stubInstance = async () => (await admin.services()).find((service) => service.name === 'stub')!.instances[0]!;

  function metadataOf(key: string): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set('x-key', key);
    return metadata;
  }

  it('a server stream its client cancels is reset (CANCEL) at the upstream at once, and counts against no instance', async () => {
    const before = await stubInstance();
    const key = `cancel-${Date.now()}`;
    const call = (client.Forever as (request: Buffer, metadata: grpc.Metadata) => grpc.ClientReadableStream<Buffer>)(Buffer.from('go'), metadataOf(key));
    let received = 0;
    call.on('data', () => (received += 1));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    await waitFor(() => received >= 3, { timeoutMs: 10_000, message: 'three messages through the gateway' });
    const cancelled = performance.now();
    call.cancel();
    expect((await status).code).toBe(grpc.status.CANCELLED);
    const end = await waitFor(() => ends.get(key), { timeoutMs: 5_000, message: 'the upstream stream to end' });
    console.log(`upstream stream closed ${Math.round(end.at - cancelled)} ms after the cancel, rstCode ${end.rstCode}`);
    expect(end.rstCode).toBe(constants.NGHTTP2_CANCEL);
    await waitFor(async () => (await stubInstance()).requests >= before.requests + 1, { timeoutMs: 10_000, message: 'the call in the instance counts' });
    expect(await stubInstance()).toMatchObject({ errors: before.errors, health: { ejectedUntil: null } });
  });

  it.each([
    ['Die', 'closes its connection after a message', ['first']],
    ['DieEarly', 'closes its connection before its response headers', []],
    ['Reset', 'resets the stream after a message', ['first']],
    ['ResetNoError', 'resets the stream with NO_ERROR after a message, before its end', ['first']],
  ] as const)('an upstream that %s (%s) ends the call as UNAVAILABLE at once, not a hang nor an OK, and counts against the instance', async (name, _what, expected) => {
    const before = await stubInstance();
    const key = `${name}-${Date.now()}`;
    const started = performance.now();
    const call = (client[name] as (request: Buffer, metadata: grpc.Metadata) => grpc.ClientReadableStream<Buffer>)(Buffer.from('go'), metadataOf(key));
    const messages: string[] = [];
    call.on('data', (message: Buffer) => messages.push(message.toString()));
    call.on('error', () => undefined);
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    // Well within the 30 s headers and 60 s idle-body timeouts: the gateway saw the connection go.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect({ code: status.code, messages }).toEqual({ code: grpc.status.UNAVAILABLE, messages: expected });
    await waitFor(async () => (await stubInstance()).errors >= before.errors + 1, { timeoutMs: 10_000, message: 'the failure counted against the instance' });
  });

  it.each([
    ['closes its connection', 'die', 'HTTP/1.1', '--http1.1', 18],
    ['closes its connection', 'die', 'HTTP/2', '--http2-prior-knowledge', 92],
    ['resets the stream with NO_ERROR before its end', 'reset-no-error', 'HTTP/1.1', '--http1.1', 18],
    ['resets the stream with NO_ERROR before its end', 'reset-no-error', 'HTTP/2', '--http2-prior-knowledge', 92],
  ])('an h2c upstream that %s mid-body (/plain/%s) cuts the %s answer short: the client never takes it for a whole one', async (_what, path, _name, flag, exitCode) => {
    const outcome = await new Promise<{ code: number | null; body: string }>((resolve) => {
      execFile('curl', ['-sS', '-m', '10', flag, `${gateway.url}/plain/${path}`], { timeout: 15_000 }, (error, stdout) => resolve({ code: error ? (error as { code?: number }).code ?? -1 : 0, body: stdout }));
    });
    expect(outcome.body).toBe('first part\n');
    // Not 0, an answer that ended as it should: 18, a chunked body without its last chunk; 92, a reset HTTP/2 stream.
    expect(outcome.code).toBe(exitCode);
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').findLast((text) => text.includes(`"path":"/plain/${path}"`)), { timeoutMs: 5_000, message: 'the access line' });
    expect(JSON.parse(line)).toMatchObject({ status: 200, errorClass: 'reset-after-headers' });
  });

  it('an h2c upstream that answers whole, then resets with NO_ERROR while the client still uploads (an early response) gives the client the whole answer', async () => {
    const outcome = await new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: gateway.port, method: 'POST', path: '/plain/answer-early', headers: { 'transfer-encoding': 'chunked' } }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, body, complete: response.complete });
          request.end();
        });
      });
      request.setTimeout(10_000, () => request.destroy(new Error('POST /plain/answer-early timed out')));
      request.on('error', reject);
      // The upload's first part only: its end is sent after the whole answer has come.
      request.write('first part of the upload');
    });
    expect(outcome).toEqual({ status: 200, body: 'whole answer\n', complete: true });
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').findLast((text) => text.includes('"path":"/plain/answer-early"')), { timeoutMs: 5_000, message: 'the access line' });
    expect(JSON.parse(line)).not.toHaveProperty('errorClass');
  });

  it.each([
    ['no route matches it', '/nothing.Here/Call', {}, 'headers', String(grpc.status.UNIMPLEMENTED)],
    ['keyAuth refuses it (no key)', '/guarded.S/Call', {}, 'headers', String(grpc.status.UNAUTHENTICATED)],
    ['its deadline passes before the upstream answers', '/stub.S/Silent', { 'grpc-timeout': '300m' }, 'headers', String(grpc.status.DEADLINE_EXCEEDED)],
    // The upstream's headers must reach the client before the deadline, or the gateway's answer is
    // Trailers-Only and the row fails: 300 ms passed only narrowly on a loaded CI machine. 3 s leaves
    // ten times that margin for a relay on loopback; the upstream never ends the call by itself
    // (only the deadline does), and the wait below polls for the stream's close, so a longer
    // deadline costs its length only.
    ['its deadline passes after the upstream sent headers', '/stub.S/HeadersThenSilent', { 'grpc-timeout': '3S' }, 'trailers', String(grpc.status.DEADLINE_EXCEEDED)],
    ["the upstream's own Trailers-Only answer", '/stub.S/TrailersOnly', {}, 'headers', String(grpc.status.PERMISSION_DENIED)],
    ["the upstream's status in trailers after a message", '/stub.S/EndsEarly', {}, 'trailers', String(grpc.status.OK)],
  ] as const)("a client-streaming call still sending whose answer ends it (%s) gets its status, END_STREAM, then RST_STREAM NO_ERROR, and stops sending", async (_what, path, extra, where, grpcStatus) => {
    const session = connect(gateway.url);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra });
      let fields: Record<string, unknown> = {};
      stream.on('response', (headers) => where === 'headers' && (fields = headers));
      stream.on('trailers', (trailers) => where === 'trailers' && (fields = trailers));
      stream.on('error', () => undefined);
      stream.resume();
      // The answer's END_STREAM must come before the reset (see gateway-body-limit): node's client
      // pushes the body's end on a reset too, but with the stream already closed.
      let endStreamFirst: boolean | undefined;
      const push = stream.push;
      stream.push = function pushSeeingClose(this: typeof stream, chunk: unknown, encoding?: BufferEncoding): boolean {
        if (chunk === null) endStreamFirst ??= !stream.closed;
        return push.call(this, chunk, encoding);
      };
      // A message every 20 ms, without end: a stream the gateway left open stays open.
      const timer = setInterval(() => stream.closed || stream.write(grpcFrame(Buffer.from('more'))), 20);
      try {
        await waitFor(() => stream.closed, { timeoutMs: 10_000, message: 'the call to end and its stream to close' });
      } finally {
        clearInterval(timer);
      }
      expect({ grpcStatus: fields['grpc-status'], endStreamFirst, rstCode: stream.rstCode }).toEqual({ grpcStatus, endStreamFirst: true, rstCode: constants.NGHTTP2_NO_ERROR });
    } finally {
      session.destroy();
    }
  });

  it('a gRPC-Web call over HTTP/1.1 refused with its body whole keeps its connection: a second call on it is answered too', async () => {
    const socket = netConnect(gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
    const body = grpcFrame(Buffer.from('hello')).toString('latin1');
    // Headers and body in one write: the refusal may come before node has parsed the body.
    const call = `POST /guarded.S/Call HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    const answers = () => received.split('\r\n').filter((line) => line.toLowerCase().startsWith('grpc-status:'));
    try {
      socket.write(call);
      await waitFor(() => answers().length === 1, { timeoutMs: 10_000, message: 'the first answer' });
      socket.write(call);
      await waitFor(() => answers().length === 2 || socket.closed, { timeoutMs: 10_000, message: 'the second answer, or the connection closed' });
      const connection = received.split('\r\n').filter((line) => line.toLowerCase().startsWith('connection:')).map((line) => line.toLowerCase());
      expect({ answers: answers(), connection }).toEqual({ answers: [`grpc-status: ${grpc.status.UNAUTHENTICATED}`, `grpc-status: ${grpc.status.UNAUTHENTICATED}`], connection: ['connection: keep-alive', 'connection: keep-alive'] });
    } finally {
      socket.destroy();
    }
  });

  it("answers gRPC-Web calls it refuses itself (no key, no route) in the call's own gRPC-Web type, over HTTP/1.1 and HTTP/2, with a status a browser client reads", async () => {
    const body = grpcFrame(Buffer.from('hello'));
    const h1 = (path: string, type: string) =>
      new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const outgoing = httpRequest({ host: '127.0.0.1', port: gateway.port, path, method: 'POST', agent: false, headers: { 'content-type': type, 'x-grpc-web': '1' } }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }));
        });
        outgoing.on('error', reject);
        outgoing.end(type.includes('-text') ? body.toString('base64') : body);
      });
    const session = connect(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => undefined);
    const h2 = (path: string, type: string) =>
      new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': type, 'x-grpc-web': '1' });
        const chunks: Buffer[] = [];
        let headers: IncomingHttpHeaders = {};
        stream.on('response', (received) => (headers = received as IncomingHttpHeaders));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => resolve({ headers, body: Buffer.concat(chunks) }));
        stream.on('error', reject);
        stream.end(type.includes('-text') ? body.toString('base64') : body);
      });
    try {
      for (const [name, send] of [['HTTP/1.1', h1], ['HTTP/2', h2]] as const) {
        for (const type of ['application/grpc-web-text', 'application/grpc-web+proto', 'application/grpc-web+json']) {
          const refused = await send('/guarded.S/Call', type);
          expect(readGrpcWebAnswer(type, refused.headers, refused.body), `${name} ${type}`).toMatchObject({ status: grpc.status.UNAUTHENTICATED });
          const unrouted = await send('/nowhere.S/Call', type);
          expect(readGrpcWebAnswer(type, unrouted.headers, unrouted.body), `${name} ${type}`).toMatchObject({ status: grpc.status.UNIMPLEMENTED });
        }
      }
    } finally {
      session.destroy();
    }
  });

  it("ends a gRPC-Web answer whose deadline passed mid-stream with a trailer frame in its body (base64 for -text), which a browser client reads; one cut within a frame is cut off", async () => {
    const call = (type: string, extra: Record<string, string> = {}) =>
      new Promise<{ headers: IncomingHttpHeaders; body: Buffer; complete: boolean }>((resolve, reject) => {
        const outgoing = httpRequest({ host: '127.0.0.1', port: gateway.port, path: '/stub.S/WebStall', method: 'POST', agent: false, headers: { 'content-type': type, 'x-grpc-web': '1', 'grpc-timeout': '500m', ...extra } }, (response) => {
          const chunks: Buffer[] = [];
          let complete = false;
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => (complete = true));
          response.on('error', () => undefined);
          response.on('close', () => resolve({ headers: response.headers, body: Buffer.concat(chunks), complete: complete && response.complete }));
        });
        outgoing.on('error', reject);
        const body = grpcFrame(Buffer.from('hello'));
        outgoing.end(type.includes('-text') ? body.toString('base64') : body);
      });
    for (const type of ['application/grpc-web+proto', 'application/grpc-web-text']) {
      const answer = await call(type);
      expect(answer.complete, type).toBe(true);
      expect(readGrpcWebAnswer(type, answer.headers, answer.body), type).toMatchObject({ status: grpc.status.DEADLINE_EXCEEDED });
    }
    const half = await call('application/grpc-web+proto', { 'x-half': '1' });
    expect(half.complete).toBe(false);
  });

  it('binary and large metadata reach the upstream and come back in headers and trailers unchanged', async () => {
    const key = `meta-${Date.now()}`;
    const metadata = metadataOf(key);
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80]);
    metadata.set('x-m-bin', binary);
    metadata.set('x-m-text', 'plain value');
    metadata.set('x-m-large', 'v'.repeat(6_000));
    for (let index = 0; index < 50; index += 1) metadata.set(`x-m-many-${index}`, `value-${index}`);
    const outcome = await new Promise<{ headers: grpc.Metadata; status: grpc.StatusObject; value?: Buffer }>((resolve) => {
      let headers = new grpc.Metadata();
      let value: Buffer | undefined;
      const call = (client.Meta as (...args: unknown[]) => grpc.ClientUnaryCall)(Buffer.from('x'), metadata, (_error: unknown, answer?: Buffer) => (value = answer));
      call.on('metadata', (received: grpc.Metadata) => (headers = received));
      call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ headers, status, ...(value ? { value } : {}) })));
    });
    expect([outcome.status.code, outcome.value?.toString()]).toEqual([0, 'meta']);
    expect(Buffer.from(String(requests.get(key)!['x-m-bin']), 'base64')).toEqual(binary);
    expect(outcome.headers.get('x-m-bin')[0]).toEqual(binary);
    expect(outcome.status.metadata.get('x-t-bin')[0]).toEqual(binary);
    expect(outcome.headers.get('x-m-large')[0]).toBe('v'.repeat(6_000));
    expect(outcome.status.metadata.get('x-t-many-49')[0]).toBe('value-49');
    expect(outcome.headers.get('x-m-text')[0]).toBe('plain value');
  });

  it("an answer of 300 metadata entries in its headers and 300 in its trailers (node:http2's default limit is 128) reaches the client whole, and counts against no instance", async () => {
    const before = await stubInstance();
    // grpc-js holds its answers to node:http2's default 128 fields: a raw client that takes more.
    const session = connect(gateway.url, { maxHeaderListPairs: 1_000 });
    try {
      const outcome = await new Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/stub.S/ManyFields', 'content-type': 'application/grpc', te: 'trailers', 'x-n': '300' });
        let headers: Record<string, unknown> = {};
        let trailers: Record<string, unknown> = {};
        const chunks: Buffer[] = [];
        stream.on('response', (received) => (headers = received));
        stream.on('trailers', (received) => (trailers = received));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('error', reject);
        stream.on('close', () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
        stream.end(grpcFrame(Buffer.alloc(0)));
      });
      const entries = (fields: Record<string, unknown>) => Object.keys(fields).filter((name) => name.startsWith('x-r-')).length;
      expect({ status: outcome.headers[':status'], grpcStatus: outcome.trailers['grpc-status'], headers: entries(outcome.headers), trailers: entries(outcome.trailers), last: outcome.trailers['x-r-299'] }).toEqual({
        status: 200,
        grpcStatus: '0',
        headers: 300,
        trailers: 300,
        last: 'v299',
      });
      expect(outcome.body).toEqual(grpcFrame(Buffer.from('many')));
    } finally {
      session.close();
    }
    await waitFor(async () => (await stubInstance()).requests >= before.requests + 1, { timeoutMs: 10_000, message: 'the call in the instance counts' });
    expect((await stubInstance()).errors).toBe(before.errors);
  });

  it('a bidi stream talks turn by turn, and once its client half-closes the server sees the end and still gets to send, then OK', async () => {
    const key = `half-${Date.now()}`;
    const call = (client.HalfClose as (metadata: grpc.Metadata) => grpc.ClientDuplexStream<Buffer, Buffer>)(metadataOf(key));
    const messages: string[] = [];
    call.on('data', (message: Buffer) => {
      messages.push(message.toString());
      if (messages.length === 1) call.write(Buffer.from('two'));
      if (messages.length === 2) call.end();
    });
    call.on('error', () => undefined);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.write(Buffer.from('one'));
    expect((await status).code).toBe(0);
    expect(messages).toEqual(['echo:one', 'echo:two', 'after-end-1', 'after-end-2']);
  });
});
