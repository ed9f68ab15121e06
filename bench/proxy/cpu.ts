// CPU time per request of each proxy process, side by side in one run: the bare undici proxy,
// Switchboard from this checkout (with and without its access log) and, with BENCH_BASELINE=<ref>, Switchboard at that commit; all in
// front of the same two Node backends (bench/proxy/backend.mjs; BENCH_BACKENDS=nginx: two nginx backends). Rounds alternate the contenders
// (the order rotating), and each run reads the proxy's user and system CPU from /proc/<pid>/stat
// around wrk: on a shared machine, CPU per request moves far less than req/s does.
// With BENCH_POLICY=1 it adds the traffic-policy rows of policy.ts (local and Redis rate limiter, breaker, no retry
// budget), each against the same gateway without policy: the CPU each policy costs per request.
// BENCH_NODE_ARGS="--max-semi-space-size=16;--max-semi-space-size=64" adds a row of this checkout's gateway per
// `;`-separated set of Node flags, BENCH_NODE24=1 a row under Node 24 (SWITCHBOARD_NODE24 or .cache/node24), and
// BENCH_TRACE_GC=1 runs every Node contender with --trace-gc and prints its collections per 10k requests,
// BENCH_BARE_HEADERS=1 adds the bare proxy sending the gateway's default headers (its upstream request and answer carry the same).
// BENCH_LOG_SINKS=1 adds the gateway with its access log going to a regular file and to /dev/null, beside the default
// row's pipe (read by this process, as a log collector would): what the log's destination costs.
// BENCH_RATE=<req/s> loads every contender at that fixed rate (h2load --h1 --rps, spread over the connections) instead
// of as fast as it answers: at saturation a slower contender batches more requests per wake-up and pays less for
// each, which a fixed rate evens out (the rate must stay below what the slowest contender serves; a row that fell
// short is marked).
// BENCH_PERF=1 records every round of every contender with Linux perf (`perf record -e cpu-clock -p <pid>`; Node
// contenders started with --perf-basic-prof) and prints where each one's CPU per request went by kind (the kernel,
// node's and V8's native code and builtins, JIT-compiled JavaScript, libc) and the symbols that differ most from the
// bare proxy: what V8's own profiler (bench:proxy-profile) does not see. Needs perf (Debian: linux-perf) and
// kernel.perf_event_paranoid ≤ 2; the recording costs the contenders alike a few per cent.
// BENCH_CONNECTION_CLOSE=1 sends every request with `Connection: close`, so each is a new client connection
// (the proxies keep their upstream connections): what connection churn costs.
// The peak RSS of each contender (VmHWM) is printed after the rounds, with the share of its CPU on its main thread
// (the event loop; the rest is V8's helper threads and libuv's pool) and the machine's steal time (a VM's noise). Gateways start with their bin's shebang flags
// (as the `switchboard` command does), a baseline with its own.
// Run: npm run bench:proxy-cpu   (env BENCH_DURATION_S, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_BASELINE, BENCH_POLICY,
// BENCH_NODE_ARGS, BENCH_NODE24, BENCH_TRACE_GC, BENCH_BARE_HEADERS, BENCH_LOG_SINKS, BENCH_RATE, BENCH_CONNECTION_CLOSE, BENCH_BACKENDS, BENCH_PERF, BENCH_PERF_TOP)
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { NODE24_MISSING, node24Binary } from '../lib/node24.ts';
import { table } from '../lib/stats.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { shebangNodeFlags } from './bin-flags.ts';
import { countGcTrace, gcDelta, type GcCounts } from './gc-trace.ts';
import { BACKENDS_LABEL, BENCH_BACKENDS, nginxBackendCommand } from './nginx.ts';
import { NO_POLICY, policyContenders } from './policy.ts';
import { median } from './rounds.ts';
import { PERF_NODE_FLAG, readPerfSamples, recordPerf, removePerfMaps, SAMPLE_KINDS, type SymbolSamples } from './perf-samples.ts';
import { runH2load } from './h2load.ts';
import { runWrk } from './wrk.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BASELINE_REF = process.env.BENCH_BASELINE;
const WARMUP_S = 2;
const POLICY = process.env.BENCH_POLICY === '1';
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(';').map((flags) => flags.trim()).filter(Boolean);
const TRACE_GC = process.env.BENCH_TRACE_GC === '1';
/** A row of the bare proxy sending the headers the gateway's default middleware adds (bare-proxy.mjs --gateway-headers). */
const BARE_HEADERS = process.env.BENCH_BARE_HEADERS === '1';
/** Every request on a new client connection (`Connection: close`): the cost of connection churn. */
const CONNECTION_CLOSE = process.env.BENCH_CONNECTION_CLOSE === '1';
/** Rows of the gateway with its stdout (the access log) on a regular file and on /dev/null. */
const LOG_SINKS = process.env.BENCH_LOG_SINKS === '1';
/** A fixed load in requests a second (h2load), or undefined for wrk's as-fast-as-answered. */
const RATE = process.env.BENCH_RATE === undefined ? undefined : Number(process.env.BENCH_RATE);
/** Record every run with Linux perf and print where the CPU went (native code and the kernel included). */
const PERF = process.env.BENCH_PERF === '1';
const PERF_TOP = Number(process.env.BENCH_PERF_TOP ?? 25);
const NO_GC: GcCounts = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 };

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-cpu-'));
let baseline: Baseline | undefined;
let closePolicy: (() => Promise<void>) | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** Collections counted from each started program's --trace-gc lines, by pid (BENCH_TRACE_GC=1 only). */
const gcByPid = new Map<number, GcCounts>();

