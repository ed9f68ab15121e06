import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { refusingPort, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import type { SseConnection } from '../harness/sse-client.ts';

/** A real HTTP backend in the test process whose behaviour the test switches, counting what reaches it. */
interface TestBackend {
  readonly port: number;
  /** Requests that reached the backend. */
  received: number;
  handle: (request: IncomingMessage, response: ServerResponse, index: number) => void;
  close(): Promise<void>;
}

async function startTestBackend(handle: TestBackend['handle']): Promise<TestBackend> {
  const backend = { received: 0, handle } as TestBackend & { port: number };
  const server: Server = createServer((request, response) => {
    const index = backend.received;
    backend.received += 1;
    request.resume();
    backend.handle(request, response, index);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(backend, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return backend;
}

const ok = (response: ServerResponse) => response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
/** 60 % failures, deterministically: of every five requests the first three fail. */
const sixtyPercentFailing = (_request: IncomingMessage, response: ServerResponse, index: number) =>
  index % 5 < 3 ? response.writeHead(500, { 'content-type': 'text/plain' }).end('failing') : ok(response);
/** Resets the connection before answering: a retryable upstream failure for a GET. */
const resetting = (request: IncomingMessage) => request.socket.destroy();

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('circuit breaking, retry budgets and concurrency caps', () => {
  let flaky: TestBackend;
  let resetA: TestBackend;
  let resetB: TestBackend;
  let slow: TestBackend;
  let backup: TestBackend;
  let rescuer: TestBackend;
  let failsFirst: TestBackend;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let events: SseConnection;
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    [flaky, resetA, resetB, slow] = await Promise.all([
      startTestBackend((_request, response) => ok(response)),
      startTestBackend(resetting),
      startTestBackend(resetting),
      startTestBackend((_request, response) => held.push(response)),
    ]);
    backup = await startTestBackend((_request, response) => response.writeHead(200, { 'content-type': 'text/plain' }).end('backup'));
    rescuer = await startTestBackend((_request, response) => response.writeHead(200, { 'content-type': 'text/plain' }).end('rescued'));
    failsFirst = await startTestBackend((_request, response, index) => (index === 0 ? response.writeHead(500, { 'content-type': 'text/plain' }).end('failing') : ok(response)));
    const closedPort = await refusingPort();
    const [refusedA, refusedB, refusedC] = [await refusingPort(), await refusingPort(), await refusingPort()];
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
services:
  flaky:
    instances: [127.0.0.1:${flaky.port}]
    outlierDetection: false
    retries: false
    circuitBreaker:
      requestVolumeThreshold: 10
      errorPercentThreshold: 50
      sleepWindow: 5s
      halfOpenRequests: 2
      fallback: { status: 200, headers: { x-fallback: static }, body: degraded }
  resetting:
    instances: [127.0.0.1:${resetA.port}, 127.0.0.1:${resetB.port}]
    outlierDetection: false
    retries: { attempts: 3 }
    retryBudget: { percent: 20, minRetriesPerSecond: 0 }
  resetting-unbudgeted:
    instances: [127.0.0.1:${resetA.port}, 127.0.0.1:${resetB.port}]
    outlierDetection: false
    retries: { attempts: 3 }
    retryBudget: false
  slow:
    instances: [127.0.0.1:${slow.port}]
    concurrency: { maxRequests: 2 }
  down:
    instances: [127.0.0.1:${closedPort}]
    outlierDetection: false
    retries: false
    circuitBreaker: { requestVolumeThreshold: 3, sleepWindow: 60s, fallback: { service: backup } }
  down-plain:
    instances: [127.0.0.1:${closedPort}]
    outlierDetection: false
    retries: false
    circuitBreaker: { requestVolumeThreshold: 3, sleepWindow: 60s }
  down-quiet:
    instances: [127.0.0.1:${closedPort}]
    outlierDetection: false
    retries: false
    circuitBreaker: { requestVolumeThreshold: 3, sleepWindow: 60s, fallback: { status: 204, headers: { x-fallback: quiet } } }
  backup:
    instances: [127.0.0.1:${backup.port}]
  mostly-refusing:
    instances: [127.0.0.1:${refusedA}, 127.0.0.1:${refusedB}, 127.0.0.1:${rescuer.port}]
    outlierDetection: false
    retries: { attempts: 3 }
    retryBudget: false
    circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s }
  all-refusing:
    instances: [127.0.0.1:${refusedA}, 127.0.0.1:${refusedB}, 127.0.0.1:${refusedC}]
    outlierDetection: false
    retries: { attempts: 3 }
    retryBudget: false
    circuitBreaker: { requestVolumeThreshold: 4, errorPercentThreshold: 50, sleepWindow: 60s }
  fails-first:
    instances: [127.0.0.1:${failsFirst.port}]
    outlierDetection: false
    retries: false
    circuitBreaker: { requestVolumeThreshold: 2, errorPercentThreshold: 1, sleepWindow: 60s }
routes:
  - { path: /down, service: down }
  - { path: /fails-first, service: fails-first }
  - { path: /quiet, service: down-quiet }
  - { path: /plain, service: down-plain }
  - { path: /flaky, service: flaky }
  - { path: /reset, service: resetting }
  - { path: /unbudgeted, service: resetting-unbudgeted }
  - { path: /slow, service: slow }
  - { path: /rescued, service: mostly-refusing }
  - { path: /all-refusing, service: all-refusing }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    events = await admin.events();
  });
  afterAll(async () => {
    events?.close();
    for (const response of held) response.end();
    await gateway?.process.stop();
    await Promise.all([flaky, resetA, resetB, slow, backup, rescuer, failsFirst].map((backend) => backend?.close()));
  });

  const breakerEvents = () => events.messages.filter((message) => message.event.startsWith('breaker-'));

  it('opens on a 60 % failing backend, answers the fallback at once without calling it, and closes after the half-open trials', async () => {
    for (let index = 0; index < 5; index += 1) expect((await sendRequest(gateway.port, '/flaky')).status).toBe(200);
    flaky.handle = sixtyPercentFailing;
    flaky.received = 0;

    // Until the window holds 10 calls with at least 50 % failures, every request reaches the backend.
    let served = 0;
    let answer = await sendRequest(gateway.port, '/flaky');
    while (answer.headers['x-fallback'] === undefined && served < 100) {
      served += 1;
      answer = await sendRequest(gateway.port, '/flaky');
    }
    const openedAt = Date.now();
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('degraded');
    // 5 successes came before; with 3 of 5 failing the window reaches 50 % at 10+ calls, not before.
    expect(served).toBeGreaterThanOrEqual(5);
    expect(served).toBeLessThanOrEqual(30);
    expect(flaky.received).toBe(served);

    // Open: every request gets the fallback and none reaches the backend.
    const latencies: number[] = [];
    while (latencies.length < 20 && Date.now() - openedAt < 3_000) {
      const started = performance.now();
      const fallback = await sendRequest(gateway.port, '/flaky');
      latencies.push(performance.now() - started);
      expect(fallback.headers['x-fallback']).toBe('static');
      expect(fallback.body).toBe('degraded');
    }
    expect(latencies.length).toBeGreaterThanOrEqual(5);
    expect(flaky.received).toBe(served);
    console.info(`fallback latency while open: median ${median(latencies).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms over ${latencies.length} requests`);
    await waitFor(() => breakerEvents().length >= 1, { message: 'breaker-opened on /api/events' });

    // The backend recovers; after the sleep window, two trial calls succeed and close the breaker.
    flaky.handle = (_request, response) => ok(response);
    await waitFor(async () => (await sendRequest(gateway.port, '/flaky')).body === 'ok', { timeoutMs: 15_000, intervalMs: 200, message: 'a half-open trial to reach the recovered backend' });
    await waitFor(async () => (await sendRequest(gateway.port, '/flaky')).body === 'ok' && breakerEvents().some((message) => message.event === 'breaker-closed'), {
      timeoutMs: 10_000,
      message: 'breaker-closed on /api/events',
    });
    expect(breakerEvents().map((message) => message.event)).toEqual(['breaker-opened', 'breaker-half-open', 'breaker-closed']);
    const opened = JSON.parse(breakerEvents()[0]!.data) as { data: { service: string; requests: number; failures: number } };
    expect(opened.data.service).toBe('flaky');
    expect(opened.data.failures * 2).toBeGreaterThanOrEqual(opened.data.requests);
    expect(opened.data.requests).toBeGreaterThanOrEqual(10);

    const view = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string; state: string }[] }[] };
    expect(view.workers[0]!.breakers.find((breaker) => breaker.service === 'flaky')?.state).toBe('closed');
    const metrics = await admin.metrics();
    const transitions = metrics.get('switchboard_circuit_breaker_transitions_total')!.samples.filter((sample) => sample.labels.service === 'flaky');
    expect(transitions.map((sample) => [sample.labels.to, sample.value]).sort()).toEqual([
      ['closed', 1],
      ['half-open', 1],
      ['open', 1],
    ]);
  });

  it('keeps upstream attempts within (1 + budget) × requests when every instance fails', async () => {
    // Without a budget, every request makes its three attempts: the bound below is not met by accident.
    const before = resetA.received + resetB.received;
    for (let index = 0; index < 10; index += 1) expect((await sendRequest(gateway.port, '/unbudgeted')).status).toBe(502);
    expect(resetA.received + resetB.received - before).toBe(30);

    const start = resetA.received + resetB.received;
    const requests = 50;
    for (let index = 0; index < requests; index += 1) expect((await sendRequest(gateway.port, '/reset')).status).toBe(502);
    const attempts = resetA.received + resetB.received - start;
    console.info(`retry budget 20 %: ${attempts} upstream attempts for ${requests} requests`);
    expect(attempts).toBeGreaterThanOrEqual(requests);
    expect(attempts).toBeLessThanOrEqual(requests * 1.2);
    const exhausted = (await admin.metrics()).get('switchboard_retry_budget_exhausted_total')!.samples.find((sample) => sample.labels.service === 'resetting' && sample.labels.reason === 'budget');
    expect(exhausted?.value).toBeGreaterThan(0);
  });

  it('answers 503 at once to the request beyond maxRequests while two are in flight', async () => {
    const first = sendRequest(gateway.port, '/slow');
    const second = sendRequest(gateway.port, '/slow');
    await waitFor(() => held.length === 2, { message: 'two requests in flight at the slow backend' });
    const refused = await sendRequest(gateway.port, '/slow');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'concurrency-limit', service: 'slow' });
    expect(slow.received).toBe(2);
    for (const response of held.splice(0)) ok(response);
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    // The slots are free again.
    const third = sendRequest(gateway.port, '/slow');
    await waitFor(() => held.length === 1, { message: 'the next request to reach the slow backend' });
    ok(held.shift()!);
    expect((await third).status).toBe(200);
  });

  it('sends requests to the fallback service while open, or answers 503 circuit-open with Retry-After when none is configured', async () => {
    for (const path of ['/down', '/plain']) {
      for (let index = 0; index < 3; index += 1) expect((await sendRequest(gateway.port, path)).status).toBe(502);
    }
    const before = backup.received;
    const redirected = await sendRequest(gateway.port, '/down');
    expect(redirected).toMatchObject({ status: 200, body: 'backup' });
    expect(backup.received).toBe(before + 1);
    const refused = await sendRequest(gateway.port, '/plain');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'circuit-open', service: 'down-plain' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(50);
  });

  it('answers a 204 static fallback without Content-Length, as RFC 9110 §8.6 requires', async () => {
    for (let index = 0; index < 3; index += 1) expect((await sendRequest(gateway.port, '/quiet')).status).toBe(502);
    const quiet = await sendRequest(gateway.port, '/quiet');
    expect(quiet).toMatchObject({ status: 204, body: '' });
    expect(quiet.headers['x-fallback']).toBe('quiet');
    expect(quiet.headers['content-length']).toBeUndefined();
  });

  const refusedAttempts = async (service: string) =>
    (await admin.metrics()).get('switchboard_upstream_errors_total')!.samples.find((sample) => sample.labels.service === service && sample.labels.class === 'connect-refused')?.value ?? 0;
  const breakerOf = async (service: string) => {
    const view = (await (await admin.get('/api/breakers')).json()) as { workers: { breakers: { service: string; state: string; requests: number; failures: number }[] }[] };
    return view.workers[0]!.breakers.find((breaker) => breaker.service === service);
  };

  it('opens at the success that brings the window to the volume when the failures already reach the percentage', async () => {
    expect((await sendRequest(gateway.port, '/fails-first')).status).toBe(500);
    expect(await sendRequest(gateway.port, '/fails-first')).toMatchObject({ status: 200, body: 'ok' });
    // 1 failure in 2 calls is 50 %, at or above 1 %: the success opened it, and the next call is refused.
    const refused = await sendRequest(gateway.port, '/fails-first');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'circuit-open', service: 'fails-first' });
    expect(failsFirst.received).toBe(2);
    const opened = await waitFor(() => breakerEvents().find((message) => message.event === 'breaker-opened' && message.data.includes('"fails-first"')), { message: 'breaker-opened for fails-first' });
    expect((JSON.parse(opened.data) as { data: { requests: number; failures: number } }).data).toMatchObject({ requests: 2, failures: 1 });
  });

  it('counts a request its retries answered as one call that succeeded: two refusing instances of three never open the breaker', async () => {
    for (let index = 0; index < 12; index += 1) expect(await sendRequest(gateway.port, '/rescued')).toMatchObject({ status: 200, body: 'rescued' });
    expect(rescuer.received).toBe(12);
    // Retries there were (passive health hears each attempt), but every request was served.
    expect(await refusedAttempts('mostly-refusing')).toBeGreaterThanOrEqual(4);
    expect(await breakerOf('mostly-refusing')).toMatchObject({ state: 'closed', requests: 12, failures: 0 });
  });

  it('counts a request whose every attempt failed as one call that failed: each request makes its three attempts until the fourth failed request opens the breaker', async () => {
    for (let index = 0; index < 4; index += 1) expect((await sendRequest(gateway.port, '/all-refusing')).status).toBe(502);
    expect(await refusedAttempts('all-refusing')).toBe(12);
    const refused = await sendRequest(gateway.port, '/all-refusing');
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'circuit-open', service: 'all-refusing' });
    const opened = await waitFor(() => breakerEvents().find((message) => message.event === 'breaker-opened' && message.data.includes('"all-refusing"')), { message: 'breaker-opened for all-refusing' });
    expect((JSON.parse(opened.data) as { data: { requests: number; failures: number } }).data).toMatchObject({ requests: 4, failures: 4 });
  });
});

