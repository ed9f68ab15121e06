// /metrics is valid Prometheus text from the very first scrape: prom-client's event-loop-lag
// gauges are NaN until the loop has been sampled (and again after every collection until the next
// sample), which prom-client spells `Nan` and a strict scraper refuses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { PrometheusParseError } from '../harness/prometheus-text.ts';
import { startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** Scrapes at once: they are answered within a few milliseconds of each other, before the loop is sampled again. */
const CONCURRENT_SCRAPES = 8;

describe('/metrics right after start', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    backend = await startBackend({ name: 'plain' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
services:
  plain: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { path: /, service: plain }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('parses strictly on the first scrape and on scrapes that come together', async () => {
    // The first answer the admin listener gives is the first scrape: no read before it.
    // The first answer the admin listener gives is the first scrape; a parse error ends the wait (and fails), not a refused connection.
    const first = await waitFor(
      () => admin.metrics().then((families) => ({ families, error: undefined }), (error: unknown) => (error instanceof PrometheusParseError ? { families: undefined, error } : undefined)),
      { timeoutMs: 20_000, message: 'the admin listener answering /metrics' },
    );
    expect(first.error).toBeUndefined();
    expect(first.families!.has('nodejs_eventloop_lag_seconds')).toBe(true);
    for (let round = 0; round < 3; round += 1) {
      const scrapes = await Promise.all(Array.from({ length: CONCURRENT_SCRAPES }, () => admin.metrics()));
      for (const families of scrapes) expect(families.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    }
  });
});