/** Starts a program (stdout read and discarded, as a log collector would, unless `stdout` is a descriptor to hand it) and waits for `port`. */
async function start(command: string, args: string[], port: number, stdout?: number): Promise<number> {
  // Node's flag only for Node programs: nginx backends refuse it.
  // Only where stdout is read here: the trace lines would otherwise go uncounted into a log row's file.
  const node = /(^|\/)node$/.test(command);
  const traced = TRACE_GC && stdout === undefined && node;
  const flags = [...(traced ? ['--trace-gc'] : []), ...(PERF && node ? [PERF_NODE_FLAG] : [])];
  const child = spawn(command, [...flags, ...args], { stdio: ['ignore', stdout ?? 'pipe', 'inherit'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' }, cwd: REPO_ROOT });
  if (traced) gcByPid.set(child.pid!, countGcTrace(child.stdout!));
  else child.stdout?.resume();
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${command} ${args.join(' ')} on port ${port}` });
  return child.pid!;
}

/** Peak resident set of `pid` in MB (VmHWM). */
async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** User and system CPU in ms (fields 14 and 15 of a /proc stat file, clock ticks of 10 ms). */
async function statCpuMs(file: string): Promise<{ user: number; sys: number }> {
  const fields = (await readFile(file, 'utf8')).replace(/^.*\) /s, '').split(' ');
  return { user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 };
}

/** User and system CPU of `pid` in ms, all threads, and of its main thread alone (the event loop's). */
async function cpuMs(pid: number): Promise<{ user: number; sys: number; main: number }> {
  const [all, main] = await Promise.all([statCpuMs(`/proc/${pid}/stat`), statCpuMs(`/proc/${pid}/task/${pid}/stat`)]);
  return { ...all, main: main.user + main.sys };
}

/** Ticks the machine's CPUs spent in all states and stolen by the hypervisor (/proc/stat's `cpu` line). */
async function machineTicks(): Promise<{ total: number; steal: number }> {
  const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: fields.reduce((sum, value) => sum + value, 0), steal: fields[7]! };
}

/** The collections of several runs added up. */
function sumGc(rows: readonly Run[]): GcCounts {
  return rows.reduce((sum, { gc }) => ({ scavenges: sum.scavenges + gc.scavenges, scavengeMs: sum.scavengeMs + gc.scavengeMs, markCompacts: sum.markCompacts + gc.markCompacts, markCompactMs: sum.markCompactMs + gc.markCompactMs }), NO_GC);
}

interface Run {
  rps: number;
  user: number;
  sys: number;
  /** Share of the process's CPU on its main thread. */
  mainShare: number;
  requests: number;
  gc: GcCounts;
}

const backends = [await freePort(), await freePort()];
const instances = backends.map((port) => `127.0.0.1:${port}`).join(', ');
const contenders: Array<{ name: string; port: number; pid: number }> = [];
try {
  if (BENCH_BACKENDS === 'nginx') await start(...(await nginxBackendCommand(dir, backends)), backends[0]!);
  else for (const backend of backends) await start(process.execPath, ['bench/proxy/backend.mjs', String(backend)], backend);
  const barePort = await freePort();
  contenders.push({ name: 'bare undici proxy', port: barePort, pid: await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(barePort), ...backends.map(String)], barePort) });
  if (BARE_HEADERS) {
    const port = await freePort();
    contenders.push({ name: "bare + the gateway's default headers", port, pid: await start(process.execPath, ['bench/proxy/bare-proxy.mjs', String(port), ...backends.map(String), '--gateway-headers'], port) });
  }
  // Started as the `switchboard` command starts: with its shebang's Node flags, unless a row gives its own.
  const gateway = async (name: string, program: string, accessLog = true, nodeArgs = shebangNodeFlags(program), node = process.execPath, stdout?: number) => {
    const port = await freePort();
    const file = join(dir, `${contenders.length}.yaml`);
    await writeFile(file, `listen: 127.0.0.1:${port}\nadmin: false\naccessLog: ${accessLog}\nservices:\n  nodeb: { balancer: round-robin, instances: [${instances}] }\nroutes:\n  - { path: /, service: nodeb }\n`);
    contenders.push({ name, port, pid: await start(node, [...nodeArgs, program, '--config', file], port, stdout) });
  };
  await gateway('switchboard (this checkout)', 'bin/switchboard.js');
  await gateway('switchboard (access log off)', 'bin/switchboard.js', false);
  if (LOG_SINKS) {
    await gateway('switchboard (access log to a file)', 'bin/switchboard.js', true, undefined, undefined, openSync(join(dir, 'access.log'), 'w'));
    await gateway('switchboard (access log to /dev/null)', 'bin/switchboard.js', true, undefined, undefined, openSync('/dev/null', 'w'));
  }
  for (const flags of NODE_ARGS) await gateway(`switchboard (node ${flags})`, 'bin/switchboard.js', true, flags.split(/\s+/));
  if (process.env.BENCH_NODE24 === '1') {
    const node24 = node24Binary();
    if (node24) await gateway('switchboard (node 24)', 'bin/switchboard.js', true, undefined, node24);
    else process.stdout.write(`Node 24 row skipped: ${NODE24_MISSING}\n`);
  }
  if (POLICY) {
    const pids = new Map<number, number>();
    const policy = await policyContenders({
      dir,
      upstreams: backends,
      port: freePort,
      startGateway: async (file, port) => void pids.set(port, await start(process.execPath, [...shebangNodeFlags('bin/switchboard.js'), 'bin/switchboard.js', '--config', file], port)),
    });
    closePolicy = policy.close;
    for (const { name, url } of policy.contenders) {
      const port = Number(new URL(url).port);
      contenders.push({ name, port, pid: pids.get(port)! });
    }
  }
  if (BASELINE_REF) {
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
    await gateway(`switchboard ${baseline.commit} (baseline)`, baseline.program);
  }
  if (RATE !== undefined && CONNECTION_CLOSE) throw new Error('BENCH_RATE and BENCH_CONNECTION_CLOSE do not go together (h2load keeps its connections)');
  const wrk = { threads: 1, connections: CONNECTIONS, ...(CONNECTION_CLOSE ? { headers: { connection: 'close' } } : {}) };
  /** One load run against `port`: requests a second answered. */
  const load = async (port: number, durationS: number): Promise<number> => {
    const url = `http://127.0.0.1:${port}/`;
    if (RATE === undefined) return (await runWrk(url, { ...wrk, durationS })).requestsPerSecond;
    const result = await runH2load(url, { clients: CONNECTIONS, streams: 1, durationS, h1: true, ratePerClient: RATE / CONNECTIONS });
    if (result.errors > 0) throw new Error(`${result.errors} requests failed on port ${port}`);
    return result.requestsPerSecond;
  };
  for (const { port } of contenders) await load(port, WARMUP_S);
  const runs = contenders.map((): Run[] => []);
  /** BENCH_PERF=1: each contender's samples by symbol over all rounds, and its total samples and CPU µs. */
  const perf = contenders.map(() => ({ symbols: new Map() as SymbolSamples, files: [] as string[], cpuUs: 0, requests: 0 }));
  const machineBefore = await machineTicks();
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let step = 0; step < contenders.length; step += 1) {
      const index = (step + round) % contenders.length;
      const { port, pid } = contenders[index]!;
      const before = await cpuMs(pid);
      const gcBefore = { ...(gcByPid.get(pid) ?? NO_GC) };
      const file = join(dir, `perf-${index}-${round}.data`);
      const recording = PERF ? recordPerf(pid, file) : undefined;
      const rps = await load(port, DURATION_S);
      const after = await cpuMs(pid);
      if (recording) {
        await recording.stop();
        perf[index]!.files.push(file);
        perf[index]!.cpuUs += (after.user + after.sys - before.user - before.sys) * 1_000;
        perf[index]!.requests += rps * DURATION_S;
      }
      const requests = rps * DURATION_S;
      const gc = gcDelta(gcByPid.get(pid) ?? NO_GC, gcBefore);
      const spent = after.user + after.sys - before.user - before.sys;
      runs[index]!.push({ rps, user: ((after.user - before.user) * 1_000) / requests, sys: ((after.sys - before.sys) * 1_000) / requests, mainShare: spent > 0 ? (after.main - before.main) / spent : 0, requests, gc });
    }
  }
  const machineAfter = await machineTicks();
  const stealPercent = (100 * (machineAfter.steal - machineBefore.steal)) / Math.max(1, machineAfter.total - machineBefore.total);
  const bareUser = median(runs[0]!.map((run) => run.user + run.sys));
  const peakRss = await Promise.all(contenders.map(({ pid }) => peakRssMb(pid)));
  process.stdout.write(
    `\nProxy CPU per request: ${RATE === undefined ? `wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s${CONNECTION_CLOSE ? " -H 'Connection: close'" : ''}` : `h2load --h1 -c${CONNECTIONS} -D${DURATION_S} at ${RATE} req/s`} × ${ROUNDS} rounds (alternating), ${BACKENDS_LABEL}; medians; the hypervisor stole ${stealPercent.toFixed(1)} % of the machine's CPU during the rounds\n\n${table(
      ['proxy', 'req/s', 'user µs/req', 'sys µs/req', 'total µs/req', '× bare (CPU)', 'main thread', 'peak RSS MB', 'per round user/sys'],
      contenders.map(({ name }, index) => {
        const rows = runs[index]!;
        const total = median(rows.map((run) => run.user + run.sys));
        return [
          name,
          // A contender that could not keep up with a fixed rate did different work: marked.
          `${median(rows.map((run) => run.rps)).toFixed(0)}${RATE !== undefined && rows.some((run) => run.rps < RATE * 0.97) ? ' (short of the rate)' : ''}`,
          median(rows.map((run) => run.user)).toFixed(1),
          median(rows.map((run) => run.sys)).toFixed(1),
          total.toFixed(1),
          (total / bareUser).toFixed(2),
          `${(100 * median(rows.map((run) => run.mainShare))).toFixed(0)} %`,
          peakRss[index]!.toFixed(0),
          rows.map((run) => `${run.user.toFixed(0)}/${run.sys.toFixed(0)}`).join(' '),
        ];
      }),
    )}\n`,
  );
  if (TRACE_GC) {
    // Summed over all rounds: a round of 4 s holds only a handful of mark-compacts.
    const per10k = (rows: Run[], pick: (gc: GcCounts) => number) => (pick(sumGc(rows)) * 10_000) / rows.reduce((sum, run) => sum + run.requests, 0);
    process.stdout.write(
      `\nGarbage collection (--trace-gc), per 10k requests over all rounds\n\n${table(
        ['proxy', 'scavenges', 'scavenge ms', 'mark-compacts', 'mark-compact ms', 'scavenges per round'],
        contenders.map(({ name }, index) => {
          const rows = runs[index]!;
          return [name, per10k(rows, (gc) => gc.scavenges).toFixed(1), per10k(rows, (gc) => gc.scavengeMs).toFixed(1), per10k(rows, (gc) => gc.markCompacts).toFixed(2), per10k(rows, (gc) => gc.markCompactMs).toFixed(1), rows.map((run) => run.gc.scavenges).join(' ')];
        }),
      )}\n`,
    );
  }
  if (PERF) {
    for (const entry of perf) for (const file of entry.files) await readPerfSamples(file, entry.symbols);
    printPerf(perf);
  }
  // Each policy row against the no-policy gateway of the same rounds: CPU per request, and req/s.
  const plain = contenders.findIndex(({ name }) => name === NO_POLICY);
  const cpuOf = (index: number) => median(runs[index]!.map((run) => run.user + run.sys));
  const rpsOf = (index: number) => median(runs[index]!.map((run) => run.rps));
  contenders.forEach(({ name }, index) => {
    if (plain < 0 || !name.startsWith('switchboard + ')) return;
    process.stdout.write(`${name.slice('switchboard + '.length)} cost: ${((cpuOf(index) / cpuOf(plain) - 1) * 100).toFixed(1)} % of CPU per request (${cpuOf(index).toFixed(1)} against ${cpuOf(plain).toFixed(1)} µs), ${((1 - rpsOf(index) / rpsOf(plain)) * 100).toFixed(1)} % of req/s\n`);
  });
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  if (PERF) await removePerfMaps(children.map((child) => child.pid ?? 0));
  await baseline?.remove();
  await closePolicy?.();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);

