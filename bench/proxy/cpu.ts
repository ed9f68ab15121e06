// CPU time per request of each proxy process, side by side in one run: the bare undici proxy,
// Switchboard from this checkout (with and without its access log) and, with BENCH_BASELINE=<ref>, Switchboard at that commit; all in
// front of the same two Node backends (bench/proxy/backend.mjs). Rounds alternate the contenders
// (the order rotating), and each run reads the proxy's user and system CPU from /proc/<pid>/stat
// around wrk: on a shared machine, CPU per request moves far less than req/s does.
// With BENCH_POLICY=1 it adds traffic-policy rows (issue 13): the access-log-off gateway with a local rate limiter, with a
// breaker, and with a Redis rate limiter (a redis-server from Debian), each against the plain one.
// Run: npm run bench:proxy-cpu   (env BENCH_DURATION_S, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_BASELINE, BENCH_POLICY)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { startLocalRedis, type LocalRedis } from '../../test/harness/redis-local.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { median } from './rounds.ts';
import { runWrk } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BASELINE_REF = process.env.BENCH_BASELINE;
const WARMUP_S = 2;
const POLICY = process.env.BENCH_POLICY === '1';
/** A limit no benchmark reaches: the policy rows measure the cost of checking, not of refusing. */
const GENEROUS = 'average: 10000000, burst: 10000000';

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-cpu-'));
let baseline: Baseline | undefined;
let redis: LocalRedis | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** Starts a program (stdout read and discarded, as a log collector would) and waits for `port`. */
async function start(command: string, args: string[], port: number): Promise<number> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' }, cwd: REPO_ROOT });
  child.stdout!.resume();
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${command} ${args.join(' ')} on port ${port}` });
  return child.pid!;
}

/** User and system CPU of `pid` in ms (fields 14 and 15 of /proc/<pid>/stat, clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<{ user: number; sys: number }> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ');
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

interface Run {
  rps: number;
  user: number;
  sys: number;
}

const backends = [await freePort(), await freePort()];
const instances = backends.map((port) => `127.0.0.1:${port}`).join(', ');
const contenders: Array<{ name: string; port: number; pid: number }> = [];
try {
  for (const backend of backends) await start(process.execPath, ['bench/proxy/backend.mjs', String(backend)], backend);
  const barePort = await freePort();
  contenders.push({ name: 'bare undici proxy', port: barePort, pid: await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(barePort), ...backends.map(String)], barePort) });
  const gateway = async (name: string, program: string, accessLog = true, policy: { top?: string; service?: string; middleware?: string } = {}) => {
    const port = await freePort();
    const file = join(dir, `${contenders.length}.yaml`);
    await writeFile(
      file,
      `listen: 127.0.0.1:${port}\nadmin: false\naccessLog: ${accessLog}\n${policy.top ?? ''}\nservices:\n  nodeb: { balancer: round-robin, instances: [${instances}]${policy.service ? `, ${policy.service}` : ''} }\n` +
        (policy.middleware ? `middlewares:\n  policy: { ${policy.middleware} }\nroutes:\n  - { path: /, service: nodeb, middlewares: [policy] }\n` : `routes:\n  - { path: /, service: nodeb }\n`),
    );
    contenders.push({ name, port, pid: await start(process.execPath, [program, '--config', file], port) });
  };
  await gateway('switchboard (this checkout)', 'bin/switchboard.js');
  await gateway('switchboard (access log off)', 'bin/switchboard.js', false);
  if (POLICY) {
    redis = await startLocalRedis('bench-cpu-redis');
    await gateway('switchboard (access log off) + local rate limit', 'bin/switchboard.js', false, { middleware: `rateLimit: { ${GENEROUS}, key: client-ip }` });
    await gateway('switchboard (access log off) + breaker', 'bin/switchboard.js', false, { service: 'circuitBreaker: { requestVolumeThreshold: 1000000, errorPercentThreshold: 100 }' });
    await gateway('switchboard (access log off) + redis rate limit', 'bin/switchboard.js', false, {
      top: `redis: { url: "${redis.url}", timeout: 1s }`,
      middleware: `rateLimit: { ${GENEROUS}, key: client-ip, policy: redis }`,
    });
  }
  if (BASELINE_REF) {
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
    await gateway(`switchboard ${baseline.commit} (baseline)`, baseline.program);
  }
  const wrk = { threads: 1, connections: CONNECTIONS };
  for (const { port } of contenders) await runWrk(`http://127.0.0.1:${port}/`, { ...wrk, durationS: WARMUP_S });
  const runs = contenders.map((): Run[] => []);
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let step = 0; step < contenders.length; step += 1) {
      const index = (step + round) % contenders.length;
      const { port, pid } = contenders[index]!;
      const before = await cpuMs(pid);
      const result = await runWrk(`http://127.0.0.1:${port}/`, { ...wrk, durationS: DURATION_S });
      const after = await cpuMs(pid);
      const requests = result.requestsPerSecond * DURATION_S;
      runs[index]!.push({ rps: result.requestsPerSecond, user: ((after.user - before.user) * 1_000) / requests, sys: ((after.sys - before.sys) * 1_000) / requests });
    }
  }
  const bareUser = median(runs[0]!.map((run) => run.user + run.sys));
  process.stdout.write(
    `\nProxy CPU per request: wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s × ${ROUNDS} rounds (alternating), two Node backends; medians\n\n${table(
      ['proxy', 'req/s', 'user µs/req', 'sys µs/req', 'total µs/req', '× bare (CPU)', 'per round user/sys'],
      contenders.map(({ name }, index) => {
        const rows = runs[index]!;
        const total = median(rows.map((run) => run.user + run.sys));
        return [
          name,
          median(rows.map((run) => run.rps)).toFixed(0),
          median(rows.map((run) => run.user)).toFixed(1),
          median(rows.map((run) => run.sys)).toFixed(1),
          total.toFixed(1),
          (total / bareUser).toFixed(2),
          rows.map((run) => `${run.user.toFixed(0)}/${run.sys.toFixed(0)}`).join(' '),
        ];
      }),
    )}\n`,
  );
  // Each policy row against the plain access-log-off gateway of the same rounds: CPU per request, and req/s.
  const plain = contenders.findIndex(({ name }) => name === 'switchboard (access log off)');
  const cpuOf = (index: number) => median(runs[index]!.map((run) => run.user + run.sys));
  const rpsOf = (index: number) => median(runs[index]!.map((run) => run.rps));
  contenders.forEach(({ name }, index) => {
    if (!name.startsWith('switchboard (access log off) + ')) return;
    const what = name.slice('switchboard (access log off) + '.length);
    process.stdout.write(`${what} cost: ${((cpuOf(index) / cpuOf(plain) - 1) * 100).toFixed(1)} % of CPU per request (${cpuOf(index).toFixed(1)} against ${cpuOf(plain).toFixed(1)} µs), ${((1 - rpsOf(index) / rpsOf(plain)) * 100).toFixed(1)} % of req/s\n`);
  });
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await baseline?.remove();
  await redis?.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
