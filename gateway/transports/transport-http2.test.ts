import { createServer, type Server } from 'node:http';
import { constants, createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo, Server as TcpServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import { grpcWebFrame } from '../proxy/proxy-testing.ts';
import type { AttemptResult } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';
import { RESEND_BYTES } from './transport-http2-attempt.ts';
import { recordingPick } from './transport-testing.ts';
import { freePort } from '../../test/harness/ports.ts';

const listen = async (server: Server | Http2Server | TcpServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('Http2Transport', () => {
  const sessions: ServerHttp2Session[] = [];
  let backend: Http2Server;
  let backendPort: number;
  let transport: Http2Transport | undefined;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;
  let prepare: (context: GatewayContext) => void = () => undefined;

  beforeAll(async () => {
    backend = createHttp2Server((request, response) => {
      if (request.url === '/silent') return; // never answers
      // A graceful GOAWAY saying this stream (not the session's first) was not processed, as a server rotating its connections sends it to a stream on the wire.
      if (request.url === '/refused' && (request.stream.id ?? 0) > 1) return void request.stream.session?.goaway(constants.NGHTTP2_NO_ERROR, request.stream.id! - 2);
      if (request.url === '/refused-echo') {
        // Refused once the whole body is in: the gateway has by then taken all of it from its client.
        if ((request.stream.id ?? 0) > 1) return void request.resume().once('end', () => request.stream.session?.goaway(constants.NGHTTP2_NO_ERROR, request.stream.id! - 2));
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        return void request.on('end', () => response.end(`echo ${Buffer.concat(chunks).toString('utf8')} on session ${sessions.indexOf(request.stream.session as ServerHttp2Session)}`));
      }
      // RST_STREAM NO_ERROR after part of the answer, before its END_STREAM (waitForTrailers holds that back).
      if (request.url === '/reset-no-error') {
        request.stream.respond({ ':status': 200 }, { waitForTrailers: true });
        return void request.stream.write('first part', () => request.stream.close(constants.NGHTTP2_NO_ERROR));
      }
      if (request.url === '/not-modified') return void response.writeHead(304, { etag: '"v1"' }).end();
      if (request.url === '/sized') return void response.writeHead(200, { 'content-length': '5' }).end('sized');
      // Load shedding: the stream refused, the session kept.
      if (request.url === '/shed') return void request.stream.close(constants.NGHTTP2_REFUSED_STREAM);
      request.resume();
      response.end(`answered on session ${sessions.indexOf(request.stream.session as ServerHttp2Session)}`);
      if (request.url === '/goaway') request.stream.session?.close();
    });
    backend.on('session', (session) => sessions.push(session));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      prepare(context);
      const { pick, outcome } = recordingPick();
      last = transport!.attempt(context, pick, { headersTimeoutMs: 300, bodyTimeoutMs: 2_000 }, null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome()! };
      });
    });
    await listen(gateway);
  });
  afterEach(async () => {
    await transport?.close();
    transport = undefined;
    prepare = () => undefined;
  });
  afterAll(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  async function exchange(path: string) {
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path).then(({ status, headers, body }) => ({ status, headers, body: body.toString('utf8') }));
    return { ...answer, ...(await last) };
  }

  const h2c = (port: number) => new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 1_000, tls: undefined });

  it('multiplexes requests on one session and opens a new one after the upstream sent GOAWAY', async () => {
    transport = h2c(backendPort);
    const first = sessions.length;
    expect((await exchange('/a')).body).toBe(`answered on session ${first}`);
    expect((await exchange('/goaway')).body).toBe(`answered on session ${first}`);
    const after = await exchange('/b');
    expect(after).toMatchObject({ status: 200, body: `answered on session ${first + 1}`, outcome: { ok: true } });
  });

  it('sends a stream that a going-away session refused unprocessed again on a fresh session, no failure of the upstream', async () => {
    transport = h2c(backendPort);
    const first = sessions.length;
    expect((await exchange('/a')).body).toBe(`answered on session ${first}`);
    const refused = await exchange('/refused');
    expect(refused).toMatchObject({ status: 200, body: `answered on session ${first + 1}`, outcome: { ok: true } });
  });

  it.each([
    { body: 'a small body', size: 100, resent: true },
    { body: 'a body beyond what is kept to send again', size: RESEND_BYTES + 1, resent: false },
  ])('a refused stream with $body is sent again, with it, on a fresh session: $resent', async ({ size, resent }) => {
    const payload = 'x'.repeat(size);
    transport = h2c(backendPort);
    const first = sessions.length;
    expect((await exchange('/a')).body).toBe(`answered on session ${first}`);
    // A gateway that passes the request body on, as a gRPC call's.
    const uploads = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      last = transport!.attempt(context, pick, { headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 }, request).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome()! };
      });
    });
    try {
      const answer = await sendTestRequest(await listen(uploads), '/refused-echo', { method: 'POST', body: payload });
      const { outcome } = await last;
      if (resent) {
        expect(answer.body.toString('utf8')).toBe(`echo ${payload} on session ${first + 1}`);
        expect(outcome).toMatchObject({ ok: true });
      } else {
        expect(answer.status).toBe(502);
        expect(outcome).toMatchObject({ ok: false, errorClass: 'connect-refused' });
      }
    } finally {
      await new Promise((resolve) => uploads.close(resolve));
    }
  });

  it('does not send again a stream refused by a session that stays (load shedding): connect-refused, counted', async () => {
    transport = h2c(backendPort);
    const result = await exchange('/shed');
    expect(result.status).toBe(502);
    expect(result.outcome).toMatchObject({ ok: false, errorClass: 'connect-refused' });
    expect(isUpstreamFailure(result.outcome)).toBe(true);
  });

  it('fails an answer the upstream reset with NO_ERROR before its END_STREAM as reset-after-headers, counted: RFC 9113 §8.1 says it was truncated', async () => {
    transport = h2c(backendPort);
    const { port } = gateway.address() as AddressInfo;
    const arrived = new Promise<GatewayContext>((resolve) => (prepare = resolve));
    // The client's answer is cut (its chunked body never ends): what it makes of that is the integration tests'.
    const answer = sendTestRequest(port, '/reset-no-error').catch(() => undefined);
    const context = await arrived;
    const { result, outcome } = await last;
    // As the proxy does with an answer cut after it started.
    context.response.destroy();
    await answer;
    expect(result).toMatchObject({ ok: false, errorClass: 'reset-after-headers', responseStarted: true });
    expect(outcome).toMatchObject({ ok: false, errorClass: 'reset-after-headers' });
    expect(isUpstreamFailure(outcome)).toBe(true);
  });

  it("fails an answer whose response header hook throws as internal, the gateway's own failure, never counted against the upstream", async () => {
    transport = h2c(backendPort);
    // The hook throws on the upstream's 200 only, so the gateway's own 500 still goes out.
    prepare = (context) => context.responseHeaderHooks.push((status) => {
      if (status === 200) throw new Error('a header policy failed');
    });
    const result = await exchange('/');
    expect(result.status).toBe(500);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'internal', responseStarted: false });
    expect(result.outcome).toMatchObject({ ok: false, errorClass: 'internal' });
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("fails an answer whose head node:http refuses to write (a Trailer beside a Content-Length) as internal, the gateway's own failure, never counted against the upstream", async () => {
    transport = h2c(backendPort);
    // On the upstream's 200 only, so the gateway's own 500 still goes out.
    prepare = (context) => context.responseHeaderHooks.push((status, headers) => {
      if (status === 200) headers.trailer = 'x-checksum';
    });
    const result = await exchange('/sized');
    expect(result.status).toBe(500);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
    expect(result.result).toMatchObject({ ok: false, errorClass: 'internal', responseStarted: false });
    expect(result.outcome).toMatchObject({ ok: false, errorClass: 'internal' });
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("answers 500 without the refused head's headers when the response had headers set before it (hsts, a drain's close), which node:http merges the head into", async () => {
    transport = h2c(backendPort);
    prepare = (context) => {
      context.response.setHeader('strict-transport-security', 'max-age=60');
      context.responseHeaderHooks.push((status, headers) => {
        if (status === 200) Object.assign(headers, { trailer: 'x-checksum', 'cache-control': 'public, max-age=600' });
      });
    };
    const result = await exchange('/sized');
    expect(result.status).toBe(500);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
    expect(result.headers).toMatchObject({ 'strict-transport-security': 'max-age=60', 'content-type': 'application/json' });
    expect(result.headers['cache-control']).toBeUndefined();
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("sends an answer replacer's answer whole in the upstream's place, through the hooks, the attempt still the upstream's 304", async () => {
    transport = h2c(backendPort);
    const hooked: number[] = [];
    let client: GatewayContext | undefined;
    prepare = (context) => {
      client = context;
      context.answerReplacer = (status, headers) =>
        status === 304 ? { status: 200, headers: { 'content-type': 'text/plain', 'content-length': '6', 'x-etag-seen': String(headers.etag) }, body: Buffer.from('stored') } : undefined;
      context.responseHeaderHooks.push((status, headers) => {
        hooked.push(status);
        headers['x-hooked'] = 'yes';
      });
    };
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, '/not-modified');
    const { result, outcome } = await last;
    expect([answer.status, answer.body.toString(), answer.headers['x-etag-seen'], answer.headers['x-hooked']]).toEqual([200, 'stored', '"v1"', 'yes']);
    expect(hooked).toEqual([200]);
    expect(result).toMatchObject({ ok: true });
    expect(outcome).toMatchObject({ ok: true });
    expect(client!.outcome).toMatchObject({ status: 200, bytesOut: 6 });
  });

  it('fails with connect-refused, counted against the upstream, when nothing listens', async () => {
    transport = h2c(await freePort());
    const result = await exchange('/');
    expect(result.status).toBe(502);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'connect-refused' });
    expect(result.outcome).toMatchObject({ ok: false, errorClass: 'connect-refused' });
  });

  it('fails with headers-timeout (504) when the upstream does not answer in time, and cancels the stream', async () => {
    transport = h2c(backendPort);
    const started = performance.now();
    const result = await exchange('/silent');
    expect(result.status).toBe(504);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('fails with upstream-protocol when the peer does not speak HTTP/2', async () => {
    const http1Only = createServer((_request, response) => response.end('HTTP/1.1 only'));
    try {
      transport = h2c(await listen(http1Only));
      const result = await exchange('/');
      expect(result.status).toBe(502);
      expect(result.result).toMatchObject({ ok: false });
      expect((result.result as { errorClass: string; error: Error }).errorClass, String((result.result as { error: Error }).error?.stack)).toBe('upstream-protocol');
    } finally {
      http1Only.closeAllConnections();
      await new Promise((resolve) => http1Only.close(resolve));
    }
  });
});

/** Polls `condition` every 10 ms until it holds or `withinMs` pass; whether it held. */
describe("Http2Transport: a gRPC call's outcome is its grpc-status", () => {
  let backend: Http2Server;
  let transport: Http2Transport;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome; grpcStatus: number | undefined }>;

  beforeAll(async () => {
    // /trailers-only/<code>: the status in the one HEADERS frame; /after-message/<code>: a message, then the status in trailers.
    backend = createHttp2Server();
    backend.on('stream', (stream, headers) => {
      const [, shape, code] = String(headers[':path']).split('/');
      stream.resume();
      if (shape === 'trailers-only') return void stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': code }, { endStream: true });
      if (shape === 'web-frame') {
        // gRPC-Web: no HTTP/2 trailers, the status in the body's last frame (flag 0x80).
        stream.respond({ ':status': 200, 'content-type': 'application/grpc-web+proto' });
        stream.write(grpcWebFrame(0, 'a'));
        return void stream.end(grpcWebFrame(0x80, `grpc-status:${code}\r\n`));
      }
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': code!, 'grpc-message': 'failed' }));
      stream.end(Buffer.from([0, 0, 0, 0, 1, 0x61]));
    });
    const backendPort = await listen(backend);
    transport = new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${backendPort}`, connectTimeoutMs: 1_000, tls: undefined });
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      last = transport.attempt(context, pick, { headersTimeoutMs: 2_000, bodyTimeoutMs: 2_000 }, null).then((result) => ({ result, outcome: outcome()!, grpcStatus: context.outcome.grpcStatus }));
    });
    await listen(gateway);
  });
  afterAll(async () => {
    await transport.close();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  async function call(path: string, contentType: string) {
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path, { method: 'POST', headers: { 'content-type': contentType, te: 'trailers' } });
    return { status: answer.status, ...(await last) };
  }

  it.each([
    ['trailers-only', 14, false],
    ['after-message', 14, false],
    ['trailers-only', 13, false],
    ['after-message', 2, false],
    ['after-message', 15, false],
    ['trailers-only', 5, true],
    ['after-message', 3, true],
    ['after-message', 4, true],
    ['trailers-only', 8, true],
    ['after-message', 0, true],
  ])('reports a %s answer with grpc-status %i as ok: %s to the pick, the answer relayed either way', async (shape, code, ok) => {
    const { status, result, outcome, grpcStatus } = await call(`/${shape}/${code}`, 'application/grpc');
    expect(status).toBe(200);
    expect(grpcStatus).toBe(code);
    expect(result).toEqual({ ok: true });
    expect(outcome).toMatchObject(ok ? { ok: true } : { ok: false, errorClass: 'grpc-error' });
    expect(isUpstreamFailure(outcome)).toBe(!ok);
  });

  it.each(['trailers-only', 'after-message'])('reads a malformed grpc-status (%s) as UNKNOWN, a failure of the upstream (never NaN in the access log)', async (shape) => {
    const { outcome, grpcStatus } = await call(`/${shape}/oops`, 'application/grpc');
    expect(grpcStatus).toBe(2);
    expect(outcome).toMatchObject({ ok: false, errorClass: 'grpc-error' });
  });

  it.each([
    [14, false],
    [2, false],
    [5, true],
    [0, true],
  ])("reads a gRPC-Web answer's grpc-status %i from the body's trailer frame: ok %s to the pick", async (code, ok) => {
    const { status, outcome, grpcStatus } = await call(`/web-frame/${code}`, 'application/grpc-web+proto');
    expect(status).toBe(200);
    expect(grpcStatus).toBe(code);
    expect(outcome).toMatchObject(ok ? { ok: true } : { ok: false, errorClass: 'grpc-error' });
  });

  it('counts grpc-status for gRPC calls only, as Envoy does, in the outcome and in what the metrics and access log read', async () => {
    const { outcome, grpcStatus } = await call('/after-message/14', 'application/octet-stream');
    expect(outcome).toMatchObject({ ok: true });
    // The flow statistics count a request whose grpcStatus stands for a 5xx as an error.
    expect(grpcStatus).toBeUndefined();
  });
});
