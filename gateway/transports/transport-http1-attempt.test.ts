import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, type Server as NetServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import { grpcWebFrame } from '../proxy/proxy-testing.ts';
import { OWN_TIMER_BELOW_MS, SWEEP_MS, sweptDeadlines } from './attempt-deadline.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { dispatchAttempt } from './transport-http1-attempt.ts';
import { expectCallDeadline, expectSilenceTimedOutAfterResume, recordingPick, settledYet, watchHead } from './transport-testing.ts';

/** What one proxied exchange produced on every side. */
interface Exchange {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  result: AttemptResult;
  outcome: UpstreamOutcome;
}

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/**
 * A gateway in front of `pool`: each request is one dispatchAttempt, prepared by `prepare`, with the
 * request as its body when it announces a length; a failed attempt is answered as the proxy answers
 * it. `started` gets each attempt's result and the outcome it reported.
 */
function attemptingGateway(pool: Pool, prepare: (context: GatewayContext) => void, started: (attempt: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>) => void): Server {
  return createServer((request, response) => {
    const context = initialContext(request, response);
    prepare(context);
    const { pick, outcome } = recordingPick();
    started(
      dispatchAttempt(context, pool, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, request.headers['content-length'] ? request : null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome()! };
      }),
    );
  });
}

