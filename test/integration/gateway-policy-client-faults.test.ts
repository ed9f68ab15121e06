import { createServer, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as connectHttp2, constants } from 'node:http2';
import { connect as connectTcp, createConnection, createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { hash as bcryptHash } from 'bcrypt';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { accessLineOf, startGateway, startLocalRedis, waitFor, type GatewayProcess, type LocalRedis } from '../harness/index.ts';
import { tieSockets } from '../harness/tie-sockets.ts';

/** A real HTTP backend in the test process: what reached it, and how it answers. */
interface TestBackend {
  readonly port: number;
  /** Requests that reached the backend, with the body each sent in full (undefined while it comes, or when it never ended). */
  readonly received: { url: string; method: string; body: string | undefined }[];
  /** Answers whose connection closed (answered, or cut off by the gateway). */
  readonly closed: () => number;
  close(): Promise<void>;
}

async function startTestBackend(handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<TestBackend> {
  const received: TestBackend['received'] = [];
  let closed = 0;
  const server: Server = createServer((request, response) => {
    const seen: TestBackend['received'][number] = { url: request.url ?? '', method: request.method ?? '', body: undefined };
    received.push(seen);
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => (seen.body = body));
    response.on('close', () => (closed += 1));
    handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    closed: () => closed,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One answer as a client saw it. */
interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A request on a fresh connection from `localAddress` (127.0.0.x); resolves with the whole answer. */
function exchange(port: number, path: string, options: { localAddress?: string; headers?: Record<string, string>; method?: string } = {}): { outgoing: ClientRequest; answer: Promise<Answer> } {
  let outgoing!: ClientRequest;
  const answer = new Promise<Answer>((resolve, reject) => {
    outgoing = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    });
    outgoing.setTimeout(15_000, () => outgoing.destroy(new Error(`${path} timed out`)));
    outgoing.on('error', reject);
  });
  return { outgoing, answer };
}

const get = (port: number, path: string, options: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<Answer> => {
  const { outgoing, answer } = exchange(port, path, options);
  outgoing.end();
  return answer;
};

interface BreakerView {
  readonly service: string;
  readonly state: string;
  readonly requests: number;
  readonly failures: number;
}

/** bcrypt of a password nobody sends, cost 13: each check of it takes a few tenths of a second. */
const COST_13_HASH = '$2b$13$dCYMFcICE0vGZuf52.qcRukZauCF7GA0E0TpT5k.n1yq45DXDHoSS';
/** bcrypt of 'right', cost 4. */
const RIGHT_COST_4_HASH = '$2b$04$JMw6NcNeoZRony7tE8bMrOk8ZbhODc3svwU.uvCa2l9WiBtU9a6mC';

describe('what clients cause never counts against a circuit breaker', () => {
  /** Holds every request unanswered until the test's end (or its client leaves). */
  let holding: TestBackend;
  /** Answers at once with headers, then a line every 50 ms for 30 s. */
  let streaming: TestBackend;
  /** Answers each request with the status in its `status` query parameter once its body has come. */
  let answering: TestBackend;
  let gateway: GatewayProcess;
  let adminPort: number;
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    [holding, streaming, answering] = await Promise.all([
      startTestBackend((_request, response) => held.push(response)),
      startTestBackend((_request, response) => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        const ticker = setInterval(() => response.write('line\n'), 50);
        const stop = setTimeout(() => response.end(), 30_000);
        response.on('close', () => (clearInterval(ticker), clearTimeout(stop)));
      }),
      startTestBackend((request, response) => {
        request.on('end', () => response.writeHead(Number(new URL(request.url ?? '/', 'http://x').searchParams.get('status') ?? 200), { 'content-type': 'text/plain' }).end('answered'));
      }),
    ]);
    // A breaker per backend behaviour: 4 calls with half of them failed would open each.
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  held: { instances: [127.0.0.1:${holding.port}], outlierDetection: false, retries: false, circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s } }
  streamed: { instances: [127.0.0.1:${streaming.port}], outlierDetection: false, retries: false, circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s } }
  answered: { instances: [127.0.0.1:${answering.port}], outlierDetection: false, retries: false, circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s } }
routes:
  - { path: /held, service: held }
  - { path: /streamed, service: streamed }
  - { path: /answered, service: answered }
`);
    adminPort = gateway.adminPort;
  });
  afterAll(async () => {
    for (const response of held) response.end();
    await gateway?.process.stop();
    await Promise.all([holding, streaming, answering].map((backend) => backend?.close()));
  });

  const breaker = async (service: string): Promise<BreakerView> => {
    const answer = await get(adminPort, '/api/breakers');
    const views = (JSON.parse(answer.body) as { workers: { breakers: BreakerView[] }[] }).workers.flatMap((worker) => worker.breakers);
    const view = views.find((candidate) => candidate.service === service);
    if (!view) throw new Error(`no breaker for ${service} in ${answer.body}`);
    return view;
  };

  /** Sends `count` requests one after another, each of which `leave` abandons once the backend has it (and `ready` says so). */
  const leaveEach = async (count: number, start: () => { outgoing: ClientRequest; answer: Promise<Answer> }, ready: (index: number) => boolean | Promise<boolean>) => {
    for (let index = 0; index < count; index += 1) {
      const { outgoing, answer } = start();
      answer.catch(() => undefined);
      await waitFor(() => ready(index), { message: `request ${index + 1} to reach the backend` });
      outgoing.destroy();
    }
  };

  it('stays closed, with no failure, after clients leave while the upstream thinks (before headers)', async () => {
    await leaveEach(
      6,
      () => {
        const started = exchange(gateway.port, '/held');
        started.outgoing.end();
        return started;
      },
      (index) => holding.received.length > index,
    );
    // The gateway cancels each abandoned attempt (the backend sees its connection close) and books it then.
    await waitFor(() => holding.closed() === 6, { message: 'the abandoned attempts to end' });
    expect(await breaker('held')).toMatchObject({ state: 'closed', failures: 0 });
  });

  it('stays closed, with no failure, after clients leave in the middle of the answer or of their upload', async () => {
    await leaveEach(
      6,
      () => {
        const started = exchange(gateway.port, '/streamed');
        started.outgoing.end();
        return started;
      },
      (index) => streaming.received.length > index,
    );
    await leaveEach(
      6,
      () => {
        const started = exchange(gateway.port, '/answered', { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } });
        started.outgoing.write('the first part of a body that never ends');
        return started;
      },
      (index) => answering.received.length > index,
    );
    await waitFor(() => streaming.closed() === 6 && answering.closed() === 6, { message: 'the abandoned attempts to end' });
    const [streamed, answered] = [await breaker('streamed'), await breaker('answered')];
    expect(streamed).toMatchObject({ state: 'closed', failures: 0 });
    expect(answered).toMatchObject({ state: 'closed', failures: 0 });
  });

  it("stays closed on 4xx answers (429 included), the client's own errors, then opens on 5xx and answers 503 circuit-open with Retry-After", async () => {
    for (const status of [400, 401, 404, 429, 404, 429]) expect((await get(gateway.port, `/answered?status=${status}`)).status).toBe(status);
    expect(await breaker('answered')).toMatchObject({ state: 'closed', failures: 0 });
    // The same breaker does count the upstream's failures: 5xx until it opens.
    await waitFor(async () => (await get(gateway.port, '/answered?status=500')).status === 503, { message: 'the breaker to open on 500s' });
    const refused = await get(gateway.port, '/answered?status=200');
    expect([refused.status, JSON.parse(refused.body).error]).toEqual([503, 'circuit-open']);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect((await breaker('answered')).state).toBe('open');
  });
});

describe('rate limits keyed by the client a trusted proxy names, and retries of streamed bodies', () => {
  let api: TestBackend;
  /** Reads the start of a request's body, then resets the connection without answering. */
  let resetting: TestBackend;
  /** A forward-auth service that lets everything through: its answers show a request got as far as the middleware after it. */
  let auth: TestBackend;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    api = await startTestBackend((request, response) => request.on('end', () => response.writeHead(200, { 'content-type': 'text/plain' }).end('ok')));
    resetting = await startTestBackend((request) => request.once('data', () => request.socket.destroy()));
    auth = await startTestBackend((_request, response) => response.writeHead(204).end());
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
forwarding: { trustedProxies: [127.0.0.1] }
services:
  api: { instances: [127.0.0.1:${api.port}] }
  pair:
    instances: [127.0.0.1:${resetting.port}, 127.0.0.1:${api.port}]
    balancer: round-robin
    outlierDetection: false
    retries: { attempts: 3, retryOn: [connect-failure, reset] }
middlewares:
  per-client: { rateLimit: { average: 1, period: 10s, burst: 2, key: client-ip } }
  seen: { forwardAuth: { address: "http://127.0.0.1:${auth.port}/check" } }
  held: { rateLimit: { average: 1, period: 2s, burst: 1, key: route, delay: { maxWait: 5s } } }
routes:
  - { path: /limited, service: api, middlewares: [per-client] }
  - { path: /held, service: api, middlewares: [seen, held] }
  - { path: /pair, service: pair }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([api, resetting, auth].map((backend) => backend?.close()));
  });

  it('gives each client a trusted proxy names its own bucket (spoofed entries to its left ignored), with Retry-After the seconds to the next token', async () => {
    const fromProxy = (forwardedFor: string) => get(gateway.port, '/limited', { localAddress: '127.0.0.1', headers: { 'x-forwarded-for': forwardedFor } });
    expect((await fromProxy('203.0.113.1')).status).toBe(200);
    expect((await fromProxy('203.0.113.1')).status).toBe(200);
    // The client put an address of its own before the one the proxy appended: the proxy's counts.
    const refused = await fromProxy('198.51.100.9, 203.0.113.1');
    expect([refused.status, JSON.parse(refused.body).error]).toEqual([429, 'rate-limited']);
    // One token every 10 s: the next one is due in 10 s less the moments since the last was taken (9 on a stalled machine), the bucket full in twice that.
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(9);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(10);
    expect(Number(refused.headers['x-ratelimit-reset'])).toBeGreaterThanOrEqual(19);
    expect(Number(refused.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(20);
    expect(refused.headers).toMatchObject({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'ratelimit-policy': '"default";q=2;w=20' });
    // Another client behind the same proxy has a bucket of its own.
    expect((await fromProxy('203.0.113.2')).status).toBe(200);
  });

  it('keys a peer it does not trust by its own address, whatever X-Forwarded-For it sends', async () => {
    const statuses: number[] = [];
    for (const forwardedFor of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) statuses.push((await get(gateway.port, '/limited', { localAddress: '127.0.0.2', headers: { 'x-forwarded-for': forwardedFor } })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('never forwards a request that delay held after its client left during the wait', async () => {
    const forwarded = () => api.received.filter((request) => request.url === '/held').length;
    expect((await get(gateway.port, '/held')).status).toBe(200);
    // The next token is due in about 2 s: once the auth service has let the next request on, the
    // limit holds it, and its client leaves meanwhile.
    const { outgoing, answer } = exchange(gateway.port, '/held');
    answer.catch(() => undefined);
    outgoing.end();
    await waitFor(() => auth.closed() === 2, { message: 'the auth service to let the second request on' });
    outgoing.destroy();
    // The abandoned request took its token ahead, so this one is held for up to 4 s (maxWait is 5 s); by then the other's wait is over.
    expect((await get(gateway.port, '/held')).status).toBe(200);
    expect(auth.received.length).toBe(3);
    expect(forwarded()).toBe(2);
  });

  it("does not retry a PUT whose streamed body the first instance had started reading when it reset, but answers 502; the other instance never gets a part of it", async () => {
    // Round-robin alternates: within two PUTs one goes to the resetting instance first.
    for (let sent = 0; sent < 2; sent += 1) {
      const [resetBefore, apiBefore] = [resetting.received.length, api.received.length];
      const { outgoing, answer } = exchange(gateway.port, '/pair', { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } });
      outgoing.write('part one, ');
      const landed = await waitFor(() => (resetting.received.length > resetBefore ? 'reset' : api.received.length > apiBefore ? 'api' : undefined), { message: 'the PUT to reach an instance' });
      if (landed === 'api') {
        outgoing.end('part two');
        expect((await answer).status).toBe(200);
        expect(api.received.at(-1)!.body).toBe('part one, part two');
        continue;
      }
      const refused = await answer;
      outgoing.destroy();
      expect([refused.status, JSON.parse(refused.body).error]).toEqual([502, 'reset-before-headers']);
      // A retry would have sent the other instance what was left of the body, under the whole body's framing.
      expect(api.received.length).toBe(apiBefore);
      return;
    }
    throw new Error('no PUT reached the resetting instance');
  });
});

describe('forwardAuth when the client leaves while the auth service thinks', () => {
  /** A forward-auth service that holds every check unanswered: the gateway's 502 `auth-unavailable` comes at its `timeout`. */
  let silentAuth: TestBackend;
  let api: TestBackend;
  /** An upstream that holds every request until the test's end (or the gateway gives it up); `…/streaming` gets a body until the gateway stops reading it. */
  let thinking: TestBackend;
  /** An upstream that answers every request at once. */
  let quick: TestBackend;
  let stalled = false;
  const streamUntilStalled = (response: ServerResponse) => {
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024);
    const more = () => {
      while (!response.destroyed && response.write(chunk));
      // Held back: the gateway has the head and stopped reading the body, its client's answer full.
      stalled = true;
    };
    response.on('drain', more);
    more();
  };
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const held: ServerResponse[] = [];
  /** Checks whose connection closed before the auth service answered them: the gateway gave up on them. */
  let abandoned = 0;

  beforeAll(async () => {
    [silentAuth, api, thinking, quick] = await Promise.all([
      startTestBackend((_request, response) => {
        held.push(response);
        response.on('close', () => !response.writableEnded && (abandoned += 1));
      }),
      startTestBackend((_request, response) => response.end('ok')),
      startTestBackend((request, response) => {
        held.push(response);
        if (request.url?.endsWith('/streaming')) streamUntilStalled(response);
      }),
      startTestBackend((_request, response) => response.end('quick answer')),
    ]);
    // `silent` waits a minute: a check that ends sooner was ended by its client leaving, not by its timeout.
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: 127.0.0.1:{{adminPort}}
limits: { requestTimeout: 2s, headersTimeout: 2s }
services:
  api: { instances: [127.0.0.1:${api.port}], healthCheck: false, outlierDetection: { consecutiveErrors: 1 } }
  thinking: { instances: [127.0.0.1:${thinking.port}] }
  quick: { instances: [127.0.0.1:${quick.port}] }
middlewares:
  silent: { forwardAuth: { address: "http://127.0.0.1:${silentAuth.port}/check", timeout: 60s } }
  brief: { forwardAuth: { address: "http://127.0.0.1:${silentAuth.port}/check", timeout: 1s } }
  single: { inFlightReq: { amount: 1 } }
routes:
  - { path: /authed, service: api, middlewares: [silent] }
  - { path: /single, service: api, middlewares: [single, silent] }
  - { path: /brief, service: api, middlewares: [brief] }
  - { path: /thinking, service: thinking }
  - { path: /quick, service: quick }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });
  afterAll(async () => {
    for (const response of held) response.end();
    await gateway?.process.stop();
    await Promise.all([silentAuth, api, thinking, quick].map((backend) => backend?.close()));
  });

  const accessLine = (path: string) => accessLineOf(gateway.process, path);

  it('aborts the check at once, sends nothing upstream and logs 499 cancelled when an HTTP/1.1 client leaves', async () => {
    const [checks, gaveUp] = [silentAuth.received.length, abandoned];
    const { outgoing, answer } = exchange(gateway.port, '/authed/left');
    answer.catch(() => undefined);
    outgoing.end();
    await waitFor(() => silentAuth.received.length === checks + 1, { message: 'the auth service to get the check' });
    outgoing.destroy();
    await waitFor(() => abandoned === gaveUp + 1, { message: 'the gateway to abort the check of the client that left' });
    const line = await accessLine('/authed/left');
    expect({ status: line.status, errorClass: line.errorClass, aborted: line.aborted, attempts: line.attempts }).toEqual({ status: 499, errorClass: 'cancelled', aborted: true, attempts: 0 });
    expect(api.received).toHaveLength(0);
  });

  it('aborts the check when an HTTP/2 client cancels its stream, and the session goes on', async () => {
    const [checks, gaveUp] = [silentAuth.received.length, abandoned];
    const session = connectHttp2(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => {});
    try {
      const stream = session.request({ ':method': 'GET', ':path': '/authed/h2-left' });
      stream.on('error', () => {});
      stream.end();
      await waitFor(() => silentAuth.received.length === checks + 1, { message: 'the auth service to get the check' });
      stream.close(constants.NGHTTP2_CANCEL);
      await waitFor(() => abandoned === gaveUp + 1, { message: 'the gateway to abort the check of the cancelled stream' });
      const line = await accessLine('/authed/h2-left');
      expect({ status: line.status, errorClass: line.errorClass, attempts: line.attempts }).toEqual({ status: 499, errorClass: 'cancelled', attempts: 0 });
      // The session still serves: its next stream is checked (and held) too.
      const next = session.request({ ':method': 'GET', ':path': '/authed/h2-next' });
      next.on('error', () => {});
      next.end();
      await waitFor(() => silentAuth.received.length === checks + 2, { message: "the auth service to get the session's next check" });
    } finally {
      session.destroy();
    }
    await waitFor(() => abandoned === gaveUp + 2, { message: 'the gateway to abort the check of the closed session' });
    expect(api.received).toHaveLength(0);
  });

  it('aborts the check of a pipelined request, its response not yet on the connection, when the connection goes, and ends that request', async () => {
    const [checks, gaveUp] = [silentAuth.received.length, abandoned];
    const socket = connectTcp(gateway.port, '127.0.0.1');
    socket.on('error', () => {});
    // The second is queued behind the first: Node never gives its response the connection, nor closes it.
    socket.write('GET /authed/pipelined-1 HTTP/1.1\r\nhost: gateway\r\n\r\nGET /single/pipelined-2 HTTP/1.1\r\nhost: gateway\r\n\r\n');
    await waitFor(() => silentAuth.received.length === checks + 2, { message: 'the auth service to get both checks' });
    socket.destroy();
    await waitFor(() => abandoned === gaveUp + 2, { message: 'the gateway to abort both checks' });
    expect((await accessLine('/authed/pipelined-1')).status).toBe(499);
    // The queued one is over too (the listener closes its response with the connection): logged, and its
    // inFlightReq slot (amount 1) free for the next request.
    expect((await accessLine('/single/pipelined-2')).status).toBe(499);
    const { outgoing, answer } = exchange(gateway.port, '/single/after');
    let refused: Answer | undefined;
    answer.then((value) => (refused = value), () => undefined);
    outgoing.end();
    await waitFor(() => silentAuth.received.length === checks + 3 || refused, { message: 'the next request to be checked or refused' });
    outgoing.destroy();
    expect(refused?.status).toBeUndefined();
    await waitFor(() => abandoned === gaveUp + 3, { message: 'the gateway to abort the check of the next request' });
    expect(api.received).toHaveLength(0);
  });

  it('sends nothing upstream once its listener answered 408 to an upload that missed requestTimeout during the check, even when the check then passes', async () => {
    const checks = silentAuth.received.length;
    // An upload that announces more than it sends, and more than the gateway buffers unread while the
    // check holds it: its body is not whole at requestTimeout (2 s). The client keeps its side open
    // after the 408, as one still uploading does, so the connection outlives the check.
    const socket = connectTcp({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`POST /authed/upload HTTP/1.1\r\nhost: gateway\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(300_000)}`);
    try {
      await waitFor(() => silentAuth.received.length === checks + 1, { message: 'the auth service to get the check' });
      await waitFor(() => received.startsWith('HTTP/1.1 408 '), { message: "the listener's 408 to the held upload" });
      // The verdict comes after the 408: a pass, which must not send the cut-short upload on.
      held.at(-1)!.writeHead(204).end();
      const line = await accessLine('/authed/upload');
      expect({ status: line.status, errorClass: line.errorClass, attempts: line.attempts }).toEqual({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(api.received).toHaveLength(0);
    } finally {
      socket.destroy();
    }
  });

  it("still refuses with 502 auth-unavailable at the check's timeout, which counts against no upstream", async () => {
    const gaveUp = abandoned;
    const refused = await get(gateway.port, '/brief/late');
    expect([refused.status, JSON.parse(refused.body).error]).toEqual([502, 'auth-unavailable']);
    await waitFor(() => abandoned === gaveUp + 1, { message: 'the gateway to abort the check that timed out' });
    // One failure would have ejected the instance: none was the upstream's.
    const instance = (await admin.services()).find((view) => view.name === 'api')?.instances[0];
    expect([instance?.requests, instance?.errors, instance?.health.state, instance?.routable]).toEqual([0, 0, 'healthy', true]);
    expect(api.received).toHaveLength(0);
  });
  it('writes a 499 cancelled line, and counts it, for each pipelined request of a connection that breaks, the ones queued behind the first included', async () => {
    const client = connectTcp(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    const paths = ['/thinking/pipelined-1', '/thinking/pipelined-2', '/thinking/pipelined-3/streaming'];
    client.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    await waitFor(() => thinking.received.length === 3 && stalled, { message: 'the upstream to get all three requests, and the gateway to stop reading the streamed answer' });
    // The gateway wrote the third's head and body into an answer queued behind the first two's,
    // which its client never gets: its line reads 499 and 0 bytes all the same.
    client.resetAndDestroy();
    // Before, Node closed only the first request's answer: the ones queued behind it went on to the
    // upstream's answer (logged as the 200 the client never got) or, from an upstream that never
    // answers, to its headers timeout 30 s later (a 504 blamed on it), and a streamed answer waited
    // for room in its client's connection for ever (no line at all).
    const lines = (log: string) => log.split('\n').filter((line) => line.includes('"path":"/thinking/pipelined-'));
    const logged = await waitFor(async () => {
      const found = lines(await readFile(gateway.process.logFile, 'utf8'));
      return found.length >= 3 ? found : undefined;
    }, { timeoutMs: 10_000, message: 'an access line for each pipelined request' });
    const seen = logged.map((line) => JSON.parse(line) as Record<string, unknown>).map((line) => ({ path: line.path, status: line.status, errorClass: line.errorClass, bytes: line.bytes }));
    expect(seen.sort((a, b) => String(a.path).localeCompare(String(b.path)))).toEqual(paths.map((path) => ({ path, status: 499, errorClass: 'cancelled', bytes: 0 })));
    // Each upstream request is given up at once, not held to its answer.
    await waitFor(() => thinking.closed() === 3, { timeoutMs: 10_000, message: 'the upstream requests cancelled' });
    const families = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    expect(sampleValue(families, 'switchboard_requests_total', { route: '/thinking', service: 'thinking', status: '4xx' })).toBe(3);
    // Given up for their client, not failed by the upstream: nothing counts against it.
    const instance = (await admin.services()).find((view) => view.name === 'thinking')?.instances[0];
    expect([instance?.requests, instance?.errors, instance?.health.state, instance?.routable]).toEqual([3, 0, 'healthy', true]);
  });

  it('logs and counts 499 with no bytes for a pipelined request whose whole answer was still queued when its connection broke', async () => {
    const client = connectTcp(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(['/thinking/ahead', '/quick/queued-whole'].map((path) => `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    // The instance counts the attempt once it ended, right after the gateway ended its client's
    // answer: that whole answer waits behind the first one's, which the upstream holds.
    await waitFor(async () => (await admin.services()).find((view) => view.name === 'quick')?.instances[0]?.requests === 1, { message: 'the quick upstream to answer the queued request' });
    client.resetAndDestroy();
    const line = await accessLine('/quick/queued-whole');
    expect({ status: line.status, errorClass: line.errorClass, bytes: line.bytes }).toEqual({ status: 499, errorClass: 'cancelled', bytes: 0 });
    const families = await admin.metrics();
    expect([sampleValue(families, 'switchboard_requests_total', { route: '/quick', service: 'quick', status: '4xx' }), sampleValue(families, 'switchboard_requests_total', { route: '/quick', service: 'quick', status: '2xx' })]).toEqual([1, undefined]);
  });

  it('logs each pipelined answer sent whole with its own status and bytes, also when its client then closes the connection', async () => {
    const client = connectTcp(gateway.port, '127.0.0.1');
    client.on('error', () => undefined);
    let received = '';
    client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const paths = ['/quick/sent-1', '/quick/sent-2', '/quick/sent-3'];
    client.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    await waitFor(() => received.split('quick answer').length === 4, { message: 'the three answers' });
    client.end();
    const lines = await Promise.all(paths.map(accessLine));
    expect(lines.map((line) => ({ status: line.status, bytes: line.bytes, errorClass: line.errorClass }))).toEqual(paths.map(() => ({ status: 200, bytes: 12, errorClass: undefined })));
  });
});

