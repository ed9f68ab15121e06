import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusingPort, logOf, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

const sha256 = (key: string) => `sha256:${createHash('sha256').update(key).digest('hex')}`;
const ALICE_KEY = 'alice-flow-key-5b2e9c1d7a4f';
const BOB_KEY = 'bob-flow-key-8d3f6a2c1e9b';
/** Rolls run once a second and workers send theirs to the primary at the same pace. */
const SETTLE_MS = 15_000;

interface Counts {
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}
interface Summary {
  total: Counts;
  lastMinute: Counts;
  hour: Counts | null;
  day: Counts | null;
}
interface Stats {
  store: { kind: string; error: string | null };
  services: Record<string, Summary>;
  routes: Record<string, Summary>;
  consumers: Record<string, Summary>;
  instances: Record<string, Record<string, Summary>>;
}
interface Series {
  window: number;
  requests: number[];
  instances: Record<string, { requests: number[]; errors: number[] }>;
}

const config = (backend: number, dead: number, workers: number) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
workers: ${workers}
services:
  api: { instances: [127.0.0.1:${backend}], healthCheck: false }
  dead: { instances: [127.0.0.1:${dead}], healthCheck: false }
consumers:
  alice: { keys: ["${sha256(ALICE_KEY)}"] }
  bob: { keys: ["${sha256(BOB_KEY)}"] }
middlewares:
  keys: { keyAuth: { header: X-API-Key } }
routes:
  - { name: public, path: /public, service: api }
  - { name: keyed, path: /keyed, service: api, middlewares: [keys] }
  - { name: broken, path: /broken, service: dead, retries: { attempts: 1 } }
`;

/**
 * Sends a known mix: 7 plain GETs and 4 POSTs with 100-byte bodies on `public`, 5 requests of
 * alice and 2 of bob and 1 without a key (401) on `keyed`, 3 on `broken` (its only instance
 * refuses connections: 502). Returns the response body bytes per route.
 */
async function sendKnownTraffic(port: number): Promise<Record<string, number>> {
  const bytes: Record<string, number> = { public: 0, keyed: 0, broken: 0 };
  const count = (route: string, body: string) => (bytes[route]! += Buffer.byteLength(body));
  for (let index = 0; index < 7; index += 1) count('public', (await sendRequest(port, `/public/get-${index}`)).body);
  for (let index = 0; index < 4; index += 1) {
    const answer = await sendRequest(port, '/public/upload', { method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': '100' }, body: 'x'.repeat(100) });
    expect(answer.status).toBe(200);
    count('public', answer.body);
  }
  for (const [key, times] of [[ALICE_KEY, 5], [BOB_KEY, 2]] as const) {
    for (let index = 0; index < times; index += 1) {
      const answer = await sendRequest(port, '/keyed/x', { headers: { 'x-api-key': key } });
      expect(answer.status).toBe(200);
      count('keyed', answer.body);
    }
  }
  const refused = await sendRequest(port, '/keyed/x');
  expect(refused.status).toBe(401);
  count('keyed', refused.body);
  for (let index = 0; index < 3; index += 1) {
    const answer = await sendRequest(port, '/broken/x');
    expect(answer.status).toBe(502);
    count('broken', answer.body);
  }
  return bytes;
}

async function stats(adminPort: number): Promise<Stats> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/api/stats`);
  expect(response.status).toBe(200);
  return (await response.json()) as Stats;
}

