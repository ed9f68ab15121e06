// Workers benchmark: Switchboard with 1 process beside 2 workers (node:cluster round-robin, the
// default: the primary accepts and hands connections over in turn; and SCHED_NONE: the workers
// accept on the shared socket themselves), same two upstreams as
// bench/proxy/index.ts, wrk from outside. Contenders alternate within each round (A B C, then
// C B A…) and the table reports medians over rounds. Besides req/s it prints requests per
// CPU-second of the gateway's whole process tree (primary + workers, /proc/<pid>/stat utime+stime),
// the figure that says what more cores buy: when it stays level from 1 to 2 workers, throughput
// grows with the cores given to the gateway until the upstreams or the load generator saturate.
// Run: npm run bench:workers   (env BENCH_DURATION_S, BENCH_CONNECTIONS, BENCH_ROUNDS; needs wrk)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { descendantsOf } from '../../test/harness/process-tree.ts';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { runWrk } from './wrk.ts';

/** Settings of `runWorkerRows`. */
export interface WorkerBenchOptions {
  /** The two upstreams' ports (bench/proxy/backend.mjs on 127.0.0.1). */
  readonly upstreams: readonly [number, number];
  readonly durationS: number;
  readonly connections: number;
  readonly rounds: number;
}

/** One contender's medians over the rounds. */
export interface WorkerRow {
  readonly name: string;
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  /** CPU seconds of the gateway's process tree per wall second (1.0 = one core busy). */
  readonly cores: number;
  /** The primary's share of those, with workers; the whole process with one. */
  readonly primaryCores: number;
  readonly requestsPerCpuSecond: number;
  readonly errors: number;
}

const CONTENDERS = [
  { name: 'switchboard, 1 process', workers: 1, env: {} },
  { name: 'switchboard, 2 workers (round-robin, default)', workers: 2, env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } },
  { name: 'switchboard, 2 workers (SCHED_NONE)', workers: 2, env: { NODE_CLUSTER_SCHED_POLICY: 'none' } },
] as const;
const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime of `pid` in seconds; 0 when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** CPU seconds of `pid` and of its node children (the workers), read separately. */
function treeCpu(pid: number): { primary: number; total: number } {
  const primary = cpuSeconds(pid);
  const children = descendantsOf(pid).filter((record) => record.command.includes('switchboard'));
  return { primary, total: primary + children.reduce((sum, child) => sum + cpuSeconds(child.pid), 0) };
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/**
 * Starts the three gateways of `CONTENDERS` against `options.upstreams`, measures each with wrk in
 * every round (order alternating), stops them, and returns one row per contender.
 */
export async function runWorkerRows(options: WorkerBenchOptions): Promise<WorkerRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-workers-'));
  const children: ChildProcess[] = [];
  try {
    const gateways = [];
    for (const contender of CONTENDERS) {
      const port = await freePort();
      const configPath = join(dir, `gateway-${port}.yaml`);
      await writeFile(
        configPath,
        `listen: 127.0.0.1:${port}\nadmin: false\nworkers: ${contender.workers}\nservices:\n  bench: { balancer: round-robin, instances: [127.0.0.1:${options.upstreams[0]}, 127.0.0.1:${options.upstreams[1]}] }\nroutes:\n  - { path: /, service: bench }\n`,
      );
      const child = spawn(process.execPath, ['bin/switchboard.js', '--config', configPath], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn', ...contender.env },
        cwd: REPO_ROOT,
      });
      children.push(child);
      await waitFor(() => acceptsConnections(port), { timeoutMs: 30_000, message: `${contender.name} on port ${port}` });
      gateways.push({ ...contender, url: `http://127.0.0.1:${port}/`, pid: child.pid! });
    }
    // Every worker listens once the port accepts on all of them; a short warm-up run each.
    const wrk = { threads: 1, connections: options.connections };
    for (const gateway of gateways) await runWrk(gateway.url, { ...wrk, durationS: 2 });
    const samples = gateways.map(() => [] as { rps: number; p99: number; cores: number; primaryCores: number; perCpu: number; errors: number }[]);
    for (let round = 0; round < options.rounds; round += 1) {
      const order = round % 2 === 0 ? gateways.map((_, index) => index) : gateways.map((_, index) => gateways.length - 1 - index);
      for (const index of order) {
        const gateway = gateways[index]!;
        const before = treeCpu(gateway.pid);
        const started = process.hrtime.bigint();
        const result = await runWrk(gateway.url, { ...wrk, durationS: options.durationS });
        const wallS = Number(process.hrtime.bigint() - started) / 1e9;
        const after = treeCpu(gateway.pid);
        const cpu = after.total - before.total;
        samples[index]!.push({
          rps: result.requestsPerSecond,
          p99: result.p99Ms,
          cores: cpu / wallS,
          primaryCores: (after.primary - before.primary) / wallS,
          perCpu: (result.requestsPerSecond * options.durationS) / cpu,
          errors: result.errors,
        });
      }
    }
    return gateways.map((gateway, index) => {
      const runs = samples[index]!;
      return {
        name: gateway.name,
        requestsPerSecond: median(runs.map((run) => run.rps)),
        p99Ms: median(runs.map((run) => run.p99)),
        cores: median(runs.map((run) => run.cores)),
        primaryCores: median(runs.map((run) => run.primaryCores)),
        requestsPerCpuSecond: median(runs.map((run) => run.perCpu)),
        errors: runs.reduce((sum, run) => sum + run.errors, 0),
      };
    });
  } finally {
    children.forEach((child) => child.kill('SIGTERM'));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rows as a table, with each row's req/s and requests per CPU-second relative to the first (1 process). */
export function workerTable(rows: readonly WorkerRow[]): string {
  const first = rows[0]!;
  return table(
    ['target', 'req/s', '× 1 process', 'p99 ms', 'cores used', 'primary cores', 'req per CPU-s', '× 1 process', 'errors'],
    rows.map((row) => [
      row.name,
      row.requestsPerSecond.toFixed(0),
      (row.requestsPerSecond / first.requestsPerSecond).toFixed(2),
      row.p99Ms.toFixed(2),
      row.cores.toFixed(2),
      row.primaryCores.toFixed(2),
      row.requestsPerCpuSecond.toFixed(0),
      (row.requestsPerCpuSecond / first.requestsPerCpuSecond).toFixed(2),
      String(row.errors),
    ]),
  );
}

async function main(): Promise<void> {
  const durationS = Number(process.env.BENCH_DURATION_S ?? 8);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const upstreams = [await freePort(), await freePort()] as const;
  const backends = upstreams.map((port) => spawn(process.execPath, ['bench/proxy/backend.mjs', String(port)], { stdio: 'ignore', cwd: REPO_ROOT }));
  process.on('exit', () => backends.forEach((child) => child.kill('SIGKILL')));
  for (const port of upstreams) await waitFor(() => acceptsConnections(port), { timeoutMs: 10_000, message: `upstream on ${port}` });
  const rows = await runWorkerRows({ upstreams, durationS, connections, rounds });
  process.stdout.write(`\nWorkers: wrk -t1 -c${connections} -d${durationS}s, same two upstreams, medians of ${rounds} alternating rounds, ${CLOCK_TICKS_PER_S} ticks/s\n\n${workerTable(rows)}\n`);
  process.exit(0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
