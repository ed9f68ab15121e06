// A call whose gRPC deadline passes while it waits in the pool's queue for the instance's one
// connection is dropped unsent: the instance never saw it, so it is none of the instance's
// requests (flow statistics, /api/services), while its route and service count it and its 504.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { logOf, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

interface Counts {
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}
interface Stats {
  services: Record<string, { total: Counts }>;
  routes: Record<string, { total: Counts }>;
  instances: Record<string, Record<string, { total: Counts }>>;
}

/** The queued call's deadline: the held request keeps the one connection far longer. */
const DEADLINE = '300m';

describe("a gRPC call dropped unsent from the instance's connection queue at its deadline", () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let address: string;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    address = `127.0.0.1:${backend.port}`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  api: { instances: ["${address}"], healthCheck: false, concurrency: { maxConnections: 1 } }
routes:
  - { name: calls, path: /, service: api }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  const stats = async (): Promise<Stats> => (await (await admin.get('/api/stats')).json()) as Stats;

  it('counts it for the route and the service, as a 504, and not for the instance', async () => {
    // The held request takes the pool's one connection until the test releases it.
    const holding = sendRequest(gateway.port, '/hold/first');
    await waitFor(async () => ((await sendRequest(backend.port, '/held/first')).body === 'waiting' ? true : undefined), { timeoutMs: 10_000, message: 'the backend holding /hold/first' });
    const call = await sendRequest(gateway.port, '/svc.Echo/Say', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': DEADLINE, 'content-length': '0' } });
    // The gateway's gRPC answer at the deadline: HTTP 200, grpc-status 4 (DEADLINE_EXCEEDED).
    expect(call.status).toBe(200);
    expect(call.headers['grpc-status']).toBe('4');
    // The connection frees: undici takes the queued call and drops it unsent.
    expect((await sendRequest(backend.port, '/release/first', { method: 'POST' })).status).toBe(204);
    const held = await holding;
    expect(held.status).toBe(200);
    const view = await waitFor(
      async () => {
        const current = await stats();
        return current.services.api?.total.requests === 2 ? current : undefined;
      },
      { timeoutMs: 15_000, message: 'both requests in /api/stats' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await stats())}\n${await logOf(gateway.process)}`);
    });
    const both = { requests: 2, errors: 1, bytesIn: 0, bytesOut: Buffer.byteLength(held.body) + Buffer.byteLength(call.body) };
    expect(view.routes.calls!.total).toEqual(both);
    expect(view.services.api!.total).toEqual(both);
    // The instance took one request, the held one: the queued call never reached it.
    expect(view.instances.api![address]!.total).toEqual({ requests: 1, errors: 0, bytesIn: 0, bytesOut: Buffer.byteLength(held.body) });
    const instance = await admin.instance('api', address);
    expect(instance).toMatchObject({ requests: 1, errors: 0 });
    // The route's 504 (the call's logged status) in the request metrics.
    const families = await admin.metrics();
    expect(sampleValue(families, 'switchboard_requests_total', { route: 'calls', service: 'api', status: '5xx' })).toBe(1);
    expect(sampleValue(families, 'switchboard_requests_total', { route: 'calls', service: 'api', status: '2xx' })).toBe(1);
    expect(await logOf(gateway.process)).toMatch(/"status":504,.*"errorClass":"deadline-exceeded"/);
  });
});

// A call whose deadline is already spent when its attempt would go out is answered by the gateway
// without sending anything: the access log still names the instance picked, the flow statistics
// give it neither the request nor its bytes.
describe('a gRPC call whose deadline is spent before its attempt is sent', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let address: string;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    address = `127.0.0.1:${backend.port}`;
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  api: { instances: ["${address}"], healthCheck: false }
routes:
  - { name: calls, path: /, service: api }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  const stats = async (): Promise<Stats> => (await (await admin.get('/api/stats')).json()) as Stats;

  it('counts it for the route and the service, as a 504, and gives the instance neither the request nor its bytes', async () => {
    const answered = await sendRequest(gateway.port, '/first');
    expect(answered.status).toBe(200);
    // One nanosecond: spent before the proxy picks an instance.
    const call = await sendRequest(gateway.port, '/svc.Echo/Say', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '1n', 'content-length': '5' }, body: 'hello' });
    expect(call.status).toBe(200);
    expect(call.headers['grpc-status']).toBe('4');
    const view = await waitFor(
      async () => {
        const current = await stats();
        return current.services.api?.total.requests === 2 ? current : undefined;
      },
      { timeoutMs: 15_000, message: 'both requests in /api/stats' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await stats())}\n${await logOf(gateway.process)}`);
    });
    const both = { requests: 2, errors: 1, bytesIn: 5, bytesOut: Buffer.byteLength(answered.body) + Buffer.byteLength(call.body) };
    expect(view.services.api!.total).toEqual(both);
    expect(view.routes.calls!.total).toEqual(both);
    // The instance took the first request only; the call's 5 bytes in are none of its bytes.
    expect(view.instances.api![address]!.total).toEqual({ requests: 1, errors: 0, bytesIn: 0, bytesOut: Buffer.byteLength(answered.body) });
    expect(await admin.instance('api', address)).toMatchObject({ requests: 1, errors: 0 });
    // The access log still names the instance picked, with its one attempt (its lines are written in batches, up to 25 ms after the answer).
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"status":504')), { timeoutMs: 5_000, message: 'the 504 in the access log' });
    expect(JSON.parse(line)).toMatchObject({ status: 504, errorClass: 'deadline-exceeded', upstream: address, attempts: 1 });
  });
});
