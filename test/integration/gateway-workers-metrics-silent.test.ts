import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

const DEADLINE_MS = 20_000;

/**
 * With `workers`, a worker that does not answer a scrape (its event loop stopped, and no watchdog
 * to replace it) is summed in `/metrics` as its last answer gave it: left out, the gateway's
 * counters dropped by its share for that scrape, which Prometheus reads as a reset.
 */
describe('a gateway with workers scraped while one of them is stopped', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let stopped: number | undefined;

  const workers = async () => (await (await admin.get('/api/workers')).json()) as { slot: number; pid: number; state: string; requests: number }[];
  const requestsTotal = async () => (await admin.metrics()).get('switchboard_requests_total')?.samples.reduce((sum, sample) => sum + sample.value, 0) ?? 0;

  beforeAll(async () => {
    backend = await startBackend({ name: 'silent' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
# No watchdog: the stopped worker stays, silent, for as long as the test needs.
workers: { count: 2, heartbeatTimeout: 0 }
services:
  user: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { path: /, service: user }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: DEADLINE_MS, message: 'both workers to listen' });
  }, 60_000);

  afterAll(async () => {
    if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it("keeps the stopped worker's counts in the sum, so no counter goes back", async () => {
    // Each connection lands on the next worker: requests on fresh connections until both served some.
    await waitFor(
      async () => {
        expect((await fetch(`${gateway.url}/hello`, { headers: { connection: 'close' } })).status).toBe(200);
        return (await workers()).every((worker) => worker.requests > 0);
      },
      { timeoutMs: DEADLINE_MS, message: 'both workers to serve a request' },
    );
    // A scrape both workers answered, with every request they served.
    const served = await waitFor(
      async () => {
        const total = await requestsTotal();
        return total === (await workers()).reduce((sum, worker) => sum + worker.requests, 0) ? total : undefined;
      },
      { timeoutMs: DEADLINE_MS, message: '/metrics to count every request both workers served' },
    );
    stopped = (await workers())[0]!.pid;
    process.kill(stopped, 'SIGSTOP');
    // The scrape waits for the stopped worker's answer, in vain, then sums its last one: no request
    // came since, so exactly what both served (more would be the stopped worker's counts twice).
    expect(await requestsTotal()).toBe(served);
    process.kill(stopped, 'SIGCONT');
    stopped = undefined;
    expect(await requestsTotal()).toBe(served);
  });
});
