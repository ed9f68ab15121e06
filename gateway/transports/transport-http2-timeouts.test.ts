import { createServer, type Server } from 'node:http';
import { connect as http2Connect, createServer as createHttp2Server, type ClientHttp2Session, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import { OWN_TIMER_BELOW_MS, SWEEP_MS, sweptDeadlines } from './attempt-deadline.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { NEVER_SENT } from './transport-outcome.ts';
import { expectCallDeadline, expectSilenceTimedOutAfterResume, recordingPick, settledYet, watchHead } from './transport-testing.ts';

const listen = async (server: Server | Http2Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};


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

  it('does not count the time a slow client holds the body back against the upstream, in its timeouts nor in its latency sample', async () => {
    const bytes = 32 * 1024 * 1024;
    const head = watchHead();
    const { client, attempt } = open({ headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS }, head.edit);
    client.pause();
    client.write(`GET /big?bytes=${bytes} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n`);
    const headSentMs = await head.untilHeadSent();
    // The scenario, not a wait for something: the client reads nothing for over twice the idle-body
    // timeout, so the gateway's writes back up and it holds the upstream's stream back.
    await delay(2 * OWN_TIMER_BELOW_MS + SWEEP_MS);
    const answer = received(client);
    client.resume();
    expect((await answer).length).toBeGreaterThan(bytes);
    const { result, outcome } = await attempt;
    expect(result).toMatchObject({ ok: true });
    expect(outcome).toMatchObject({ ok: true });
    // The balancer's latency sample ends at the response's HEADERS, not after the client's hold of over 2 s:
    // no later than the head reached the client's response, before the hold; the old sample was after it.
    expect(outcome.latencyMs).toBeLessThanOrEqual(headSentMs);
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
    // Never sent: the pick is released unused (cancelled, 0 ms), as towards HTTP/1.1; the time to connect is no latency sample.
    { cause: 'the call\'s deadline', ended: 'deadline-exceeded', fate: 'connects', reported: 'cancelled', counts: false },
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
    // Unsent: the instance saw nothing of the request, so the attempt is none of its requests.
    expect(result).toMatchObject({ ok: false, errorClass: ended, responseStarted: false, unsent: true });
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
      if (live) expect(reports[0]).toEqual(NEVER_SENT);
      expect(isUpstreamFailure(reports[0]!)).toBe(counts);
      // No stream was opened on the session that came too late.
      if (live) expect(live.state.nextStreamID ?? 1).toBe(1);
      expect(streams).toBe(0);
    } finally {
      live?.destroy();
    }
  });
});
