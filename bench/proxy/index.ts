// Proxy benchmark: wrk against the same two upstreams, in one run: direct, nginx as a reverse proxy
// (1 worker, upstream keepalive), a bare undici dispatch proxy (the floor for a Node proxy) and
// Switchboard (1 process, default middleware incl. access log).
// Run: npm run bench:proxy   (env BENCH_DURATION_S, BENCH_CONNECTIONS; needs wrk and nginx)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARMUP_S = 2;

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-proxy-'));
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env }, cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 15_000, message: `${command} on port ${port}` });
}

const [upstreamA, upstreamB, nginxPort, gatewayPort, barePort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
await start(process.execPath, ['bench/proxy/backend.mjs', String(upstreamA)], upstreamA);
await start(process.execPath, ['bench/proxy/backend.mjs', String(upstreamB)], upstreamB);

await writeFile(
  join(dir, 'nginx.conf'),
  `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream backends { server 127.0.0.1:${upstreamA}; server 127.0.0.1:${upstreamB}; keepalive 64; }
  server {
    listen 127.0.0.1:${nginxPort};
    location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
);
await start('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], nginxPort);

await writeFile(
  join(dir, 'gateway.yaml'),
  `listen: 127.0.0.1:${gatewayPort}
admin: false
services:
  bench: { balancer: round-robin, instances: [127.0.0.1:${upstreamA}, 127.0.0.1:${upstreamB}] }
routes:
  - { path: /, service: bench }
`,
);
await start(process.execPath, ['bin/switchboard.js', '--config', join(dir, 'gateway.yaml')], gatewayPort, { SWITCHBOARD_LOG_LEVEL: 'warn' });

await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(barePort), String(upstreamA), String(upstreamB)], barePort);

const targets: Array<[string, string]> = [
  ['direct (one upstream)', `http://127.0.0.1:${upstreamA}/`],
  ['nginx (1 worker, keepalive)', `http://127.0.0.1:${nginxPort}/`],
  ['bare undici dispatch proxy', `http://127.0.0.1:${barePort}/`],
  ['switchboard (default middleware)', `http://127.0.0.1:${gatewayPort}/`],
];
const results: Array<[string, WrkResult]> = [];
try {
  for (const [name, url] of targets) {
    await runWrk(url, { threads: 1, connections: CONNECTIONS, durationS: WARMUP_S });
    results.push([name, await runWrk(url, { threads: 1, connections: CONNECTIONS, durationS: DURATION_S })]);
  }
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await rm(dir, { recursive: true, force: true });
}

const nginx = results[1]![1].requestsPerSecond;
process.stdout.write(`\nwrk -t1 -c${CONNECTIONS} -d${DURATION_S}s, same two upstreams, one run\n\n`);
process.stdout.write(
  `${table(
    ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', '× nginx'],
    results.map(([name, result]) => [name, result.requestsPerSecond.toFixed(0), result.p50Ms.toFixed(2), result.p99Ms.toFixed(2), String(result.errors), (result.requestsPerSecond / nginx).toFixed(2)]),
  )}\n`,
);
process.exit(0);