/**
 * BENCH_PERF=1's tables: CPU µs per request by kind of code for every contender, then the symbols whose
 * µs per request differ most between the first gateway row and the bare proxy. Each contender's samples
 * are scaled to its CPU per request read from /proc over the same runs (perf attaches a moment after a
 * run starts, so its samples are a share, not a total).
 */
function printPerf(perf: ReadonlyArray<{ symbols: SymbolSamples; cpuUs: number; requests: number }>): void {
  const scaled = perf.map(({ symbols, cpuUs, requests }) => {
    let total = 0;
    for (const { samples } of symbols.values()) total += samples;
    const perRequest = total > 0 && requests > 0 ? cpuUs / requests / total : 0;
    return { symbols, perRequest, us: (name: string) => (symbols.get(name)?.samples ?? 0) * perRequest };
  });
  const byKind = (index: number, kind: string) => {
    let samples = 0;
    for (const entry of scaled[index]!.symbols.values()) if (entry.kind === kind) samples += entry.samples;
    return samples * scaled[index]!.perRequest;
  };
  process.stdout.write(
    `\nWhere the CPU went (perf record -e cpu-clock, every round; µs per request, scaled to each row's CPU from /proc)\n\n${table(
      ['proxy', ...SAMPLE_KINDS, 'total'],
      contenders.map(({ name }, index) => [name, ...SAMPLE_KINDS.map((kind) => byKind(index, kind).toFixed(1)), SAMPLE_KINDS.reduce((sum, kind) => sum + byKind(index, kind), 0).toFixed(1)]),
    )}\n`,
  );
  const [bare, gateway] = scaled;
  if (!bare || !gateway) return;
  const names = new Set([...bare.symbols.keys(), ...gateway.symbols.keys()]);
  const differences = [...names].map((name) => ({ name, difference: gateway.us(name) - bare.us(name) })).sort((a, b) => Math.abs(b.difference) - Math.abs(a.difference));
  process.stdout.write(
    `\nThe ${PERF_TOP} symbols whose µs per request differ most between "${contenders[1]!.name}" and the bare proxy (every row shown)\n\n${table(
      ['symbol', 'kind', ...contenders.map(({ name }) => name), 'difference'],
      differences.slice(0, PERF_TOP).map(({ name, difference }) => [
        name.length > 70 ? `${name.slice(0, 67)}...` : name,
        (gateway.symbols.get(name) ?? bare.symbols.get(name))!.kind,
        ...scaled.map((row) => row.us(name).toFixed(2)),
        `${difference >= 0 ? '+' : ''}${difference.toFixed(2)}`,
      ]),
    )}\n`,
  );
}