describe('a rateLimit delay, the queue of password checks and the queue for a concurrency slot when the client leaves while they hold its request', () => {
  let api: TestBackend;
  /** Holds every request until its connection closes: the one request `narrow` lets in at a time keeps its slot. */
  let holding: TestBackend;
  /** A forward-auth service that lets everything through: its answers show a request got as far as the rate limit after it. */
  let auth: TestBackend;
  let gateway: GatewayProcess;
  const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`;

  beforeAll(async () => {
    // Cost 12 (a few tenths of a second a check): two checks of wrong passwords hold both of the process's
    // bcrypt slots while the requests after them wait in its queue.
    const hash = await bcryptHash('right', 12);
    [api, auth] = await Promise.all([startTestBackend((_request, response) => response.end('ok')), startTestBackend((_request, response) => response.writeHead(204).end())]);
    holding = await startTestBackend(() => undefined);
    // One token a minute, taken ahead up to a minute: a request after the first is held, for up to a
    // minute, unless its client leaves. Each case has a bucket of its own (its X-Lane).
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: false
limits: { requestTimeout: 2s, headersTimeout: 2s }
services:
  api: { instances: [127.0.0.1:${api.port}] }
  narrow: { instances: [127.0.0.1:${holding.port}], concurrency: { maxRequests: 1, maxPendingRequests: 5 }, timeouts: { connect: 20s }, healthCheck: false }
consumers:
  ops: { passwords: ["${hash}"] }
  many: { passwords: [${Array(14).fill(`"${COST_13_HASH}"`).join(', ')}, "${RIGHT_COST_4_HASH}"] }
middlewares:
  seen: { forwardAuth: { address: "http://127.0.0.1:${auth.port}/check" } }
  held: { rateLimit: { average: 1, period: 1m, burst: 1, key: "header:X-Lane", delay: { maxWait: 1m } } }
  spaced: { rateLimit: { average: 1, period: 20s, burst: 1, key: "header:X-Lane", delay: { maxWait: 1m } } }
  slow: { rateLimit: { average: 1, period: 5s, burst: 1, key: "header:X-Lane", delay: { maxWait: 10s } } }
  staff: { basicAuth: { realm: staff } }
routes:
  - { path: /held, service: api, middlewares: [seen, held] }
  - { path: /slow, service: api, middlewares: [seen, slow] }
  - { path: /spaced, service: api, middlewares: [seen, spaced] }
  - { path: /staff, service: api, middlewares: [staff] }
  - { path: /narrow, service: narrow }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([api, auth, holding].map((backend) => backend?.close()));
  });
  /** Resolves once the auth service has let `count` more requests on to the rate limit. */
  const passedAuth = (count: number) => {
    const target = auth.closed() + count;
    return waitFor(() => auth.closed() >= target, { message: `${count} more requests to reach the rate limit` });
  };

  // `timeoutMs`: a line written only once a slow check is over (the password checks, CPU-bound, slow most on a loaded machine).
  const accessLine = async (path: string, timeoutMs?: number) => {
    const line = await accessLineOf(gateway.process, path, { timeoutMs });
    return { status: line.status, errorClass: line.errorClass, attempts: line.attempts };
  };
  const cancelled = { status: 499, errorClass: 'cancelled', attempts: 0 };
  const forwarded = (path: string) => api.received.filter((request) => request.url === path).length;

  it('ends the delay at once when an HTTP/1.1 client leaves: 499 cancelled, nothing upstream', async () => {
    expect((await get(gateway.port, '/held/h1-first', { headers: { 'x-lane': 'h1' } })).status).toBe(200);
    const reached = passedAuth(1);
    const { outgoing, answer } = exchange(gateway.port, '/held/h1-left', { headers: { 'x-lane': 'h1' } });
    answer.catch(() => undefined);
    outgoing.end();
    // Held now, its token due in a minute.
    await reached;
    outgoing.destroy();
    expect(await accessLine('/held/h1-left')).toEqual(cancelled);
    expect(forwarded('/held/h1-left')).toBe(0);
  });

  it('sends nothing upstream once its listener answered 408 to an upload that missed requestTimeout during the delay', async () => {
    expect((await get(gateway.port, '/slow/first', { headers: { 'x-lane': 'upload' } })).status).toBe(200);
    const reached = passedAuth(1);
    // Held ~5 s for its token; its body is not whole at requestTimeout (2 s), and the client keeps its side open
    // after the 408, as one still uploading does, so the connection outlives the delay. Node checks
    // requestTimeout once a second, so the 408 comes 2 to 3 s in: the delay outlasts it by 2 s less
    // the time since the first request's token (with 3 s, any stall there lost the race).
    const socket = connectTcp({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`POST /slow/upload HTTP/1.1\r\nhost: gateway\r\nx-lane: upload\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(300_000)}`);
    try {
      await reached;
      await waitFor(() => received.startsWith('HTTP/1.1 408 '), { message: "the listener's 408 to the held upload" });
      // Logged once the delay is over: as the 408 the client got, with no attempt, and the upstream never got it.
      expect(await accessLine('/slow/upload')).toEqual({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(forwarded('/slow/upload')).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  it('ends the delay at once when an HTTP/2 client cancels its stream, and the session goes on', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => {});
    try {
      const send = (path: string) => {
        const stream = session.request({ ':method': 'GET', ':path': path, 'x-lane': 'h2' });
        stream.on('error', () => {});
        stream.end();
        return stream;
      };
      const first = send('/held/h2-first');
      await new Promise((resolve) => first.on('response', resolve));
      first.resume();
      const reached = passedAuth(1);
      const held = send('/held/h2-left');
      await reached;
      held.close(constants.NGHTTP2_CANCEL);
      expect(await accessLine('/held/h2-left')).toEqual(cancelled);
      // The session still serves another lane at once.
      const other = session.request({ ':method': 'GET', ':path': '/held/h2-other', 'x-lane': 'h2-other' });
      other.end();
      expect(await new Promise((resolve) => other.on('response', (headers) => resolve(headers[':status'])))).toBe(200);
    } finally {
      session.destroy();
    }
    expect(forwarded('/held/h2-left')).toBe(0);
  });

  it('ends the delay of a pipelined request, its response not yet on the connection, when the connection goes', async () => {
    expect((await get(gateway.port, '/spaced/first', { headers: { 'x-lane': 'pipelined' } })).status).toBe(200);
    const reached = passedAuth(2);
    const socket = connectTcp(gateway.port, '127.0.0.1');
    socket.on('error', () => {});
    const request = (path: string) => `GET ${path} HTTP/1.1\r\nhost: gateway\r\nx-lane: pipelined\r\n\r\n`;
    socket.write(request('/spaced/pipelined-1') + request('/spaced/pipelined-2'));
    // Both held now, for 20 and 40 s: long enough that a stalled CI machine cannot see a wait end
    // (or a token come due) before the connection goes, and beyond waitFor's deadline, so a wait
    // that did not end with the connection leaves no access line in time.
    await reached;
    socket.destroy();
    expect(await accessLine('/spaced/pipelined-1')).toEqual(cancelled);
    expect(await accessLine('/spaced/pipelined-2')).toEqual(cancelled);
    expect(forwarded('/spaced/pipelined-1') + forwarded('/spaced/pipelined-2')).toBe(0);
  });

  it('takes requests whose client left out of the queue of password checks: 499 cancelled, no check, nothing upstream (pipelined too)', async () => {
    const blockers = ['ops:wrong-1', 'ops:wrong-2'].map((credentials) => get(gateway.port, '/staff/blocker', { headers: { authorization: basic(credentials) } }));
    // Queued behind the blockers: one request on a connection of its own, and two pipelined on another.
    const { outgoing, answer } = exchange(gateway.port, '/staff/left', { headers: { authorization: basic('ops:right') } });
    answer.catch(() => undefined);
    const sent = new Promise((resolve) => outgoing.once('finish', resolve));
    outgoing.end();
    const socket = connectTcp(gateway.port, '127.0.0.1');
    socket.on('error', () => {});
    const request = (path: string) => `GET ${path} HTTP/1.1\r\nhost: gateway\r\nauthorization: ${basic('ops:right')}\r\n\r\n`;
    await new Promise<void>((resolve) => socket.write(request('/staff/pipelined-1') + request('/staff/pipelined-2'), () => resolve()));
    await sent;
    outgoing.destroy();
    socket.destroy();
    expect((await Promise.all(blockers)).map((refused) => refused.status)).toEqual([401, 401]);
    // Two more checks after them: the second starts once the first check after the blockers has
    // ended, so by its answer a check of the second pipelined request, which would pass, has sent it on.
    const after = await Promise.all(['ops:wrong-3', 'ops:wrong-4'].map((credentials) => get(gateway.port, '/staff/after', { headers: { authorization: basic(credentials) } })));
    expect(after.map((refused) => refused.status)).toEqual([401, 401]);
    expect(await accessLine('/staff/left')).toEqual(cancelled);
    expect(await accessLine('/staff/pipelined-1')).toEqual(cancelled);
    expect(api.received.filter((seen) => seen.url.startsWith('/staff/'))).toEqual([]);
  });

  it('sends nothing upstream once its listener answered 408 to an upload that missed requestTimeout during its password check', async () => {
    // 14 checks of cost 13 (~0.4 s each here, a quarter-second on a fast machine) before the one that
    // passes: the check outlasts the 408, which Node's once-a-second check of requestTimeout (2 s)
    // gives 2 to 3 s after the upload started. The client keeps its side open after the 408.
    const socket = connectTcp({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`POST /staff/upload HTTP/1.1\r\nhost: gateway\r\nauthorization: ${basic('many:right')}\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(300_000)}`);
    try {
      await waitFor(() => received.startsWith('HTTP/1.1 408 '), { message: "the listener's 408 to the upload whose password is checked" });
      // Logged once the check is over: as the 408 the client got, with no attempt, and the upstream never got it.
      // The checks run on after the 408: a loaded CI machine (a run beside other work) took over 10 s for the rest.
      expect(await accessLine('/staff/upload', 60_000)).toEqual({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(api.received.filter((seen) => seen.url === '/staff/upload')).toEqual([]);
    } finally {
      socket.destroy();
    }
  });

  it('takes a pipelined request whose connection went out of the queue for a concurrency slot: nothing upstream', async () => {
    const socket = connectTcp(gateway.port, '127.0.0.1');
    socket.on('error', () => {});
    const request = (path: string) => `GET ${path} HTTP/1.1\r\nhost: gateway\r\n\r\n`;
    // The first holds the service's one slot (its backend never answers), the second waits for it.
    socket.write(request('/narrow/pipelined-1') + request('/narrow/pipelined-2'));
    await waitFor(() => holding.received.length === 1, { message: 'the first request upstream' });
    socket.destroy();
    // The first's upstream request is cut, freeing the slot; the second, its client gone, must not take it.
    await waitFor(() => holding.closed() === 1, { message: 'the first upstream request to be cut' });
    const [other] = [exchange(gateway.port, '/narrow/after')];
    other.answer.catch(() => undefined);
    other.outgoing.end();
    await waitFor(() => holding.received.length >= 2, { message: 'a request after it to take the slot' });
    expect(holding.received.map((seen) => seen.url)).toEqual(['/narrow/pipelined-1', '/narrow/after']);
    other.outgoing.destroy();
  });

  it('sends nothing upstream once its listener answered 408 to an upload that missed requestTimeout while it waited for a concurrency slot', async () => {
    await waitFor(() => holding.closed() === holding.received.length, { message: 'the earlier requests to have let go of the slot' });
    const ahead = exchange(gateway.port, '/narrow/holds-the-slot');
    ahead.answer.catch(() => undefined);
    ahead.outgoing.end();
    const before = holding.received.length;
    await waitFor(() => holding.received.length === before + 1, { message: 'the request ahead to take the one slot' });
    // Queued behind it (its connect timeout, 20 s, bounds the wait); its body is not whole at
    // requestTimeout (2 s), and the client keeps its side open after the 408, as one still uploading does.
    const socket = connectTcp({ port: gateway.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`POST /narrow/upload HTTP/1.1\r\nhost: gateway\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(300_000)}`);
    try {
      await waitFor(() => received.startsWith('HTTP/1.1 408 '), { message: "the listener's 408 to the queued upload" });
      // The slot frees: the upload, answered already, must not take it to the upstream.
      ahead.outgoing.destroy();
      expect(await accessLine('/narrow/upload')).toEqual({ status: 408, errorClass: 'request-timeout', attempts: 0 });
      expect(holding.received.filter((seen) => seen.url === '/narrow/upload')).toEqual([]);
    } finally {
      socket.destroy();
    }
  });
});

/**
 * A TCP relay to `port` that, while `slow`, holds what its clients send (a Redis far away or busy),
 * and counts what it held: the count shows a request's command is out. `release()` ends `slow` and
 * passes what it held on `delayMs` later: counted from the test's own step (its client leaving), not
 * from the command's arrival, so a test process the machine starves for a while cannot take its step
 * after Redis has answered. What comes behind held bytes on a connection waits behind them, in order.
 */
async function slowingRelay(port: number, delayMs: number): Promise<{ server: TcpServer; port: number; slow: boolean; held: number; release: () => void }> {
  const holding: Array<() => void> = [];
  const relay = {
    server: undefined as unknown as TcpServer,
    port: 0,
    slow: false,
    held: 0,
    release: () => {
      relay.slow = false;
      for (const pass of holding.splice(0)) setTimeout(pass, delayMs);
    },
  };
  relay.server = createTcpServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port });
    let queued = 0;
    client.on('data', (chunk: Buffer) => {
      if (!relay.slow && queued === 0) return void upstream.write(chunk);
      queued += 1;
      const pass = () => {
        queued -= 1;
        upstream.write(chunk);
      };
      if (!relay.slow) return void setTimeout(pass, delayMs);
      relay.held += 1;
      holding.push(pass);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    tieSockets(client, upstream, () => undefined);
  });
  await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
  relay.port = (relay.server.address() as AddressInfo).port;
  return relay;
}

describe('a Redis rate limit and a JWKS fetch when the client leaves while they wait on the network', () => {
  let api: TestBackend;
  let gateway: GatewayProcess;
  let redis: LocalRedis;
  let relay: Awaited<ReturnType<typeof slowingRelay>>;
  let jwks: Server;
  let jwksKeys: JWK[] = [];
  /** JWKS fetches that came while `jwksSlow`: each is held until `releaseJwks()` and answered 1.5 s after it, else at once (503 before the keys are set). */
  let jwksFetches = 0;
  let jwksSlow = false;
  const jwksHeld: Array<() => void> = [];
  const releaseJwks = () => {
    jwksSlow = false;
    for (const answer of jwksHeld.splice(0)) setTimeout(answer, SLOW_MS);
  };
  let jwksRefused = 0;
  let sign: () => Promise<string>;
  // Far more than any wait in a case: a client's leaving, seen by the gateway at once, is over long before.
  const SLOW_MS = 1_500;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const key = { ...(await exportJWK(pair.publicKey)), kid: 'k1', use: 'sig', alg: 'ES256' };
    sign = () => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setAudience('switchboard').setExpirationTime('10m').sign(pair.privateKey);
    [api, redis] = await Promise.all([startTestBackend((_request, response) => response.end('ok')), startLocalRedis('redis-client-gone')]);
    relay = await slowingRelay(redis.port, SLOW_MS);
    jwks = createServer((_request, response) => {
      const answer = () => {
        if (jwksKeys.length > 0) return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwksKeys }));
        jwksRefused += 1;
        response.writeHead(503).end();
      };
      if (!jwksSlow) return answer();
      jwksFetches += 1;
      jwksHeld.push(answer);
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    // No keys at first: the first request's verification fetches them again (cooldown 0 s), and waits for that fetch.
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: false
redis: { url: "redis://127.0.0.1:${relay.port}/0", timeout: 10s, keyPrefix: "client-gone:" }
services:
  api: { instances: [127.0.0.1:${api.port}] }
middlewares:
  shared: { rateLimit: { average: 1000, period: 1s, burst: 1000, key: route, policy: redis } }
  token: { jwtAuth: { algorithms: [ES256], audience: switchboard, jwks: { url: "http://127.0.0.1:${(jwks.address() as AddressInfo).port}/keys", cooldown: 0s, timeout: 10s } } }
routes:
  - { path: /limited, service: api, middlewares: [shared] }
  - { path: /token, service: api, middlewares: [token] }
`);
    // The fetch the gateway starts with has failed: the keys come with the next one, a request's.
    await waitFor(() => jwksRefused > 0, { message: "the gateway's first JWKS fetch" });
    jwksKeys = [key];
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([api?.close(), redis?.close()]);
    jwks?.closeAllConnections();
    jwks?.close();
    relay?.server.close();
  });

  const outcome = async (path: string) => {
    const line = await accessLineOf(gateway.process, path, { timeoutMs: 15_000 });
    return { status: line.status, errorClass: line.errorClass, attempts: line.attempts };
  };
  const cancelled = { status: 499, errorClass: 'cancelled', attempts: 0 };
  const forwarded = (path: string) => api.received.filter((request) => request.url === path).length;

  it('sends nothing upstream for a request whose client left while Redis decided, and logs it 499 cancelled', async () => {
    // Connected and on Redis: the limit lets a request through.
    expect((await get(gateway.port, '/limited/first')).status).toBe(200);
    relay.slow = true;
    try {
      const held = relay.held;
      const { outgoing, answer } = exchange(gateway.port, '/limited/left');
      answer.catch(() => undefined);
      outgoing.end();
      await waitFor(() => relay.held > held, { message: "the rate limit's Redis call to be out" });
      outgoing.destroy();
      // Redis answers 1.5 s after the client left, letting it through: the gateway has seen it go by then.
      relay.release();
      expect(await outcome('/limited/left')).toEqual(cancelled);
      expect(forwarded('/limited/left')).toBe(0);
    } finally {
      relay.release();
    }
    expect((await get(gateway.port, '/limited/after')).status).toBe(200);
  });

  it('sends nothing upstream for a request whose HTTP/2 client cancelled its stream while Redis decided, and logs it 499 cancelled', async () => {
    const session = connectHttp2(`http://127.0.0.1:${gateway.port}`);
    session.on('error', () => {});
    relay.slow = true;
    try {
      const held = relay.held;
      const stream = session.request({ ':method': 'GET', ':path': '/limited/h2-left' });
      stream.on('error', () => {});
      stream.end();
      await waitFor(() => relay.held > held, { message: "the rate limit's Redis call to be out" });
      stream.close(constants.NGHTTP2_CANCEL);
      relay.release();
      expect(await outcome('/limited/h2-left')).toEqual(cancelled);
      expect(forwarded('/limited/h2-left')).toBe(0);
    } finally {
      relay.release();
      session.destroy();
    }
  });

  it('sends nothing upstream for a request whose client left while the JWKS was fetched, and logs it 499 cancelled', async () => {
    const token = await sign();
    jwksSlow = true;
    try {
      const { outgoing, answer } = exchange(gateway.port, '/token/left', { headers: { authorization: `Bearer ${token}` } });
      answer.catch(() => undefined);
      outgoing.end();
      await waitFor(() => jwksFetches > 0, { message: "the verification's JWKS fetch" });
      outgoing.destroy();
      // The keys come 1.5 s after the client left and verify the token: the gateway has seen it go by then.
      releaseJwks();
      expect(await outcome('/token/left')).toEqual(cancelled);
      expect(forwarded('/token/left')).toBe(0);
    } finally {
      releaseJwks();
    }
    expect((await get(gateway.port, '/token/after', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });
});
