// Access-control cost: one gateway, one upstream, four routes measured side by side in one run:
// no auth, key auth (header), JWT ES256 with the verdict cache (default) and JWT ES256 with the
// cache off (every request verifies the signature). Rounds alternate the routes, so a drift of
// the shared machine spreads over all of them; the table shows each route's median req/s, the
// cost per request against the no-auth route (1/rps − 1/rps_open, in µs) and the ratio.
// Run: npm run bench:auth   (env BENCH_DURATION_S per run, BENCH_ROUNDS, BENCH_CONNECTIONS; needs wrk)
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP_S = 2;
const API_KEY = 'bench-key-0123456789abcdef';

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-auth-'));
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env }, cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 30_000, message: `${command} on port ${port}` });
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
const runs = new Map<string, WrkResult[]>(contenders.map(({ name }) => [name, []]));

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
  await start(process.execPath, ['bin/switchboard.js', '--config', join(dir, 'gateway.yaml')], gateway, { SWITCHBOARD_LOG_LEVEL: 'warn' });
  const wrk = { threads: 1, connections: CONNECTIONS };
  for (const { path, headers } of contenders) await runWrk(`http://127.0.0.1:${gateway}${path}`, { ...wrk, headers, durationS: WARMUP_S });
  for (let round = 0; round < ROUNDS; round += 1) {
    // Each round starts with a different route, so none is always measured first.
    for (let index = 0; index < contenders.length; index += 1) {
      const { name, path, headers } = contenders[(index + round) % contenders.length]!;
      runs.get(name)!.push(await runWrk(`http://127.0.0.1:${gateway}${path}`, { ...wrk, headers, durationS: DURATION_S }));
    }
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
const medianOf = (name: string, pick: (run: WrkResult) => number) => median(runs.get(name)!.map(pick));
const open = medianOf('no auth', (run) => run.requestsPerSecond);
process.stdout.write(
  `\nAccess control: wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s × ${ROUNDS} rounds (alternating), one gateway, one upstream; medians\n\n${table(
    ['route', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'µs/req vs no auth', '× no auth'],
    contenders.map(({ name }) => {
      const rps = medianOf(name, (run) => run.requestsPerSecond);
      const errors = runs.get(name)!.reduce((sum, run) => sum + run.errors, 0);
      return [name, rps.toFixed(0), medianOf(name, (run) => run.p50Ms).toFixed(2), medianOf(name, (run) => run.p99Ms).toFixed(2), String(errors), ((1 / rps - 1 / open) * 1e6).toFixed(1), (rps / open).toFixed(3)];
    }),
  )}\n\nper-round req/s: ${contenders.map(({ name }) => `${name}: ${runs.get(name)!.map((run) => run.requestsPerSecond.toFixed(0)).join(' / ')}`).join('; ')}\n`,
);
process.exit(0);
