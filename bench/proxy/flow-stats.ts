// Flow statistics' cost, two ways in one run:
//  1. In process: RequestMetrics.request (the per-request hook) and InstanceTraffic.attempt with and
//     without flow statistics, alternating, ns per request (medians of rounds).
//  2. Over HTTP: the gateway as built now (flow statistics on) against a baseline commit without them
//     (BENCH_BASELINE, default main), identical configuration (access log off), wrk -c50 alternating.
// Run: npm run bench:flow   (env BENCH_BASELINE, BENCH_ROUNDS, BENCH_DURATION_S, BENCH_CONNECTIONS)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GatewayContext } from '../../gateway/context.ts';
import { FlowStats, InstanceTraffic, RequestMetrics } from '../../gateway/telemetry/index.ts';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { alternateRounds, median } from './rounds.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BASELINE_REF = process.env.BENCH_BASELINE ?? 'main';
const CALLS = 2_000_000;

/** ns per request of the per-request hooks, with and without flow statistics. */
function hookCost(): { without: number; with: number } {
  const contexts = ['a', 'b', 'c', 'd'].map((route) => ({
    routeName: route,
    service: 'user',
    startedAt: 0,
    request: { headers: { 'content-length': '120' } },
    outcome: { status: 200, attempts: 1, bytesOut: 512, errorClass: undefined, upstream: `10.0.0.${route.charCodeAt(0)}:80` },
    response: { headersSent: true, statusCode: 200 },
    get: () => undefined,
  })) as unknown as GatewayContext[];
  const run = (flow: FlowStats | undefined) => {
    const metrics = new RequestMetrics(flow);
    const traffic = new InstanceTraffic(metrics, flow);
    const started = process.hrtime.bigint();
    for (let index = 0; index < CALLS; index += 1) {
      const context = contexts[index & 3]!;
      traffic.attempt('user', context.outcome.upstream!, undefined);
      metrics.request(context);
      if ((index & 0xffff) === 0) flow?.roll(index >> 16);
    }
    return Number(process.hrtime.bigint() - started) / CALLS;
  };
  const without: number[] = [];
  const withFlow: number[] = [];
  run(undefined);
  run(new FlowStats());
  for (let round = 0; round < ROUNDS; round += 1) {
    without.push(run(undefined));
    withFlow.push(run(new FlowStats()));
  }
  return { without: median(without), with: median(withFlow) };
}

const hooks = hookCost();
const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-flow-'));
let baseline: Baseline | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' }, cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 120_000, message: `${args.join(' ')} on port ${port}` });
}

let rows;
try {
  const backends = [await freePort(), await freePort()];
  for (const backend of backends) await start(process.execPath, ['bench/proxy/backend.mjs', String(backend)], backend);
  const config = (port: number) => `listen: 127.0.0.1:${port}\nadmin: false\naccessLog: false\nservices:\n  nodeb: { balancer: round-robin, instances: [${backends.map((p) => `127.0.0.1:${p}`).join(', ')}] }\nroutes:\n  - { name: all, path: /, service: nodeb }\n`;
  const current = await freePort();
  const before = await freePort();
  await writeFile(join(dir, 'current.yaml'), config(current));
  await writeFile(join(dir, 'baseline.yaml'), config(before));
  await start(process.execPath, ['bin/switchboard.js', '--config', join(dir, 'current.yaml')], current);
  baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
  await start(process.execPath, [baseline.program, '--config', join(dir, 'baseline.yaml')], before);
  rows = await alternateRounds(
    [
      { name: 'switchboard (flow statistics)', url: `http://127.0.0.1:${current}/` },
      { name: `switchboard ${baseline.commit} (without)`, url: `http://127.0.0.1:${before}/` },
    ],
    { connections: CONNECTIONS, durationS: DURATION_S, warmupS: 2, rounds: ROUNDS },
  );
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await baseline?.remove();
  await rm(dir, { recursive: true, force: true });
}

const out = process.stdout;
out.write(`\nPer-request hooks in process (RequestMetrics.request + InstanceTraffic.attempt), ${CALLS} calls, median of ${ROUNDS} rounds\n\n`);
out.write(`${table(['hooks', 'ns/request'], [['without flow statistics', hooks.without.toFixed(1)], ['with flow statistics', hooks.with.toFixed(1)], ['added', (hooks.with - hooks.without).toFixed(1)]])}\n`);
out.write(`\nHTTP/1.1, Node backends: wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${DURATION_S}s alternating; medians\n\n`);
out.write(`${table(['target', 'req/s', 'p50 ms', 'p99 ms'], rows.map((row) => [row.name, row.requestsPerSecond.toFixed(0), row.p50Ms.toFixed(2), row.p99Ms.toFixed(2)]))}\n`);
out.write(`flow statistics: ${((rows[0]!.requestsPerSecond / rows[1]!.requestsPerSecond) * 100).toFixed(1)} % of the baseline's req/s\n`);
