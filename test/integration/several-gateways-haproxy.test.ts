import { afterEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { logOf, startBackend, startGateway, startHaproxy, waitFor, type BackendProcess, type GatewayProcess, type HaproxyOptions, type HaproxyProcess } from '../harness/index.ts';

// HAProxy as the docs recommend it in front of several gateways: checks every 200 ms, down after
// 2 failures, up after 2 passes; 3 connection attempts per request, the last one on another server.
const HAPROXY: HaproxyOptions = { checkIntervalMs: 200, fall: 2, rise: 2, retries: 3 };
/** Sequential request loops of the load: also the most requests that can be in flight at once. */
const CONCURRENCY = 8;
/** Each request's own deadline; a request that takes longer counts as failed. */
const REQUEST_TIMEOUT_MS = 5_000;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup().catch(() => undefined)));
});

interface Outcome {
  readonly at: number;
  /** The backend that answered (each gateway routes to its own, so this names the gateway); undefined on failure. */
  readonly servedBy: string | undefined;
  readonly failure?: string;
}

/**
 * Keeps CONCURRENCY keep-alive loops of GET requests going through HAProxy until `stop()`;
 * records every outcome.
 */
function steadyLoad(url: string): { outcomes: Outcome[]; stop(): Promise<void> } {
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: CONCURRENCY });
  const outcomes: Outcome[] = [];
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const response = await request(`${url}/load`, { dispatcher: agent, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        const text = await response.body.text();
        if (response.statusCode === 200) outcomes.push({ at: Date.now(), servedBy: (JSON.parse(text) as { name: string }).name });
        else outcomes.push({ at: Date.now(), servedBy: undefined, failure: `status ${response.statusCode}: ${text.slice(0, 120)}` });
      } catch (error) {
        outcomes.push({ at: Date.now(), servedBy: undefined, failure: (error as Error).message });
      }
    }
  };
  const loops = Array.from({ length: CONCURRENCY }, loop);
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(loops);
      await agent.close();
    },
  };
}

/** Two gateways, each routing to its own backend (so a response names the gateway), behind HAProxy. */
async function twoGatewaysBehindHaproxy(): Promise<{ gateways: GatewayProcess[]; haproxy: HaproxyProcess }> {
  const backends: BackendProcess[] = await Promise.all([startBackend({ name: 'via-gw1' }), startBackend({ name: 'via-gw2' })]);
  cleanups.push(...backends.map((backend) => () => backend.process.kill()));
  const gateways = await Promise.all(
    backends.map((backend) =>
      startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
accessLog: false
shutdown: { drainTimeout: 10s }
services:
  app: { instances: [127.0.0.1:${backend.port}], healthCheck: false, outlierDetection: false }
routes:
  - { path: /, service: app }
`),
    ),
  );
  cleanups.push(...gateways.map((gateway) => () => gateway.process.kill()));
  const haproxy = await startHaproxy(
    gateways.map((gateway) => gateway.port),
    HAPROXY,
  );
  cleanups.push(() => haproxy.close());
  return { gateways, haproxy };
}

/** One line for the run's log: how many requests went through and how many failed. */
function report(what: string, outcomes: readonly Outcome[], failed: number): void {
  process.stdout.write(`haproxy failover (${what}): ${outcomes.length} requests, ${failed} failed, bound ${what === 'SIGKILL' ? CONCURRENCY : 0}\n`);
}

const served = (outcomes: readonly Outcome[], name: string) => outcomes.filter((outcome) => outcome.servedBy === name).length;

describe('two gateways behind a round-robin HAProxy', () => {
  it('loses at most the requests in flight when one gateway is killed under load (SIGKILL), and the other carries the traffic', async () => {
    const { gateways, haproxy } = await twoGatewaysBehindHaproxy();
    const load = steadyLoad(haproxy.url);
    try {
      // Round robin: both gateways serve before the kill.
      await waitFor(() => served(load.outcomes, 'via-gw1') >= 50 && served(load.outcomes, 'via-gw2') >= 50, { timeoutMs: 20_000, message: 'both gateways to serve 50 requests' });
      await gateways[1]!.process.kill();
      // HAProxy marks it down after `fall` failed checks; afterwards the other gateway serves everything.
      await waitFor(async () => /gw2 is DOWN/.test(await logOf(haproxy.process)), { timeoutMs: 15_000, message: 'HAProxy to mark gw2 down' });
      const downAt = load.outcomes.length;
      await waitFor(() => served(load.outcomes.slice(downAt), 'via-gw1') >= 200, { timeoutMs: 30_000, message: 'gw1 to serve 200 requests after gw2 is down' });
    } finally {
      await load.stop();
    }
    const failures = load.outcomes.filter((outcome) => outcome.failure !== undefined);
    // The bound: a request sent to the dead gateway after the kill meets a refused connection, which
    // HAProxy retries on the other gateway (retry-on conn-failure + redispatch), and so does one on a
    // connection closed without an answer (empty-response). What can fail is only a request that was
    // in flight inside the killed gateway when it died and that HAProxy cannot classify as retryable:
    // at most one per load loop, i.e. CONCURRENCY.
    expect(failures.length, JSON.stringify(failures.slice(0, 5))).toBeLessThanOrEqual(CONCURRENCY);
    const lastGw2 = load.outcomes.findLastIndex((outcome) => outcome.servedBy === 'via-gw2');
    // Nothing reaches the dead gateway once HAProxy has noticed: gw2 served nothing in the last 200 answers.
    expect(load.outcomes.length - lastGw2).toBeGreaterThan(200);
    report('SIGKILL', load.outcomes, failures.length);
  });

  it('loses nothing when one gateway is stopped with SIGTERM under load (drain + health checks)', async () => {
    const { gateways, haproxy } = await twoGatewaysBehindHaproxy();
    const load = steadyLoad(haproxy.url);
    let exit: { code: number | null } | undefined;
    try {
      await waitFor(() => served(load.outcomes, 'via-gw1') >= 50 && served(load.outcomes, 'via-gw2') >= 50, { timeoutMs: 20_000, message: 'both gateways to serve 50 requests' });
      process.kill(gateways[1]!.process.pid!, 'SIGTERM');
      exit = await gateways[1]!.process.waitForExit(20_000);
      await waitFor(async () => /gw2 is DOWN/.test(await logOf(haproxy.process)), { timeoutMs: 15_000, message: 'HAProxy to mark gw2 down' });
      const downAt = load.outcomes.length;
      await waitFor(() => served(load.outcomes.slice(downAt), 'via-gw1') >= 200, { timeoutMs: 30_000, message: 'gw1 to serve 200 requests after gw2 is down' });
    } finally {
      await load.stop();
    }
    const failures = load.outcomes.filter((outcome) => outcome.failure !== undefined);
    report('SIGTERM', load.outcomes, failures.length);
    expect(failures, JSON.stringify(failures.slice(0, 5))).toEqual([]);
    expect(exit?.code).toBe(0);
  });
});
