// Access-control cost: one gateway, one upstream, four routes measured side by side in one run:
// no auth, key auth (header), JWT ES256 with the verdict cache (default) and JWT ES256 with the
// cache off (every request verifies the signature). Rounds alternate the routes, so a drift of
// the shared machine spreads over all of them. Two measures per run: req/s (its ratio to the
// no-auth run of the same round), and the gateway process's CPU time per request (from
// /proc/<pid>/stat), which other load on a shared machine disturbs far less than throughput.
// The table shows medians over the rounds; the cost per request is CPU µs/req minus no auth's.
// Run: npm run bench:auth   (env BENCH_DURATION_S per run, BENCH_ROUNDS, BENCH_CONNECTIONS; needs wrk)
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP_S = 2;
const API_KEY = 'bench-key-0123456789abcdef';

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-auth-'));
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env }, cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 30_000, message: `${command} on port ${port}` });
  return child;
}

/** User + system CPU time of process `pid` in ms (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 10 ms). */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** One measured run: wrk's summary and the gateway's CPU µs per request during it. */
interface Run extends WrkResult {
  cpuUsPerRequest: number;
}

const [upstream, gateway] = (await Promise.all([freePort(), freePort()])) as [number, number];
const keys = await generateKeyPair('ES256');
await writeFile(join(dir, 'es256.pem'), await exportSPKI(keys.publicKey));
const token = await new SignJWT({ role: 'bench' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('bench').setSubject('bench-user').setAudience('switchboard').setExpirationTime('2h').sign(keys.privateKey);
const jwt = (cacheSize: number) => `{ jwtAuth: { algorithms: [ES256], publicKeyFiles: [${join(dir, 'es256.pem')}], issuer: bench, audience: switchboard, claimsToHeaders: { sub: X-User }, cacheSize: ${cacheSize} } }`;

const contenders: Array<{ name: string; path: string; headers: Record<string, string> }> = [
  { name: 'no auth', path: '/open', headers: {} },
  { name: 'key auth (X-API-Key)', path: '/key', headers: { 'x-api-key': API_KEY } },
  { name: 'JWT ES256 (verdict cache)', path: '/jwt', headers: { authorization: `Bearer ${token}` } },
  { name: 'JWT ES256 (cache off)', path: '/jwt-nocache', headers: { authorization: `Bearer ${token}` } },
];
const runs = new Map<string, Run[]>(contenders.map(({ name }) => [name, []]));
/** Per round, each route's req/s over the no-auth route's in that round. */
const ratios = new Map<string, number[]>(contenders.map(({ name }) => [name, []]));

try {
  await start(process.execPath, ['bench/proxy/backend.mjs', String(upstream)], upstream);
  await writeFile(
    join(dir, 'gateway.yaml'),
    `listen: 127.0.0.1:${gateway}
admin: false
services:
  bench: { instances: [127.0.0.1:${upstream}] }
consumers:
  bench: { keys: ["sha256:${createHash('sha256').update(API_KEY).digest('hex')}"] }
middlewares:
  key: { keyAuth: { header: X-API-Key } }
  jwt: ${jwt(10_000)}
  jwt-nocache: ${jwt(0)}
routes:
  - { path: /open, service: bench }
  - { path: /key, service: bench, middlewares: [key] }
  - { path: /jwt, service: bench, middlewares: [jwt] }
  - { path: /jwt-nocache, service: bench, middlewares: [jwt-nocache] }
`,
  );
  const gatewayProcess = await start(process.execPath, ['bin/switchboard.js', '--config', join(dir, 'gateway.yaml')], gateway, { SWITCHBOARD_LOG_LEVEL: 'warn' });
  const pid = gatewayProcess.pid!;
  const wrk = { threads: 1, connections: CONNECTIONS };
  for (const { path, headers } of contenders) await runWrk(`http://127.0.0.1:${gateway}${path}`, { ...wrk, headers, durationS: WARMUP_S });
  for (let round = 0; round < ROUNDS; round += 1) {
    // Each round starts with a different route, so none is always measured first.
    const roundRps = new Map<string, number>();
    for (let index = 0; index < contenders.length; index += 1) {
      const { name, path, headers } = contenders[(index + round) % contenders.length]!;
      const before = await cpuMs(pid);
      const result = await runWrk(`http://127.0.0.1:${gateway}${path}`, { ...wrk, headers, durationS: DURATION_S });
      const cpu = (await cpuMs(pid)) - before;
      runs.get(name)!.push({ ...result, cpuUsPerRequest: (cpu * 1_000) / (result.requestsPerSecond * DURATION_S) });
      roundRps.set(name, result.requestsPerSecond);
    }
    for (const { name } of contenders) ratios.get(name)!.push(roundRps.get(name)! / roundRps.get('no auth')!);
  }
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await rm(dir, { recursive: true, force: true });
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const medianOf = (name: string, pick: (run: Run) => number) => median(runs.get(name)!.map(pick));
const openCpu = medianOf('no auth', (run) => run.cpuUsPerRequest);
process.stdout.write(
  `\nAccess control: wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s × ${ROUNDS} rounds (alternating), one gateway, one upstream; medians over rounds\n\n${table(
    ['route', 'req/s', 'p50 ms', 'p99 ms', 'errors', '× no auth (req/s)', 'gateway CPU µs/req', 'cost µs/req', '× no auth (CPU)'],
    contenders.map(({ name }) => {
      const cpu = medianOf(name, (run) => run.cpuUsPerRequest);
      const errors = runs.get(name)!.reduce((sum, run) => sum + run.errors, 0);
      return [
        name,
        medianOf(name, (run) => run.requestsPerSecond).toFixed(0),
        medianOf(name, (run) => run.p50Ms).toFixed(2),
        medianOf(name, (run) => run.p99Ms).toFixed(2),
        String(errors),
        median(ratios.get(name)!).toFixed(3),
        cpu.toFixed(1),
        (cpu - openCpu).toFixed(1),
        (cpu / openCpu).toFixed(3),
      ];
    }),
  )}\n\nper-round req/s: ${contenders.map(({ name }) => `${name}: ${runs.get(name)!.map((run) => run.requestsPerSecond.toFixed(0)).join(' / ')}`).join('; ')}\n`,
);
process.exit(0);