describe('dispatchAttempt', () => {
  const seen: IncomingHttpHeaders[] = [];
  let backend: Server;
  let pool: Pool;
  let prepare: (context: GatewayContext) => void = () => undefined;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;

  beforeAll(async () => {
    backend = createServer((request, response) => {
      seen.push(request.headers);
      if (request.url === '/reset') return void request.socket.destroy();
      request.resume();
      request.on('end', () => response.end('upstream body'));
    });
    pool = new Pool(`http://127.0.0.1:${await listen(backend)}`);
    gateway = attemptingGateway(pool, (context) => prepare(context), (attempt) => (last = attempt));
    await listen(gateway);
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  async function exchange(path: string, edit: (context: GatewayContext) => void = () => undefined, headers: Record<string, string> = {}): Promise<Exchange> {
    prepare = edit;
    seen.length = 0;
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path, { method: 'POST', headers: { 'content-length': '5', ...headers }, body: 'hello' }).then(({ status, headers, body }) => ({ status, headers, body: body.toString('utf8') }));
    return { ...answer, ...(await last) };
  }

  it('does not forward Expect, which the gateway has answered itself', async () => {
    const result = await exchange('/', (context) => (context.upstream.headers.expect = '100-continue'));
    expect(result).toMatchObject({ status: 200, body: 'upstream body', outcome: { ok: true } });
    expect(seen[0]?.expect).toBeUndefined();
  });

  it.each([
    {
      name: 'a header undici refuses to send answers 400 request-rejected; the upstream sees nothing',
      path: '/',
      edit: (context: GatewayContext) => (context.upstream.headers['x-bad'] = 'a\u0001b'),
      status: 400,
      errorClass: 'request-rejected',
      reachedUpstream: false,
    },
    {
      name: 'a failing response transform answers 500 internal',
      path: '/',
      edit: (context: GatewayContext) =>
        context.responseBodyTransforms.push(() => {
          throw new Error('transform failed');
        }),
      status: 500,
      errorClass: 'internal',
      reachedUpstream: true,
    },
  ])('$name and never counts against the upstream', async ({ path, edit, status, errorClass, reachedUpstream }) => {
    const result = await exchange(path, edit);
    expect(result.status).toBe(status);
    expect(JSON.parse(result.body)).toMatchObject({ error: errorClass, status });
    expect(result.result).toMatchObject({ ok: false, errorClass });
    expect(result.outcome.errorClass).toBe(errorClass);
    expect(isUpstreamFailure(result.outcome)).toBe(false);
    expect(seen.length > 0).toBe(reachedUpstream);
  });

  it("fails an answer whose response header hook throws as internal, the gateway's own failure, never counted against the upstream", async () => {
    // The hook throws on the upstream's 200 only, so the gateway's own 500 still goes out.
    const result = await exchange('/', (context) => context.responseHeaderHooks.push((status) => {
      if (status === 200) throw new Error('a header policy failed');
    }));
    expect(result.status).toBe(500);
    expect(result.result).toMatchObject({ ok: false, errorClass: 'internal', responseStarted: false });
    expect(result.outcome.errorClass).toBe('internal');
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("fails an answer whose head node:http refuses to write (a Trailer beside a Content-Length) as internal, the gateway's own failure, never counted against the upstream", async () => {
    // No configuration sets Trailer any more (it is refused at load); a hook stands for whatever
    // else the gateway may put in a head node:http cannot write. On the upstream's 200 only, so the
    // gateway's own 500 still goes out.
    const result = await exchange('/', (context) => context.responseHeaderHooks.push((status, headers) => {
      if (status === 200) headers.trailer = 'x-checksum';
    }));
    expect(result.status).toBe(500);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
    expect(result.result).toMatchObject({ ok: false, errorClass: 'internal', responseStarted: false });
    expect(result.outcome.errorClass).toBe('internal');
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("answers 500 without the refused head's headers when the response had headers set before it (hsts, a drain's close), which node:http merges the head into", async () => {
    const result = await exchange('/', (context) => {
      context.response.setHeader('strict-transport-security', 'max-age=60');
      context.responseHeaderHooks.push((status, headers) => {
        if (status === 200) Object.assign(headers, { trailer: 'x-checksum', 'cache-control': 'public, max-age=600' });
      });
    });
    expect(result.status).toBe(500);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
    expect(result.headers).toMatchObject({ 'strict-transport-security': 'max-age=60', 'content-type': 'application/json' });
    expect(result.headers['cache-control']).toBeUndefined();
    expect(result.headers.trailer).toBeUndefined();
    expect(isUpstreamFailure(result.outcome)).toBe(false);
  });

  it("tells a response tap the answer is given up when its head is refused, which nothing else would (a cache's lock and updating mark stayed held)", async () => {
    const told: string[] = [];
    const result = await exchange('/', (context) => {
      context.responseTapper = (status) => (status === 200 ? { chunk: () => told.push('chunk'), end: () => told.push('end'), abort: () => told.push('abort') } : undefined);
      context.responseHeaderHooks.push((status, headers) => {
        if (status === 200) headers.trailer = 'x-checksum';
      });
    });
    expect(result.status).toBe(500);
    expect(told).toEqual(['abort']);
  });

  it("answers 500 without hooks when the refused head's header comes from a hook on every answer, the response having headers set before it", async () => {
    const result = await exchange('/', (context) => {
      context.response.setHeader('strict-transport-security', 'max-age=60');
      context.responseHeaderHooks.push((_status, headers) => void (headers.trailer = 'x-checksum'));
    });
    expect(result.status).toBe(500);
    expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
    expect(result.headers.trailer).toBeUndefined();
  });

  it('still counts an upstream that closes the connection before answering', async () => {
    const result = await exchange('/reset');
    expect(result.status).toBe(502);
    expect(result.outcome.errorClass).toBe('reset-before-headers');
    expect(isUpstreamFailure(result.outcome)).toBe(true);
    // Sent, then cut: the instance's own attempt.
    expect(result.result).not.toHaveProperty('unsent');
  });
});

describe('dispatchAttempt: a 204 or 304 that announces a Content-Length is whole with its head', () => {
  // Raw answers, for what node:http would not send: a 204 with a length, one followed by the bytes it announced.
  const ANSWERS: Record<string, string> = {
    '/304': 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n',
    '/204': 'HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n',
    '/204-with-bytes': 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello',
    '/200': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  };
  let backend: NetServer;
  let pool: Pool;
  let gateway: Server;
  let transform = false;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome }>;

  beforeAll(async () => {
    backend = createNetServer((socket) => {
      socket.on('error', () => undefined);
      let head = '';
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const path = head.split(' ')[1] ?? '';
        head = head.slice(end + 4);
        socket.write(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    pool = new Pool(`http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
    gateway = attemptingGateway(pool, (context) => void (transform && context.responseBodyTransforms.push((body) => body)), (attempt) => (last = attempt));
    await listen(gateway);
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  it.each([
    ['/304', 304, false, { etag: '"v1"', 'content-length': '1234' }],
    ['/304', 304, true, { etag: '"v1"' }],
    ['/204', 204, false, {}],
    ['/204', 204, true, {}],
    ['/204-with-bytes', 204, false, {}],
  ])('relays %s as %i (response transform: %s) and counts it as answered, never as a reset', async (path, status, withTransform, headers) => {
    transform = withTransform;
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path);
    const { result, outcome } = await last;
    expect(answer.status).toBe(status);
    expect(answer.headers).toMatchObject(headers);
    // RFC 9110 §8.6: no Content-Length on a 204 (an HTTP/2 client resets the stream for one, undici fails it).
    if (status === 204) expect(answer.headers['content-length']).toBeUndefined();
    expect(answer.body.length).toBe(0);
    expect(result).toEqual({ ok: true });
    expect(outcome).toMatchObject({ ok: true });
    expect(isUpstreamFailure(outcome)).toBe(false);
    // The pool is not left with a connection holding a stray body: the next answer is read right.
    transform = false;
    const next = await sendTestRequest(port, '/200');
    expect({ status: next.status, body: next.body.toString() }).toEqual({ status: 200, body: 'ok' });
    expect((await last).outcome).toMatchObject({ ok: true });
  });
});

/** A gRPC-Web answer's body: one message, then the trailer frame with `code`. */
const grpcWebBody = (code: string): Buffer => Buffer.concat([grpcWebFrame(0, 'hello'), grpcWebFrame(0x80, `grpc-status:${code}\r\ngrpc-message:failed\r\n`)]);

describe("dispatchAttempt: a gRPC-Web call's outcome is its grpc-status, in the headers or in the body's trailer frame", () => {
  let backend: Server;
  let pool: Pool;
  let gateway: Server;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome; grpcStatus: number | undefined }>;

  beforeAll(async () => {
    // /trailers-only/<code>: the status in the headers; /frame/<code>: a message, then the trailer
    // frame, written a few bytes at a time; /text/<code>: the same as grpc-web-text, each write base64 on its own.
    backend = createServer((request, response) => {
      const [, shape, code] = String(request.url).split('/');
      request.resume();
      if (shape === 'trailers-only') return void response.writeHead(200, { 'content-type': 'application/grpc-web+proto', 'grpc-status': code }).end();
      const body = grpcWebBody(code!);
      response.writeHead(200, { 'content-type': shape === 'text' ? 'application/grpc-web-text' : 'application/grpc-web+proto' });
      for (let start = 0; start < body.length; start += 3) {
        const piece = body.subarray(start, start + 3);
        response.write(shape === 'text' ? piece.toString('base64') : piece);
      }
      response.end();
    });
    pool = new Pool(`http://127.0.0.1:${await listen(backend)}`);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      last = dispatchAttempt(context, pool, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null).then((result) => ({ result, outcome: outcome()!, grpcStatus: context.outcome.grpcStatus }));
    });
    await listen(gateway);
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  async function call(path: string, contentType: string) {
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path, { method: 'POST', headers: { 'content-type': contentType } });
    return { status: answer.status, body: answer.body, ...(await last) };
  }

  it.each([
    ['trailers-only', 14, false],
    ['frame', 14, false],
    ['text', 14, false],
    ['frame', 13, false],
    ['trailers-only', 5, true],
    ['frame', 8, true],
    ['text', 0, true],
    ['frame', 0, true],
  ])('reports a %s answer with grpc-status %i as ok: %s to the pick, the body relayed as it came', async (shape, code, ok) => {
    const { status, body, result, outcome, grpcStatus } = await call(`/${shape}/${code}`, 'application/grpc-web+proto');
    expect(status).toBe(200);
    if (shape === 'frame') expect(body.equals(grpcWebBody(String(code)))).toBe(true);
    expect(grpcStatus).toBe(code);
    expect(result).toEqual({ ok: true });
    expect(outcome).toMatchObject(ok ? { ok: true } : { ok: false, errorClass: 'grpc-error' });
  });

  it('reads nothing of an answer to a request that is not a gRPC call', async () => {
    const { outcome, grpcStatus } = await call('/frame/14', 'application/octet-stream');
    expect(grpcStatus).toBeUndefined();
    expect(outcome).toMatchObject({ ok: true });
  });
});

describe('dispatchAttempt timeouts', () => {
  let backend: Server;
  let pool: Pool;
  let gateway: Server;
  let timeouts: AttemptTimeouts = { headersTimeoutMs: 0, bodyTimeoutMs: 0 };
  let prepare: (context: GatewayContext) => void = () => undefined;
  let last: Promise<{ result: AttemptResult; outcome: UpstreamOutcome; reports: UpstreamOutcome[]; ms: number }>;
  /** Called with the next request's attempt when it starts. */
  let started: ((attempt: typeof last) => void) | undefined;
  let backendRequests = 0;

  beforeAll(async () => {
    backend = createServer((request, response) => {
      backendRequests += 1;
      const url = new URL(request.url ?? '/', 'http://backend');
      const every = Number(url.searchParams.get('every') ?? 0);
      const chunks = Number(url.searchParams.get('chunks') ?? 0);
      if (url.pathname === '/hang') return;
      if (url.pathname === '/upload') {
        // Answers once the whole body is in.
        let bytes = 0;
        request.on('data', (chunk: Buffer) => (bytes += chunk.length));
        return void request.on('end', () => response.end(`${bytes}`));
      }
      if (url.pathname === '/hints') {
        // 103 Early Hints, then the response 300 ms later.
        response.writeEarlyHints({ link: '</style.css>; rel=preload' });
        return void setTimeout(() => response.end('after hints'), 300);
      }
      if (url.pathname === '/big') return void response.end(Buffer.alloc(Number(url.searchParams.get('bytes')), 'x'));
      // `bytes` of body, and then silence: the response never ends.
      if (url.pathname === '/big-then-stall') return void response.write(Buffer.alloc(Number(url.searchParams.get('bytes')), 'x'));
      // `chunks` chunks, one every `every` ms, then the end; `/stall` sends one and stops.
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.write('chunk\n');
      if (url.pathname === '/stall') return;
      let sent = 1;
      const timer = setInterval(() => {
        response.write('chunk\n');
        sent += 1;
        if (sent < chunks) return;
        clearInterval(timer);
        response.end();
      }, every);
    });
    pool = new Pool(`http://127.0.0.1:${await listen(backend)}`, { headersTimeout: 0, bodyTimeout: 0 });
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome, reports } = recordingPick();
      prepare(context);
      const startedAt = performance.now();
      last = dispatchAttempt(context, pool, pick, timeouts, request.method === 'POST' ? request : null).then((result) => {
        // As the proxy does: a cut-off answer is cut off for the client too.
        if (!result.ok && result.responseStarted) response.destroy(result.error);
        else if (!result.ok) sendGatewayError(context, result.errorClass);
        return { result, outcome: outcome()!, reports, ms: performance.now() - startedAt };
      });
      started?.(last);
    });
    await listen(gateway);
  });
  afterAll(async () => {
    await pool.destroy();
    backend.closeAllConnections();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  /** GETs `path` through the gateway; resolves with what the client got (null: the connection was cut) and the attempt. */
  async function get(path: string, set: AttemptTimeouts, edit: (context: GatewayContext) => void = () => undefined) {
    timeouts = set;
    prepare = edit;
    const { port } = gateway.address() as AddressInfo;
    const answer = await sendTestRequest(port, path).then(({ status, body }) => ({ status, length: body.length }), () => null);
    return { answer, ...(await last) };
  }

  it.each([
    { name: 'its own timer below a second', headersTimeoutMs: 300 },
    { name: 'the sweep from a second on', headersTimeoutMs: OWN_TIMER_BELOW_MS },
  ])('answers 504 headers-timeout once the upstream is silent for the headers timeout ($name)', async ({ headersTimeoutMs }) => {
    const { answer, result, ms } = await get('/hang', { headersTimeoutMs, bodyTimeoutMs: 0 });
    expect(answer?.status).toBe(504);
    expect(result).toMatchObject({ ok: false, errorClass: 'headers-timeout', responseStarted: false });
    expect(ms).toBeGreaterThanOrEqual(headersTimeoutMs - 1);
    expect(sweptDeadlines()).toBe(0);
  });

  it.each([
    { phase: 'before the response headers', path: '/hang', responseStarted: false },
    { phase: 'while the body streams', path: '/chunks?every=50&chunks=20', responseStarted: true },
  ])("ends a call at its own deadline $phase, as deadline-exceeded, which is not the upstream's fault (gRPC-Web)", async ({ path, responseStarted }) => {
    const ending = await get(path, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs: 300 });
    expectCallDeadline(ending, responseStarted, 300, 5_000);
    if (!responseStarted) expect(ending.answer?.status).toBe(504);
  });

  it("still counts a gateway timeout that runs out before the call's deadline against the upstream", async () => {
    const { result, outcome } = await get('/hang', { headersTimeoutMs: 300, bodyTimeoutMs: 0, deadlineMs: 5_000 });
    expect(result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    // Sent: the instance's own attempt.
    expect(result).not.toHaveProperty('unsent');
    expect(isUpstreamFailure(outcome)).toBe(true);
  });

  /**
   * Puts in place of the pool one whose connection opens (or fails) when the test calls `settle`,
   * for `run`; restores the pool after it.
   */
  async function withHeldConnection(fate: 'opens' | 'fails', run: (settle: () => void) => Promise<void>): Promise<void> {
    const { port } = backend.address() as AddressInfo;
    const fast = pool;
    let settle: (() => void) | undefined;
    let settled = false;
    pool = new Pool(`http://127.0.0.1:${port}`, {
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: (_options, callback) => {
        settle = () => {
          if (fate === 'fails') return void callback(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), null);
          const socket = connect(port, '127.0.0.1');
          socket.once('connect', () => callback(null, socket));
          socket.once('error', (error) => callback(error, null));
        };
      },
    });
    try {
      await run(() => {
        settled = true;
        settle!();
      });
    } finally {
      // A connection still held would keep `destroy` waiting.
      if (!settled) settle?.();
      await pool.destroy();
      pool = fast;
    }
  }

  /** Waits for the pick's report after the held connection settled; checks that no request reached the backend and, with `kept`, that the opened connection is kept. */
  async function expectReportedUnsent(reports: UpstreamOutcome[], errorClass: string, counts: boolean, requestsBefore: number, kept = errorClass !== 'connect-refused'): Promise<void> {
    for (const deadline = performance.now() + 5_000; reports.length === 0 && performance.now() < deadline; ) await delay(20);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ ok: false, errorClass });
    expect(isUpstreamFailure(reports[0]!)).toBe(counts);
    expect(backendRequests).toBe(requestsBefore);
    if (kept) expect(pool.stats.connected).toBe(1);
  }

  it.each([
    // Dropped unsent: the pick is released unused (cancelled, 0 ms), as for a call that waited in the pool's queue.
    { fate: 'opens', reported: 'cancelled', counts: false },
    { fate: 'fails', reported: 'connect-refused', counts: true },
  ] as const)('answers a call whose deadline passes while its connection is still opening at once, and tells the pick how the connection went when it $fate', async ({ fate, reported, counts }) => {
    await withHeldConnection(fate, async (settle) => {
      const requestsBefore = backendRequests;
      const { answer, result, reports, ms } = await get('/hang', { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs: 200 });
      // Unsent whatever the connection's fate: the instance saw nothing of the request, so the attempt is none of its requests.
      expect(result).toMatchObject({ ok: false, errorClass: 'deadline-exceeded', responseStarted: false, unsent: true });
      expect(answer?.status).toBe(504);
      expect(ms).toBeGreaterThanOrEqual(199);
      // The pick waits for the connection's fate, and so does the result's `released`.
      expect(reports).toEqual([]);
      const released = (result as { released?: Promise<void> }).released;
      expect(released).toBeInstanceOf(Promise);
      expect(await settledYet(released!)).toBe(false);
      settle();
      await released;
      expect(reports).toHaveLength(1);
      await expectReportedUnsent(reports, reported, counts, requestsBefore);
    });
  });

  it.each([
    // undici keeps the error of a body that fails before the request starts and aborts with it,
    // closing the new connection: still the client's doing, not a reset by the upstream.
    { method: 'GET', head: 'GET /hang HTTP/1.1\r\nhost: gateway\r\n\r\n', kept: true },
    { method: 'POST', head: 'POST /hang HTTP/1.1\r\nhost: gateway\r\ncontent-length: 1000\r\n\r\npart of it', kept: false },
  ])('does not count a $method whose client left while it waited for a connection, and sends nothing of it', async ({ head, kept }) => {
    await withHeldConnection('opens', async (settle) => {
      timeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 };
      let context: GatewayContext | undefined;
      prepare = (prepared) => (context = prepared);
      const requestsBefore = backendRequests;
      // Wrapped: a promise resolved with the attempt's promise would wait for the attempt's end.
      const attempt = new Promise<{ ending: typeof last }>((resolve) => (started = (ending) => resolve({ ending })));
      const client = connect((gateway.address() as AddressInfo).port, '127.0.0.1');
      client.on('error', () => undefined);
      client.write(head);
      const { ending } = await attempt;
      started = undefined;
      client.destroy();
      // The gateway has seen the client go before the connection opens.
      for (const deadline = performance.now() + 5_000; !context!.response.destroyed && performance.now() < deadline; ) await delay(20);
      expect(context!.response.destroyed).toBe(true);
      settle();
      const { result, reports } = await ending;
      expect(result).toMatchObject({ ok: false, errorClass: 'cancelled', responseStarted: false, unsent: true });
      await expectReportedUnsent(reports, 'cancelled', false, requestsBefore, kept);
    });
  });

  it('cuts a response whose body stops for the body timeout, as body-timeout', async () => {
    const { answer, result, ms } = await get('/stall', { headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS });
    expect(answer).toBeNull();
    expect(result).toMatchObject({ ok: false, errorClass: 'body-timeout', responseStarted: true });
    expect(ms).toBeGreaterThanOrEqual(OWN_TIMER_BELOW_MS - 1);
    expect(sweptDeadlines()).toBe(0);
  });

  it('lets a body that keeps coming run past the body timeout: each chunk starts it over', async () => {
    // Seven chunks 200 ms apart: 1.2 s in all, longer than the 1 s idle timeout, never idle that long.
    const { answer, result, ms } = await get('/chunks?every=200&chunks=7', { headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS });
    expect(result).toMatchObject({ ok: true });
    expect(answer).toEqual({ status: 200, length: 7 * 'chunk\n'.length });
    expect(ms).toBeGreaterThan(OWN_TIMER_BELOW_MS);
    expect(sweptDeadlines()).toBe(0);
  });

  it('does not count the time a slow client holds the body back against the upstream, in its timeouts nor in its latency sample', async () => {
    const bytes = 32 * 1024 * 1024;
    timeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS };
    const head = watchHead();
    prepare = head.edit;
    const { port } = gateway.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    client.pause();
    client.write(`GET /big?bytes=${bytes} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n`);
    const headSentMs = await head.untilHeadSent();
    // The scenario, not a wait for something: the client reads nothing for over twice the body
    // timeout, so the gateway's writes back up and it holds the upstream's body back.
    await delay(2 * OWN_TIMER_BELOW_MS + SWEEP_MS);
    let received = 0;
    client.on('data', (chunk: Buffer) => (received += chunk.length));
    client.resume();
    await new Promise((resolve) => client.on('close', resolve));
    const { result, outcome, ms } = await last;
    expect(result).toMatchObject({ ok: true });
    expect(received).toBeGreaterThan(bytes);
    // The balancer's latency sample ends at the response head, not after the client's hold of over
    // 2 s (the attempt, ending with the body, took that long): orders of magnitude apart.
    expect(ms).toBeGreaterThanOrEqual(2 * OWN_TIMER_BELOW_MS);
    // No later than the head reached the client's response, before the hold; the old sample was after it.
    expect(outcome.latencyMs).toBeLessThanOrEqual(headSentMs);
    expect(sweptDeadlines()).toBe(0);
  });

  it('times the upstream\'s silence again once the client has taken what was held back', async () => {
    const bytes = 64 * 1024 * 1024;
    timeouts = { headersTimeoutMs: 30_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS };
    prepare = () => undefined;
    const ended = new Promise<Awaited<typeof last> & { at: number }>((resolve) => {
      started = (attempt) => void attempt.then((ending) => resolve({ ...ending, at: performance.now() }));
    });
    const { port } = gateway.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    client.pause();
    client.write(`GET /big-then-stall?bytes=${bytes} HTTP/1.1\r\nhost: gateway\r\n\r\n`);
    // The scenario: the client reads nothing for longer than the idle-body timeout, then all of it.
    await delay(OWN_TIMER_BELOW_MS + SWEEP_MS);
    const resumedAt = performance.now();
    client.resume();
    // Once the client has drained the gateway, the upstream's silence is its own: the idle-body
    // timeout ends the attempt a whole timeout after the client started reading again.
    expectSilenceTimedOutAfterResume(await ended, resumedAt, OWN_TIMER_BELOW_MS);
    started = undefined;
    client.destroy();
    expect(sweptDeadlines()).toBe(0);
  }, 20_000);

  it('times the headers from the end of the request body: a slow upload is the client\'s time', async () => {
    timeouts = { headersTimeoutMs: 300, bodyTimeoutMs: 5_000 };
    prepare = () => undefined;
    const { port } = gateway.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    client.write('POST /upload HTTP/1.1\r\nhost: gateway\r\ncontent-length: 4\r\nconnection: close\r\n\r\nab');
    // The scenario: the client takes longer than the headers timeout to send the rest of its body.
    await delay(600);
    client.write('cd');
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    await new Promise((resolve) => client.on('close', resolve));
    const { result } = await last;
    expect(result.ok ? 'ok' : `${result.errorClass}: ${String(result.error)}`).toBe('ok');
    expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n4$/);
  });

  it('passes over a 103 Early Hints: the headers timeout runs until the response itself', async () => {
    const passed = await get('/hints', { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 });
    expect(passed.result).toMatchObject({ ok: true });
    expect(passed.answer).toEqual({ status: 200, length: 'after hints'.length });
    const timedOut = await get('/hints', { headersTimeoutMs: 150, bodyTimeoutMs: 5_000 });
    expect(timedOut.answer?.status).toBe(504);
    expect(timedOut.result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
  });

  it('starts the idle-body timeout over at each chunk of a body held for a response transform too', async () => {
    const { answer, result } = await get('/chunks?every=200&chunks=7', { headersTimeoutMs: 5_000, bodyTimeoutMs: OWN_TIMER_BELOW_MS }, (context) =>
      context.responseBodyTransforms.push((body) => body),
    );
    expect(result).toMatchObject({ ok: true });
    expect(answer).toEqual({ status: 200, length: 7 * 'chunk\n'.length });
    expect(sweptDeadlines()).toBe(0);
  });

  it('still times the headers out when the upstream stops reading the request body', async () => {
    timeouts = { headersTimeoutMs: 300, bodyTimeoutMs: 5_000 };
    prepare = () => undefined;
    const attempt = new Promise<typeof last>((resolve) => (started = resolve));
    const { port } = gateway.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    // Far more than the socket buffers between the client and /hang, which never reads it.
    const bytes = 64 * 1024 * 1024;
    client.write(`POST /hang HTTP/1.1\r\nhost: gateway\r\ncontent-length: ${bytes}\r\n\r\n`);
    client.write(Buffer.alloc(bytes, 'x'));
    let answer = '';
    const head = new Promise((resolve) => client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')).includes('\r\n\r\n') && resolve(undefined)));
    const { result } = await (await attempt);
    started = undefined;
    expect(result).toMatchObject({ ok: false, errorClass: 'headers-timeout' });
    await head;
    expect(answer).toMatch(/^HTTP\/1\.1 504 /);
    client.destroy();
  });
});

describe("dispatchAttempt: a call whose deadline passes while it waits in the pool's queue (every connection busy)", () => {
  let backend: Server;
  /** The backend's answers to `/hold` requests, sent when the test calls them. */
  const held: (() => void)[] = [];
  let backendRequests = 0;
  let pool: Pool;
  let gateway: Server;
  let timeouts: AttemptTimeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 };
  const ended: { result: AttemptResult; reports: UpstreamOutcome[] }[] = [];

  beforeAll(async () => {
    backend = createServer((request, response) => {
      backendRequests += 1;
      if (request.url === '/hold') held.push(() => response.end('held'));
      else response.end('quick');
    });
    // One connection: a request held on it leaves the next one in undici's queue.
    pool = new Pool(`http://127.0.0.1:${await listen(backend)}`, { connections: 1, headersTimeout: 0, bodyTimeout: 0 });
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, reports } = recordingPick();
      void dispatchAttempt(context, pool, pick, timeouts, null).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        ended.push({ result, reports });
      });
    });
    await listen(gateway);
  });
  afterAll(async () => {
    for (const answer of held.splice(0)) answer();
    await pool.close();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => gateway.close(resolve));
  });

  it("answers it 504 at its deadline and releases its pick unused once undici drops it unsent: the queue time is no latency sample of the instance's", async () => {
    const { port } = gateway.address() as AddressInfo;
    timeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 };
    const holding = sendTestRequest(port, '/hold');
    for (const deadline = performance.now() + 3_000; held.length === 0 && performance.now() < deadline; ) await delay(10);
    expect(held).toHaveLength(1);
    const requestsBefore = backendRequests;
    timeouts = { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, deadlineMs: 200 };
    expect((await sendTestRequest(port, '/quick')).status).toBe(504);
    const queued = ended.at(-1)!;
    // Unsent: the attempt is none of the instance's requests (flow statistics, the admin API), as the instance saw nothing.
    expect(queued.result).toMatchObject({ ok: false, errorClass: 'deadline-exceeded', responseStarted: false, unsent: true });
    // The connection frees: undici takes the queued request and drops it unsent.
    held.shift()!();
    expect((await holding).status).toBe(200);
    await (queued.result as { released?: Promise<void> }).released;
    // Reported as deadline-exceeded with the ~200 ms it waited, p2c-ewma would take the wait as the instance's latency.
    expect(queued.reports).toEqual([{ ok: false, latencyMs: 0, errorClass: 'cancelled' }]);
    expect(backendRequests).toBe(requestsBefore);
    // The connection is kept for the next request.
    expect(pool.stats.connected).toBe(1);
  });
});
