// TCP (L4) benchmark: `redis-benchmark -t ping,get,set` against one redis-server directly, through
// HAProxy in `mode tcp` (one thread, like one Switchboard process) and through a Switchboard tcp
// entry point, alternating the three within each round (A B C, then C B A…). The table reports the
// median requests per second over the rounds and the median of the per-round ratios, so that drift
// of a shared machine hits all three alike. Aim: Switchboard at least 0.7× HAProxy.
// Run: npm run bench:tcp   (env BENCH_ROUNDS, BENCH_REQUESTS, BENCH_CLIENTS; needs redis-server,
// redis-benchmark and haproxy)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, startLocalRedis, waitFor } from '../../test/harness/index.ts';
import { captureStdout } from '../lib/capture.ts';
import { table } from '../lib/stats.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const CONTENDERS = ['direct', 'haproxy', 'switchboard'] as const;
type Contender = (typeof CONTENDERS)[number];

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Requests per second by test name (PING_INLINE, PING_MBULK, SET, GET) from `redis-benchmark --csv`. */
async function redisBenchmark(port: number): Promise<Map<string, number>> {
  const csv = await captureStdout('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'ping,get,set', '-n', String(REQUESTS), '-c', String(CLIENTS), '--csv', '-q']);
  const rows = csv.trim().split('\n').slice(1).map((line) => line.split(',').map((cell) => cell.replaceAll('"', '')));
  return new Map(rows.map(([test, rps]) => [test!, Number(rps)]));
}

function startProcess(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  child.on('error', (error) => {
    process.stderr.write(`${command}: ${error.message}\n`);
  });
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-tcp-'));
  const redis = await startLocalRedis('bench-redis');
  const ports: Record<Contender, number> = { direct: redis.port, haproxy: await freePort(), switchboard: await freePort() };
  let haproxy: ChildProcess | undefined;
  let gateway: ChildProcess | undefined;
  try {
    await writeFile(
      join(dir, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 4000',
        '  nbthread 1',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 10m',
        '  timeout server 10m',
        'frontend redis',
        `  bind 127.0.0.1:${ports.haproxy}`,
        '  default_backend redis',
        'backend redis',
        `  server r1 127.0.0.1:${redis.port}`,
        '',
      ].join('\n'),
    );
    haproxy = startProcess('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')]);
    await writeFile(
      join(dir, 'gateway.yaml'),
      `entryPoints:\n  redis: { listen: "127.0.0.1:${ports.switchboard}", protocol: tcp, service: redis }\nadmin: false\naccessLog: false\nservices:\n  redis: { healthCheck: false, instances: ["127.0.0.1:${redis.port}"] }\n`,
    );
    gateway = startProcess(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', join(dir, 'gateway.yaml')], { SWITCHBOARD_LOG_LEVEL: 'warn' });
    await waitFor(async () => (await acceptsConnections(ports.haproxy)) && (await acceptsConnections(ports.switchboard)), { timeoutMs: 15_000, message: 'haproxy and switchboard to listen' });

    const results = new Map<Contender, Map<string, number>[]>(CONTENDERS.map((contender) => [contender, []]));
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = round % 2 === 0 ? CONTENDERS : [...CONTENDERS].reverse();
      for (const contender of order) results.get(contender)!.push(await redisBenchmark(ports[contender]));
      process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
    }

    const tests = [...results.get('direct')![0]!.keys()];
    const rows = tests.map((test) => {
      const rps = (contender: Contender) => results.get(contender)!.map((run) => run.get(test) ?? Number.NaN);
      const ratio = (a: Contender, b: Contender) => median(rps(a).map((value, round) => value / rps(b)[round]!));
      return [
        test,
        median(rps('direct')).toFixed(0),
        median(rps('haproxy')).toFixed(0),
        median(rps('switchboard')).toFixed(0),
        ratio('switchboard', 'haproxy').toFixed(2),
        ratio('switchboard', 'direct').toFixed(2),
        ratio('haproxy', 'direct').toFixed(2),
      ];
    });
    process.stdout.write(`redis-benchmark -n ${REQUESTS} -c ${CLIENTS}, ${ROUNDS} rounds, medians (req/s) and medians of per-round ratios\n`);
    process.stdout.write(`${table(['test', 'direct', 'haproxy (1 thread)', 'switchboard', 'sb/haproxy', 'sb/direct', 'haproxy/direct'], rows)}\n`);
  } finally {
    await Promise.all([stop(gateway), stop(haproxy)]);
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
