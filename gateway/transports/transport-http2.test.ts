import { createServer, type Server } from 'node:http';
import { connect as http2Connect, constants, createServer as createHttp2Server, type ClientHttp2Session, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import { grpcWebFrame } from '../proxy/proxy-testing.ts';
import { OWN_TIMER_BELOW_MS, SWEEP_MS, sweptDeadlines } from './attempt-deadline.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';
import { http2Attempt, RESEND_BYTES } from './transport-http2-attempt.ts';
import { expectCallDeadline, expectSilenceTimedOutAfterResume, recordingPick, settledYet } from './transport-testing.ts';

const listen = async (server: Server | Http2Server | ReturnType<typeof createTcpServer>) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** A free loopback port: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('Http2Transport', () => {
  const sessions: ServerHttp2Session[] = [];
  let backend: Http2Server;
  let backendPort: number;
  let transport: Http2Transport | undefined;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;

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
  });
  afterAll(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  async function exchange(path: string) {
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path).then(({ status, body }) => ({ status, body: body.toString('utf8') }));
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

  it('fails with connect-refused, counted against the upstream, when nothing listens', async () => {
    transport = h2c(await closedPort());
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
describe('Http2Transport timeouts: only the upstream\'s own silence counts', () => {
  const sessions: ServerHttp2Session[] = [];
  let backend: Http2Server;
  let backendPort: number;
  let transport: Http2Transport;
  let gateway: Server;
  let timeouts: AttemptTimeouts = { headersTimeoutMs: 0, bodyTimeoutMs: 0 };
  /** Called with the next request's attempt when it starts. */
  let started: ((attempt: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>) => void) | undefined;
  let prepare: (context: GatewayContext) => void = () => undefined;

  beforeAll(async () => {
    backend = createHttp2Server((request, response) => {
      const url = new URL(request.url, 'http://backend');
      if (url.pathname === '/hang') return; // reads nothing, answers nothing
      if (url.pathname === '/big') return void response.end(Buffer.alloc(Number(url.searchParams.get('bytes')), 'x'));
      // `bytes` of body, and then silence: the stream never ends.
      if (url.pathname === '/big-then-stall') return void response.write(Buffer.alloc(Number(url.searchParams.get('bytes')), 'x'));
      if (url.pathname === '/stall') {
        response.writeHead(200);
        return void response.write('chunk\n');
      }
      // Answers the number of body bytes once the body is in: at once with the headers for /early
      // (the body follows much later), after the whole body for /upload.
      if (url.pathname === '/early') response.write('early\n');
      let bytes = 0;
      request.on('data', (chunk: Buffer) => (bytes += chunk.length));
      request.on('end', () => response.end(`${bytes}`));
    });
    backend.on('session', (session) => sessions.push(session));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      prepare(context);
      const attempt = transport.attempt(context, pick, timeouts, request.method === 'POST' ? request : null).then((result) => {
        // As the proxy does: a cut-off answer is cut off for the client too.
        if (!result.ok && result.responseStarted) response.destroy(result.error);
        else if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome()! };
      });
      started?.(attempt);
    });
    await listen(gateway);
  });
  // A session per test: a stream one test leaves in a bad state does not touch the next.
  beforeEach(() => {
    transport = new Http2Transport({ host: '127.0.0.1', address: `127.0.0.1:${backendPort}`, connectTimeoutMs: 1_000, tls: undefined });
  });
  afterEach(async () => {
    await transport.close();
  });
  afterAll(async () => {
    for (const session of sessions) session.destroy();
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  /** A raw client connection to the gateway, and the attempt of the request it is about to send. */
  function open(set: AttemptTimeouts, edit: (context: GatewayContext) => void = () => undefined): { client: Socket; attempt: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }> } {
    timeouts = set;
    prepare = edit;
    const attempt = new Promise<Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>>((resolve) => (started = resolve)).then((inner) => inner);
    const client = connect((gateway.address() as AddressInfo).port, '127.0.0.1');
    client.on('error', () => undefined);
    return { client, attempt };
  }

  /** Everything the client receives until the connection closes. */
  function received(client: Socket): Promise<string> {
    let text = '';
    client.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    return new Promise((resolve) => client.on('close', () => resolve(text)));
  }

  /** The status and body of a raw HTTP/1.1 answer, its chunked encoding undone. */
  function parsed(raw: string): { status: number; body: string } {
    const end = raw.indexOf('\r\n\r\n');
    const head = raw.slice(0, end);
    let body = raw.slice(end + 4);
    if (/\r\ntransfer-encoding: chunked/i.test(head)) {
      let decoded = '';
      for (let at = 0, size = 0; (size = Number.parseInt(body.slice(at, body.indexOf('\r\n', at)), 16)) > 0; ) {
        at = body.indexOf('\r\n', at) + 2;
        decoded += body.slice(at, at + size);
        at += size + 2;
      }
      body = decoded;
    }
    return { status: Number(head.split(' ')[1]), body };
  }

  it.each([
    { phase: 'before the response headers', path: '/hang', responseStarted: false },
    { phase: 'while the body streams', path: '/stall', responseStarted: true },
  ])("ends a call at its own deadline $phase, as deadline-exceeded, which is not the upstream's fault", async ({ path, responseStarted }) => {
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs: 300 });
    const startedAt = performance.now();
    client.write(`GET ${path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n`);
    const answer = received(client);
    const { result, outcome } = await attempt;
    expectCallDeadline({ result, outcome, ms: performance.now() - startedAt }, responseStarted, 300, 5_000);
    if (!responseStarted) expect(parsed(await answer).status).toBe(504);
    client.destroy();
  });

  it('answers a call whose deadline is further off than a Node timer can wait (30 days), instead of ending it after 1 ms', async () => {
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs: 30 * 24 * 3_600_000 });
    client.write('GET /answer HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
    const answer = received(client);
    expect((await attempt).result).toEqual({ ok: true });
    expect(parsed(await answer)).toEqual({ status: 200, body: '0' });
  });

  it("still counts a gateway timeout that runs out before the call's deadline against the upstream", async () => {
    const { client, attempt } = open({ headersTimeoutMs: 300, bodyTimeoutMs: 0, deadlineMs: 5_000 });
    client.write('GET /hang HTTP/1.1\r\nhost: gateway\r\n\r\n');
    const { result, outcome } = await attempt;
    expect(result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    expect(isUpstreamFailure(outcome)).toBe(true);
    client.destroy();
  });

  it('cuts a response whose body stops for the idle-body timeout, as body-timeout, against the upstream', async () => {
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: 300 });
    client.write('GET /stall HTTP/1.1\r\nhost: gateway\r\n\r\n');
    const { result, outcome } = await attempt;
    expect(result).toMatchObject({ ok: false, errorClass: 'body-timeout', responseStarted: true });
    expect(outcome).toMatchObject({ ok: false, errorClass: 'body-timeout' });
    client.destroy();
    expect(sweptDeadlines()).toBe(0);
  });

  it('does not count the time a slow client holds the body back against the upstream', async () => {
    const bytes = 32 * 1024 * 1024;
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS });
    client.pause();
    client.write(`GET /big?bytes=${bytes} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n`);
    // The scenario, not a wait for something: the client reads nothing for over twice the idle-body
    // timeout, so the gateway's writes back up and it holds the upstream's stream back.
    await delay(2 * OWN_TIMER_BELOW_MS + SWEEP_MS);
    const answer = received(client);
    client.resume();
    expect((await answer).length).toBeGreaterThan(bytes);
    const { result, outcome } = await attempt;
    expect(result).toMatchObject({ ok: true });
    expect(outcome).toMatchObject({ ok: true });
    expect(sweptDeadlines()).toBe(0);
  });

  it('times the upstream\'s silence again once the client has taken what was held back', async () => {
    const bytes = 64 * 1024 * 1024;
    const { client, attempt } = open({ headersTimeoutMs: 30_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS });
    client.pause();
    client.write(`GET /big-then-stall?bytes=${bytes} HTTP/1.1\r\nhost: gateway\r\n\r\n`);
    // The scenario: the client reads nothing for longer than the idle-body timeout, then all of it.
    await delay(OWN_TIMER_BELOW_MS + SWEEP_MS);
    const ended = attempt.then((ending) => ({ ...ending, at: performance.now() }));
    const resumedAt = performance.now();
    client.resume();
    // The upstream sent everything and then went silent: once the client has drained the gateway,
    // that silence is the upstream's, and the idle-body timeout ends the attempt, a whole timeout
    // after the client started reading again (not while it held the body back).
    expectSilenceTimedOutAfterResume(await ended, resumedAt, OWN_TIMER_BELOW_MS);
    client.destroy();
    expect(sweptDeadlines()).toBe(0);
  }, 20_000);

  it('does not time the headers out while a slow client is still uploading: that is the client\'s time', async () => {
    const { client, attempt } = open({ headersTimeoutMs: 300, bodyTimeoutMs: 5_000 });
    client.write('POST /upload HTTP/1.1\r\nhost: gateway\r\ncontent-length: 4\r\nconnection: close\r\n\r\nab');
    // The scenario: the client takes twice the headers timeout to send the rest of its body.
    await delay(600);
    client.write('cd');
    const answer = await received(client);
    const { result } = await attempt;
    expect(result.ok ? 'ok' : `${result.errorClass}: ${String(result.error)}`).toBe('ok');
    expect(parsed(answer)).toEqual({ status: 200, body: '4' });
  });

  it('does not count the time a response transform takes against the upstream, which has sent all', async () => {
    // The transform takes twice the idle-body timeout, after the upstream's last byte.
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: 300 }, (context) =>
      context.responseBodyTransforms.push(async (body) => {
        await delay(600);
        return Buffer.from(`[${body.toString('utf8')}]`);
      }),
    );
    const answer = received(client);
    client.write('POST /upload HTTP/1.1\r\nhost: gateway\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab');
    const { result, outcome } = await attempt;
    expect(result.ok ? 'ok' : `${result.errorClass}: ${String(result.error)}`).toBe('ok');
    expect(outcome).toMatchObject({ ok: true });
    expect(parsed(await answer)).toEqual({ status: 200, body: '[2]' });
  });

  it('keeps a stream whose upstream answered early alive while the client is still sending', async () => {
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS });
    const answer = received(client);
    client.write('POST /early HTTP/1.1\r\nhost: gateway\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n');
    // Eight chunks 200 ms apart: the upstream says nothing for 1.6 s, longer than the idle-body
    // timeout, while the request side of the stream keeps moving.
    for (let chunk = 0; chunk < 8; chunk += 1) {
      client.write('2\r\nab\r\n');
      await delay(200);
    }
    client.write('0\r\n\r\n');
    const { result } = await attempt;
    expect(result.ok ? 'ok' : `${result.errorClass}: ${String(result.error)}`).toBe('ok');
    expect(parsed(await answer)).toEqual({ status: 200, body: 'early\n16' });
  });

  it('still times the headers out, against the upstream, when it stops reading the request body', async () => {
    const { client, attempt } = open({ headersTimeoutMs: 300, bodyTimeoutMs: 5_000 });
    let answer = '';
    const head = new Promise((resolve) => client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')).includes('\r\n\r\n') && resolve(undefined)));
    // Far more than the flow-control windows and socket buffers between the client and /hang.
    const bytes = 64 * 1024 * 1024;
    client.write(`POST /hang HTTP/1.1\r\nhost: gateway\r\ncontent-length: ${bytes}\r\n\r\n`);
    client.write(Buffer.alloc(bytes, 'x'));
    const { result, outcome } = await attempt;
    expect(result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    expect(outcome).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    await head;
    client.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 504 /);
    expect(sweptDeadlines()).toBe(0);
  });
});

