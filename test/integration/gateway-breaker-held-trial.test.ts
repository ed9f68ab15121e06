// A half-open breaker's trial that is answered while its request still waits in the pool's queue
// (a gRPC call's deadline passed there) is dropped unsent by its transport: it can never reach the
// upstream, so its trial slot goes to the next call at once, counted neither a success nor a
// failure. It used to stay taken until the transport let go of the request (here, until the one
// connection freed; with a connection that never opens, 60 s), every other call getting the fallback.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { logOf, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

interface BreakerView {
  workers: { breakers: { service: string; route: string | null; state: string; retryAt: string | null; inFlight: number }[] }[];
}

describe("a half-open breaker's trial answered while still queued for a connection", () => {
  let server: Server;
  let port: number;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  /** Requests that reached the backend, by path. */
  const received: string[] = [];
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    server = createServer((request: IncomingMessage, response: ServerResponse) => {
      received.push(request.url!);
      request.resume();
      if (request.url!.startsWith('/hold') || request.url!.startsWith('/trial/held')) return void held.push(response);
      if (request.url!.startsWith('/trial/fail')) return void response.writeHead(500).end('failing');
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    // One connection to the instance; /trial has a breaker of its own, /hold none, so a held /hold
    // takes the connection while /trial's breaker is open, and /trial's calls queue behind it.
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  api: { instances: ["127.0.0.1:${port}"], healthCheck: false, outlierDetection: false, retries: false, concurrency: { maxConnections: 1 } }
routes:
  - { name: hold, path: /hold, service: api }
  - name: trial
    path: /trial
    service: api
    circuitBreaker: { requestVolumeThreshold: 2, errorPercentThreshold: 50, sleepWindow: 1s, halfOpenRequests: 1, fallback: { status: 200, headers: { x-fallback: static }, body: degraded } }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    for (const response of held) response.end('released');
    await gateway?.process.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  const trialBreaker = async () => ((await (await admin.get('/api/breakers')).json()) as BreakerView).workers[0]!.breakers.find((breaker) => breaker.route === 'trial');

  it('gives its trial slot to the next call at once, which then reaches the upstream', async () => {
    for (let index = 0; index < 2; index += 1) expect((await sendRequest(gateway.port, '/trial/fail')).status).toBe(500);
    const opened = await trialBreaker();
    expect(opened?.state).toBe('open');
    expect((await sendRequest(gateway.port, '/trial/ok')).headers['x-fallback']).toBe('static');
    // /hold takes the one connection until the test releases it.
    const holding = sendRequest(gateway.port, '/hold');
    await waitFor(() => held.length === 1 || undefined, { timeoutMs: 10_000, message: 'the backend holding /hold' });
    // The sleep window ends (the breaker's retryAt passes): the next /trial call is the trial.
    const retryAt = Date.parse(opened!.retryAt!);
    await waitFor(() => Date.now() > retryAt + 50 || undefined, { timeoutMs: 5_000, message: 'the sleep window to pass' });
    // The trial, a gRPC call, queues behind /hold and is answered DEADLINE_EXCEEDED at its deadline, unsent.
    const call = await sendRequest(gateway.port, '/trial/svc.Echo/Say', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m', 'content-length': '0' } });
    expect(call.status).toBe(200);
    expect(call.headers['grpc-status']).toBe('4');
    expect((await trialBreaker())?.state).toBe('half-open');
    // The next call takes the freed trial slot (no fallback): it waits for the connection in turn.
    let settled = false;
    const next = sendRequest(gateway.port, '/trial/held').finally(() => (settled = true));
    // In the breaker's hands (the held call's and its own) before the connection frees, unless answered already.
    await waitFor(async () => settled || (await trialBreaker())?.inFlight === 2 || undefined, { timeoutMs: 10_000, message: 'the next /trial call at the gateway' });
    held.shift()!.end('released');
    expect((await holding).status).toBe(200);
    // The connection freed: the queued gRPC call is dropped, its slot let go (counted once), and the
    // next call reaches the instance, which holds it: the one trial of the period, in flight.
    await waitFor(() => held.length === 1 || settled || undefined, { timeoutMs: 10_000, message: 'the backend holding /trial/held' });
    await waitFor(async () => (await trialBreaker())?.inFlight === 1 || undefined, { timeoutMs: 10_000, message: "the dropped call's slot let go" });
    // Letting go of the dropped call freed no second trial slot: a call meanwhile gets the fallback
    // at once (admitted as a second trial, it would wait behind the held one for the connection).
    let meanwhileSettled = false;
    const meanwhile = sendRequest(gateway.port, '/trial/ok').finally(() => (meanwhileSettled = true));
    await waitFor(async () => meanwhileSettled || (await trialBreaker())?.inFlight === 2 || undefined, { timeoutMs: 10_000, message: 'the call meanwhile at the gateway' });
    held.shift()!.end('ok');
    expect((await meanwhile).headers['x-fallback']).toBe('static');
    const answer = await next;
    expect(answer.headers['x-fallback']).toBeUndefined();
    expect(answer.body).toBe('ok');
    // The queued gRPC call never reached the instance; the trial that did closed the breaker.
    expect(received).toEqual(['/trial/fail', '/trial/fail', '/hold', '/trial/held']);
    expect((await trialBreaker())?.state).toBe('closed');
    await waitFor(async () => (await trialBreaker())?.inFlight === 0 || undefined, { message: 'no call of the breaker in flight' });
    // Its access line comes once the transport has let go of it.
    await waitFor(async () => /"status":504,.*"errorClass":"deadline-exceeded"/.test(await logOf(gateway.process)) || undefined, { message: "the gRPC call's access line" });
  });
});