describe.each([1, 2])('flow statistics with workers: %i', (workers) => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let adminPort: number;
  let deadPort: number;
  let bytes: Record<string, number>;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    deadPort = await refusingPort();
    gateway = await startGateway(config(backend.port, deadPort, workers));
    adminPort = gateway.adminPort;
    // The port accepts once the first worker listens; the traffic must meet every worker.
    if (workers > 1) {
      await waitFor(
        async () => {
          const list = (await (await fetch(`http://127.0.0.1:${adminPort}/api/workers`)).json()) as { state: string }[];
          return list.length === workers && list.every((worker) => worker.state === 'listening') ? true : undefined;
        },
        { timeoutMs: 20_000, message: 'every worker listening' },
      );
    }
    bytes = await sendKnownTraffic(gateway.port);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('counts exactly the requests, errors and bytes of every service, route, consumer and instance', async () => {
    const expected = {
      public: { requests: 11, errors: 0, bytesIn: 400, bytesOut: bytes.public },
      keyed: { requests: 8, errors: 0, bytesIn: 0, bytesOut: bytes.keyed },
      broken: { requests: 3, errors: 3, bytesIn: 0, bytesOut: bytes.broken },
    };
    // The last roll may still be on its way (a second, plus the worker's message): poll until the totals are complete.
    const view = await waitFor(
      async () => {
        const current = await stats(adminPort);
        return current.services.dead?.total.requests === 3 && current.services.api?.total.requests === 19 ? current : undefined;
      },
      { timeoutMs: SETTLE_MS, message: 'every request in /api/stats' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await stats(adminPort))}\n${await logOf(gateway.process)}`);
    });
    expect(view.routes.public!.total).toEqual(expected.public);
    expect(view.routes.keyed!.total).toEqual(expected.keyed);
    expect(view.routes.broken!.total).toEqual(expected.broken);
    expect(view.services.api!.total).toEqual({ requests: 19, errors: 0, bytesIn: 400, bytesOut: bytes.public! + bytes.keyed! });
    expect(view.services.dead!.total).toEqual(expected.broken);
    expect(view.consumers.alice!.total.requests).toBe(5);
    expect(view.consumers.bob!.total.requests).toBe(2);
    expect(Object.keys(view.consumers).sort()).toEqual(['alice', 'bob']);
    // The refused request never reached the backend: 18 attempts on the api instance, 3 failed attempts on the dead one.
    expect(view.instances.api![`127.0.0.1:${backend.port}`]!.total).toMatchObject({ requests: 18, errors: 0, bytesIn: 400 });
    expect(view.instances.dead![`127.0.0.1:${deadPort}`]!.total).toMatchObject({ requests: 3, errors: 3 });
    // The store's calendar totals hold the same counts (unless the test straddled an hour).
    expect(view.store).toEqual({ kind: 'memory', error: null });
    expect(view.services.api!.hour!.requests).toBeGreaterThan(0);
    expect(view.services.api!.hour!.requests).toBeLessThanOrEqual(19);
    expect(view.services.api!.day!.requests).toBeGreaterThanOrEqual(view.services.api!.hour!.requests);
    // Sent seconds ago, so all inside the last minute.
    expect(view.services.api!.lastMinute).toEqual(view.services.api!.total);
  });

  it('serves the per-second series of a service by instance, whose sum is the total', async () => {
    const response = await fetch(`http://127.0.0.1:${adminPort}/api/stats/services/api?window=5m`);
    expect(response.status).toBe(200);
    const series = (await response.json()) as Series;
    expect(series.window).toBe(300);
    expect(series.requests).toHaveLength(300);
    expect(series.requests.reduce((sum, value) => sum + value, 0)).toBe(19);
    expect(series.instances[`127.0.0.1:${backend.port}`]!.requests.reduce((sum, value) => sum + value, 0)).toBe(18);
    expect((await fetch(`http://127.0.0.1:${adminPort}/api/stats/services/api?window=1h`)).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${adminPort}/api/stats/services/nothing`)).status).toBe(404);
  });

  if (workers === 2) {
    it('adds both workers’ counts up in the primary', async () => {
      // Each request came on a fresh connection, so both workers served some: the totals above are sums.
      // Workers report their counts in batches, so the list is polled until both batches arrived.
      const serving = await waitFor(
        async () => {
          const list = (await (await fetch(`http://127.0.0.1:${adminPort}/api/workers`)).json()) as { requests: number }[];
          const busy = list.filter((worker) => worker.requests > 0);
          return busy.length === 2 ? busy : undefined;
        },
        { timeoutMs: 10_000, message: 'both workers to report requests' },
      );
      expect(serving).toHaveLength(2);
    });
  }
});