describe('http2Attempt: an attempt that ends while the session is still connecting', () => {
  let backend: Http2Server;
  let backendPort: number;
  let streams = 0;
  let gateway: Server;
  /** The session the next attempt gets, settled by the test, and the next attempt's call deadline. */
  let session: Promise<ClientHttp2Session>;
  let deadlineMs: number | undefined;
  let last: Promise<{ result: AttemptResult; reports: UpstreamOutcome[]; ms: number }> | undefined;

  beforeAll(async () => {
    backend = createHttp2Server(() => (streams += 1));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, reports } = recordingPick();
      const startedAt = performance.now();
      last = http2Attempt(context, () => session, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs }, null, 'http').then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, reports, ms: performance.now() - startedAt };
      });
    });
    await listen(gateway);
  });
  afterAll(async () => {
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
  });

  it.each([
    { cause: 'the call\'s deadline', ended: 'deadline-exceeded', fate: 'connects', reported: 'deadline-exceeded', counts: false },
    { cause: 'the call\'s deadline', ended: 'deadline-exceeded', fate: 'fails', reported: 'connect-refused', counts: true },
    { cause: 'the client leaving', ended: 'cancelled', fate: 'connects', reported: 'cancelled', counts: false },
    { cause: 'the client leaving', ended: 'cancelled', fate: 'fails', reported: 'connect-refused', counts: true },
  ])('ended by $cause, it gives the receiver $ended at once, and the pick $reported once the connection $fate', async ({ cause, ended, fate, reported, counts }) => {
    let resolve!: (live: ClientHttp2Session) => void;
    let reject!: (error: Error) => void;
    session = new Promise<ClientHttp2Session>((yes, no) => ((resolve = yes), (reject = no)));
    last = undefined;
    const { port } = gateway.address() as AddressInfo;
    if (ended === 'deadline-exceeded') {
      deadlineMs = 200;
      expect((await sendTestRequest(port, '/call')).status).toBe(504);
    } else {
      deadlineMs = undefined;
      const client = connect(port, '127.0.0.1');
      client.on('error', () => undefined);
      client.write('GET /call HTTP/1.1\r\nhost: gateway\r\n\r\n');
      for (const deadline = performance.now() + 5_000; last === undefined && performance.now() < deadline; ) await delay(20);
      client.destroy();
    }
    expect(last, cause).toBeDefined();
    const { result, reports, ms } = await last!;
    expect(result).toMatchObject({ ok: false, errorClass: ended, responseStarted: false });
    if (ended === 'deadline-exceeded') expect(ms).toBeGreaterThanOrEqual(199);
    // The pick waits for the connection's fate, and so does the result's `released`.
    expect(reports).toEqual([]);
    const released = (result as { released?: Promise<void> }).released;
    expect(released).toBeInstanceOf(Promise);
    expect(await settledYet(released!)).toBe(false);
    const live = fate === 'connects' ? http2Connect(`http://127.0.0.1:${backendPort}`) : undefined;
    try {
      if (live) {
        await new Promise((ready) => live.once('connect', ready));
        resolve(live);
      } else reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
      await released;
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({ ok: false, errorClass: reported });
      expect(isUpstreamFailure(reports[0]!)).toBe(counts);
      // No stream was opened on the session that came too late.
      if (live) expect(live.state.nextStreamID ?? 1).toBe(1);
      expect(streams).toBe(0);
    } finally {
      live?.destroy();
    }
  });
});

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
