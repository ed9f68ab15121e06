import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue, type PrometheusFamily } from '../harness/prometheus-text.ts';

type Families = ReadonlyMap<string, PrometheusFamily>;

const DEADLINE_MS = 20_000;

/**
 * With `workers`, a worker that does not answer a scrape (its event loop stopped, and no watchdog
 * to replace it) is summed in `/metrics` as its last answer gave it: left out, the gateway's
 * counters dropped by its share for that scrape, which Prometheus reads as a reset. Its gauges
 * cannot be, which `switchboard_workers_not_answering` says. A worker killed (SIGKILL) leaves its
 * last answer in the sum for good, beside its replacement's.
 */
describe('a gateway with workers scraped while one of them is stopped, or killed', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let stopped: number | undefined;

  const workers = async () => (await (await admin.get('/api/workers')).json()) as { slot: number; pid: number; state: string; requests: number }[];
  const requestsTotal = async () => (await scrape()).requests;
  /** One scrape: the requests counted, and how many workers it says did not answer. */
  const scrape = async () => summary(await admin.metrics());
  const summary = (families: Families) => ({
    requests: families.get('switchboard_requests_total')?.samples.reduce((sum, sample) => sum + sample.value, 0) ?? 0,
    notAnswering: sampleValue(families, 'switchboard_workers_not_answering'),
  });
  /** Requests on fresh connections (each lands on the next worker) until every worker served one since `before`. */
  const serveOnEveryWorker = async (before: readonly { requests: number }[] = []) => {
    await waitFor(
      async () => {
        expect((await fetch(`${gateway.url}/hello`, { headers: { connection: 'close' } })).status).toBe(200);
        return (await workers()).every((worker, index) => worker.requests > (before[index]?.requests ?? 0));
      },
      { timeoutMs: DEADLINE_MS, message: 'every worker to serve a request' },
    );
  };
  /** Waits for a scrape every worker answered, with every request they served (as /api/workers counts them). */
  const scrapeOfAll = async () =>
    waitFor(
      async () => {
        const total = await requestsTotal();
        return total === (await workers()).reduce((sum, worker) => sum + worker.requests, 0) ? total : undefined;
      },
      { timeoutMs: DEADLINE_MS, message: '/metrics to count every request both workers served' },
    );

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

  it("keeps the stopped worker's counts in the sum, so no counter goes back, and says it did not answer", async () => {
    await serveOnEveryWorker();
    // A scrape both workers answered, with every request they served.
    const served = await scrapeOfAll();
    expect((await scrape()).notAnswering).toBe(0);
    stopped = (await workers())[0]!.pid;
    process.kill(stopped, 'SIGSTOP');
    // The scrape waits for the stopped worker's answer, in vain, then sums its last one: no request
    // came since, so exactly what both served (more would be the stopped worker's counts twice).
    // Its gauges are missing from that sum, which the gateway says.
    expect(await scrape()).toEqual({ requests: served, notAnswering: 1 });
    process.kill(stopped, 'SIGCONT');
    stopped = undefined;
    expect(await scrape()).toEqual({ requests: served, notAnswering: 0 });
  });

  it("keeps a killed worker's last scraped counts in every counter and histogram series once it is replaced", async () => {
    const before = await workers();
    await serveOnEveryWorker(before);
    const served = await scrapeOfAll();
    const cumulative = (families: Families) =>
      new Map(
        [...families.values()]
          .filter((family) => family.type === 'counter' || family.type === 'histogram')
          .flatMap((family) => family.samples.map((sample) => [`${sample.name}${JSON.stringify(sample.labels)}`, sample.value] as const)),
      );
    const counted = cumulative(await admin.metrics());
    const victim = (await workers())[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await waitFor(
      async () => {
        const slot = (await workers())[0]!;
        return slot.state === 'listening' && slot.pid !== victim.pid;
      },
      { timeoutMs: DEADLINE_MS, message: 'a new worker in slot 0' },
    );
    // The replacement answers from zero; its predecessor's last answer stays in the sum, series by
    // series: a counter or a bucket that went back would read as a reset to Prometheus.
    const families = await admin.metrics();
    const after = cumulative(families);
    const lower = [...counted].filter(([key, value]) => !((after.get(key) ?? -1) >= value)).map(([key, value]) => `${key}: ${value} -> ${after.get(key)}`);
    expect(lower).toEqual([]);
    expect(summary(families)).toEqual({ requests: served, notAnswering: 0 });
  });
});
