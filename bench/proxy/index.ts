// Proxy benchmark, every row in one run against the same two upstreams:
//  1. HTTP/1.1 cleartext (wrk): direct, nginx as a reverse proxy (1 worker, upstream keepalive), a
//     bare undici dispatch proxy (the floor for a Node proxy), Switchboard at a baseline commit
//     (BENCH_BASELINE=<git ref>, optional) and Switchboard from this tree (1 process, default
//     middleware incl. access log).
//  2. HTTPS termination (wrk over TLS): nginx and Switchboard with the same ECDSA certificate.
//  3. HTTP/2 over TLS (h2load): nginx `http2` and Switchboard's https entry point (ALPN h2).
// Run: npm run bench:proxy   (env BENCH_DURATION_S, BENCH_CONNECTIONS, BENCH_H2_CLIENTS,
// BENCH_H2_STREAMS, BENCH_BASELINE; needs wrk, nginx and h2load from nghttp2-client)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { selfSignedCertificate } from './certificate.ts';
import { runH2load, type H2loadResult } from './h2load.ts';
import { nginxConfig } from './nginx.ts';
import { runWrk, type WrkResult } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const H2_CLIENTS = Number(process.env.BENCH_H2_CLIENTS ?? 10);
const H2_STREAMS = Number(process.env.BENCH_H2_STREAMS ?? 10);
const BASELINE_REF = process.env.BENCH_BASELINE;
const WARMUP_S = 2;

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-proxy-'));
let baseline: Baseline | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env }, cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 30_000, message: `${command} on port ${port}` });
}

const ports = await Promise.all(Array.from({ length: 8 }, () => freePort()));
const [upstreamA, upstreamB, nginxHttp, nginxHttps, gatewayHttp, gatewayHttps, barePort, baselinePort] = ports as [number, number, number, number, number, number, number, number];
const certificate = await selfSignedCertificate(dir);
const service = `services:
  bench: { balancer: round-robin, instances: [127.0.0.1:${upstreamA}, 127.0.0.1:${upstreamB}] }
routes:
  - { path: /, service: bench }
`;
const gatewayEnv = { SWITCHBOARD_LOG_LEVEL: 'warn' };
const wrkRows: Array<[string, WrkResult]> = [];
const tlsRows: Array<[string, WrkResult]> = [];
const h2Rows: Array<[string, H2loadResult]> = [];

try {
  await start(process.execPath, ['bench/proxy/backend.mjs', String(upstreamA)], upstreamA);
  await start(process.execPath, ['bench/proxy/backend.mjs', String(upstreamB)], upstreamB);
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, { http: nginxHttp, https: nginxHttps }, [upstreamA, upstreamB], certificate));
  await start('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], nginxHttp);
  await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(barePort), String(upstreamA), String(upstreamB)], barePort);

  await writeFile(
    join(dir, 'gateway.yaml'),
    `admin: false
entryPoints:
  web: { listen: 127.0.0.1:${gatewayHttp}, protocol: http }
  websecure:
    listen: 127.0.0.1:${gatewayHttps}
    protocol: https
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
${service}`,
  );
  await start(process.execPath, ['bin/switchboard.js', '--config', join(dir, 'gateway.yaml')], gatewayHttp, gatewayEnv);

  if (BASELINE_REF) {
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
    await writeFile(join(dir, 'baseline.yaml'), `listen: 127.0.0.1:${baselinePort}\nadmin: false\n${service}`);
    await start(process.execPath, [baseline.program, '--config', join(dir, 'baseline.yaml')], baselinePort, gatewayEnv);
  }

  const cleartext: Array<[string, string]> = [
    ['direct (one upstream)', `http://127.0.0.1:${upstreamA}/`],
    ['nginx (1 worker, keepalive)', `http://127.0.0.1:${nginxHttp}/`],
    ['bare undici dispatch proxy', `http://127.0.0.1:${barePort}/`],
    ...(baseline ? [[`switchboard ${baseline.commit} (baseline)`, `http://127.0.0.1:${baselinePort}/`] as [string, string]] : []),
    ['switchboard (this tree)', `http://127.0.0.1:${gatewayHttp}/`],
  ];
  const wrk = { threads: 1, connections: CONNECTIONS };
  const anchors = baseline ? cleartext.slice(0, -2) : cleartext;
  for (const [name, url] of anchors) {
    await runWrk(url, { ...wrk, durationS: WARMUP_S });
    wrkRows.push([name, await runWrk(url, { ...wrk, durationS: DURATION_S })]);
  }
  if (baseline) {
    // Baseline and this tree alternate A B B A in half-length runs, so a drift of the machine
    // during the run (seen: a steady few per cent) does not favour whichever goes first.
    const pair = cleartext.slice(-2);
    for (const [, url] of pair) await runWrk(url, { ...wrk, durationS: WARMUP_S });
    const halves: WrkResult[][] = [[], []];
    for (const index of [0, 1, 1, 0]) halves[index]!.push(await runWrk(pair[index]![1], { ...wrk, durationS: DURATION_S / 2 }));
    pair.forEach(([name], index) => wrkRows.push([name, meanOf(halves[index]!)]));
  }
  for (const [name, url] of [
    ['nginx TLS (1 worker)', `https://127.0.0.1:${nginxHttps}/`],
    ['switchboard TLS', `https://127.0.0.1:${gatewayHttps}/`],
  ] as const) {
    await runWrk(url, { ...wrk, durationS: WARMUP_S });
    tlsRows.push([name, await runWrk(url, { ...wrk, durationS: DURATION_S })]);
  }
  const h2 = { clients: H2_CLIENTS, streams: H2_STREAMS };
  for (const [name, url] of [
    ['nginx http2 (1 worker)', `https://127.0.0.1:${nginxHttps}/`],
    ['switchboard http2', `https://127.0.0.1:${gatewayHttps}/`],
  ] as const) {
    await runH2load(url, { ...h2, durationS: WARMUP_S });
    h2Rows.push([name, await runH2load(url, { ...h2, durationS: DURATION_S })]);
  }
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await baseline?.remove();
  await rm(dir, { recursive: true, force: true });
}