describe('circuit breakers with several workers', () => {
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    const closedPort = await refusingPort();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}} }
workers: 2
services:
  down:
    instances: [127.0.0.1:${closedPort}]
    outlierDetection: false
    retries: false
    circuitBreaker: { requestVolumeThreshold: 3, sleepWindow: 60s }
routes:
  - { path: /down, service: down }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
  });

  it("lists every worker's breakers in /api/breakers and relays a worker's breaker-opened with its number", async () => {
    const events = await admin.events();
    try {
      // Each worker trips on its own share: keep sending until every request is refused by an open breaker.
      await waitFor(async () => (await sendRequest(gateway.port, '/down')).status === 503 && (await sendRequest(gateway.port, '/down')).status === 503, { timeoutMs: 15_000, intervalMs: 10, message: 'the breakers to open' });
      const opened = await waitFor(() => events.messages.find((message) => message.event === 'breaker-opened'), { message: 'breaker-opened relayed by the primary' });
      expect([0, 1]).toContain((JSON.parse(opened.data) as { data: { worker: number } }).data.worker);
      const view = await waitFor(
        async () => {
          const body = (await (await admin.get('/api/breakers')).json()) as { workers: { worker: number; breakers: { service: string; state: string }[] }[] };
          return body.workers.length === 2 && body.workers.some((worker) => worker.breakers.some((breaker) => breaker.state === 'open')) ? body : undefined;
        },
        { message: 'both workers in /api/breakers, one with an open breaker' },
      );
      expect(view.workers.map((worker) => worker.worker)).toEqual([0, 1]);
    } finally {
      events.close();
    }
  });
});