/** The mean of runs of equal length: req/s and errors add up, latency percentiles are averaged (close enough for a table). */
function meanOf(runs: readonly WrkResult[]): WrkResult {
  const mean = (pick: (run: WrkResult) => number) => runs.reduce((sum, run) => sum + pick(run), 0) / runs.length;
  return { requestsPerSecond: mean((run) => run.requestsPerSecond), p50Ms: mean((run) => run.p50Ms), p99Ms: mean((run) => run.p99Ms), errors: runs.reduce((sum, run) => sum + run.errors, 0) };
}

const wrkTable = (rows: Array<[string, WrkResult]>) => {
  const anchor = rows.find(([name]) => name.startsWith('nginx'))![1].requestsPerSecond;
  return table(
    ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', '× nginx'],
    rows.map(([name, result]) => [name, result.requestsPerSecond.toFixed(0), result.p50Ms.toFixed(2), result.p99Ms.toFixed(2), String(result.errors), (result.requestsPerSecond / anchor).toFixed(2)]),
  );
};
const out = process.stdout;
out.write(`\nHTTP/1.1 cleartext: wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s, same two upstreams, one run\n\n${wrkTable(wrkRows)}\n`);
if (baseline) {
  const before = wrkRows.find(([name]) => name.includes('(baseline)'))![1].requestsPerSecond;
  const after = wrkRows.at(-1)![1].requestsPerSecond;
  const nginx = wrkRows[1]![1].requestsPerSecond;
  out.write(`\nthis tree / ${baseline.commit}: ${(after / before).toFixed(2)} (× nginx ${(before / nginx).toFixed(2)} → ${(after / nginx).toFixed(2)})\n`);
}
out.write(`\nHTTPS termination (same ECDSA P-256 certificate): wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s over TLS\n\n${wrkTable(tlsRows)}\n`);
const h2Anchor = h2Rows[0]![1].requestsPerSecond;
out.write(
  `\nHTTP/2 over TLS: h2load -c${H2_CLIENTS} -m${H2_STREAMS} -D${DURATION_S}\n\n${table(
    ['target', 'req/s', 'mean ms', 'errors', '× nginx'],
    h2Rows.map(([name, result]) => [name, result.requestsPerSecond.toFixed(0), result.meanMs.toFixed(2), String(result.errors), (result.requestsPerSecond / h2Anchor).toFixed(2)]),
  )}\n`,
);
process.exit(0);
