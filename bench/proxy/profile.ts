// Where a proxied request's CPU goes, function by function, side by side: the bare undici proxy,
// Switchboard from this checkout and, with BENCH_BASELINE=<ref>, Switchboard at that commit, each in
// front of the same two Node backends (BENCH_BACKENDS=nginx: two nginx backends) and run with V8's sampling profiler (`--cpu-prof`). Each
// contender serves a fixed number of requests (h2load --h1 -n, after a warm-up), and only the
// samples taken while it served them are counted (the profile's clock is CLOCK_MONOTONIC, as
// process.hrtime is), so start-up and warm-up stay out. Bundled code is mapped back to its source
// file through the bundle's source map, so the gateway's own functions are told from undici's.
//
// Samples per function ÷ requests = µs per request. Repeated runs on the 2-core development machine
// agreed within ~±0.4–0.7 µs for the gateway's own code, but the samples under undici, node's
// JavaScript and socket writes moved by ±15 % between runs (those include the kernel's loopback
// delivery and the time the process waits to be scheduled), so a change there needs a count that
// does not sample, e.g. syscalls from /proc/<pid>/io (bench/proxy/README.md, round 7). It steers
// changes to the gateway's own functions of a few tenths of a µs that `bench:proxy-cpu` cannot resolve.
// BENCH_LOG_OFF=1 adds this checkout's gateway with its access log off (`accessLog: false`).
// BENCH_NODE24=1 adds this checkout's gateway under Node 24 (SWITCHBOARD_NODE24 or .cache/node24).
// BENCH_PROTOCOL=h2 profiles HTTP/2 over TLS instead (h2load -c BENCH_CONNECTIONS, default 10, -m
// BENCH_STREAMS, default 10, as bench:proxy's HTTP/2 row): the bare proxy behind TLS (`--tls`) and the
// gateway's https entry point, one self-signed ECDSA certificate.
// Run: npm run bench:proxy-profile   (env BENCH_REQUESTS, BENCH_ROUNDS, BENCH_LOG_OFF, BENCH_CONNECTIONS, BENCH_PROTOCOL, BENCH_STREAMS,
// BENCH_BASELINE, BENCH_NODE24, BENCH_TOP, BENCH_BACKENDS, BENCH_KEEP=1 keeps the .cpuprofile files for Chrome DevTools or speedscope)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { captureStdout } from '../lib/capture.ts';
import { NODE24_MISSING, node24Binary } from '../lib/node24.ts';
import { table } from '../lib/stats.ts';
import { checkoutBaseline, type Baseline } from './baseline.ts';
import { selfSignedCertificate } from './certificate.ts';
import { shebangNodeFlags } from './bin-flags.ts';
import { BACKENDS_LABEL, BENCH_BACKENDS, nginxBackendCommand } from './nginx.ts';
import { median } from './rounds.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200_000);
const H2 = process.env.BENCH_PROTOCOL === 'h2';
if (!H2 && (process.env.BENCH_PROTOCOL ?? 'h1') !== 'h1') throw new Error(`BENCH_PROTOCOL is h1 or h2, not ${process.env.BENCH_PROTOCOL}`);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? (H2 ? 10 : 50));
/** Concurrent streams per connection (HTTP/2 only). */
const STREAMS = Number(process.env.BENCH_STREAMS ?? 10);
const BASELINE_REF = process.env.BENCH_BASELINE;
const TOP = Number(process.env.BENCH_TOP ?? 25);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
/** BENCH_LOG_OFF=1 adds this checkout's gateway with `accessLog: false`, to see the rest of its code without the log's samples. */
const LOG_OFF = process.env.BENCH_LOG_OFF === '1';
const LOG_OFF_NAME = 'switchboard (access log off)';
/** Sampling interval in µs (V8's default is 1,000). */
const INTERVAL_US = 250;

/** Where a sample's time went. */
const CATEGORIES = ['own code', 'undici', 'other packages', 'node:* JavaScript', 'socket writes (native)', 'other native', 'garbage collector', 'V8/Node (program)'] as const;
type Category = (typeof CATEGORIES)[number];

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one contender's samples inside its measured windows, in µs per request, by category and by function. */
interface Breakdown {
  readonly requestsPerSecond: number;
  readonly busyUs: number;
  /** Samples with an access-log function on the stack: building and queueing lines, and writing batches. */
  readonly accessLogUs: number;
  readonly byCategory: Map<Category, number>;
  /** `name (source:line)` → µs; own code only. */
  readonly ownFunctions: Map<string, number>;
  /**
   * `file:line` → µs; every function, for the differences. Keyed by where the function is written,
   * not by its name: the bundle names some functions differently from the unbundled package (a
   * class's computed-key methods and getters are named after the class there, anonymous here).
   */
  readonly functions: Map<string, number>;
  /** `file:line` → a name for it (the first one seen that is not anonymous). */
  readonly names: Map<string, string>;
}

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-profile-'));
let baseline: Baseline | undefined;
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** Monotonic time in µs, on the clock V8 stamps profile samples with. */
const nowUs = () => Number(process.hrtime.bigint() / 1_000n);

/** Starts a program with stdout read and discarded (as a log collector would); resolves once `port` accepts. */
async function start(args: string[], port: number, command = process.execPath): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' }, cwd: REPO_ROOT });
  child.stdout!.resume();
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${args.join(' ')} on port ${port}` });
  return child;
}

/** The load generator's protocol arguments, as the table's heading prints them. */
const LOAD = H2 ? ['-c', String(CONNECTIONS), '-m', String(STREAMS)] : ['--h1', '-c', String(CONNECTIONS)];

/** Runs h2load (HTTP/1.1, or HTTP/2 over TLS) for `requests` requests; the requests per second it reports. */
async function h2load(port: number, requests: number): Promise<number> {
  const output = await captureStdout('h2load', [...LOAD, '-n', String(requests), '-t', '1', `${H2 ? 'https' : 'http'}://127.0.0.1:${port}/`]);
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(output);
  if (!done || Number(done[2]) !== requests) throw new Error(`h2load did not finish ${requests} requests:\n${output}`);
  return Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output)?.[1] ?? 0);
}

/** Source maps of bundles, by file path (undefined: the file has none). */
const sourceMaps = new Map<string, SourceMap | undefined>();

function sourceMapOf(file: string): SourceMap | undefined {
  if (!sourceMaps.has(file)) {
    const mapFile = `${file}.map`;
    sourceMaps.set(file, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : undefined);
  }
  return sourceMaps.get(file);
}

/** The source a frame's function was written in (through the bundle's source map) and its line, relative to `root`. */
function sourceOf(frame: CallFrame, root: string): { source: string; line: number } {
  if (!frame.url.startsWith('file://')) return { source: frame.url, line: frame.lineNumber + 1 };
  const file = fileURLToPath(frame.url);
  const entry = sourceMapOf(file)?.findEntry(frame.lineNumber, frame.columnNumber);
  if (entry && 'originalSource' in entry) {
    const original = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : join(dirname(file), entry.originalSource);
    return { source: relative(root, original), line: entry.originalLine + 1 };
  }
  return { source: relative(root, file), line: frame.lineNumber + 1 };
}

function categoryOf(frame: CallFrame, source: string): Category | 'idle' {
  if (frame.functionName === '(idle)') return 'idle';
  if (frame.functionName === '(garbage collector)') return 'garbage collector';
  if (frame.functionName === '(program)') return 'V8/Node (program)';
  if (frame.url === '') return /^write(v|Buffer|\w+String)$/.test(frame.functionName) ? 'socket writes (native)' : 'other native';
  if (source.startsWith('node:')) return 'node:* JavaScript';
  // WebAssembly here is undici's HTTP/1.1 parser (llhttp); node:http's own parser is native code.
  if (source.startsWith('wasm://')) return 'undici';
  if (source.includes('node_modules/undici/')) return 'undici';
  if (source.includes('node_modules/')) return 'other packages';
  return 'own code';
}

/** Reads the profile in `profileDir` and sums the self time of the samples taken inside `windows` (µs, monotonic), per request. */
function breakdown(profileDir: string, root: string, windows: ReadonlyArray<readonly [number, number]>, requests: number, requestsPerSecond: number): Breakdown {
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no profile was written in ${profileDir}`);
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  // Whether a node or one of its callers is the access log's code (memoized per node).
  const underAccessLog = new Map<number, boolean>();
  const isUnderAccessLog = (id: number | undefined): boolean => {
    if (id === undefined) return false;
    let known = underAccessLog.get(id);
    if (known === undefined) {
      known = sourceOf(frames.get(id)!, root).source.includes('middleware/access-log/') || isUnderAccessLog(parents.get(id));
      underAccessLog.set(id, known);
    }
    return known;
  };
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  for (let index = 0; index < profile.samples.length; index += 1) {
    at += profile.timeDeltas[index] ?? 0;
    // A sample's delta is the time since the previous one: it stands for that interval.
    if (!windows.some(([from, to]) => at >= from && at <= to)) continue;
    const id = profile.samples[index]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  }
  const byCategory = new Map<Category, number>();
  const ownFunctions = new Map<string, number>();
  const functions = new Map<string, number>();
  const names = new Map<string, string>();
  let busyUs = 0;
  let accessLogUs = 0;
  for (const [id, us] of selfUs) {
    const frame = frames.get(id)!;
    const { source, line } = sourceOf(frame, root);
    const category = categoryOf(frame, source);
    if (category === 'idle') continue;
    busyUs += us;
    if (isUnderAccessLog(id)) accessLogUs += us;
    byCategory.set(category, (byCategory.get(category) ?? 0) + us);
    const name = frame.functionName || '(anonymous)';
    if (category === 'own code') add(ownFunctions, `${name} (${source}:${line})`, us);
    const place = frame.url === '' ? `(native) ${name}` : `${source.replace(/^.*node_modules\//, '')}:${line}`;
    add(functions, place, us);
    if (!names.has(place) || names.get(place) === '(anonymous)') names.set(place, name);
  }
  const perRequestOf = (map: Map<string, number> | Map<Category, number>) => {
    for (const [key, us] of map) (map as Map<unknown, number>).set(key, us / requests);
  };
  perRequestOf(byCategory);
  perRequestOf(ownFunctions);
  perRequestOf(functions);
  return { requestsPerSecond, busyUs: busyUs / requests, accessLogUs: accessLogUs / requests, byCategory, ownFunctions, functions, names };
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

const perRequest = (us: number | undefined) => (us ?? 0).toFixed(2);

interface Contender {
  readonly name: string;
  /** Node flags and program arguments, without the profiler's flags. */
  readonly args: (port: number) => string[];
  /** Where its sources are, for the file names printed. */
  readonly root: string;
  /** The Node binary; this process's by default. */
  readonly node?: string;
  /** Its configuration turns the access log off (a gateway only). */
  readonly accessLogOff?: boolean;
}

const backends = [await freePort(), await freePort()];
const results = new Map<string, Breakdown>();
try {
  if (BENCH_BACKENDS === 'nginx') {
    const [command, args] = await nginxBackendCommand(dir, backends);
    await start(args, backends[0]!, command);
  } else for (const backend of backends) await start(['bench/proxy/backend.mjs', String(backend)], backend);
  const certificate = H2 ? await selfSignedCertificate(dir) : undefined;
  const config = async (port: number, accessLogOff = false) => {
    const file = join(dir, `gateway-${port}.yaml`);
    const listen = certificate
      ? `entryPoints:\n  websecure:\n    listen: 127.0.0.1:${port}\n    protocol: https\n    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }\n`
      : `listen: 127.0.0.1:${port}\n`;
    await writeFile(file, `${listen}admin: false\n${accessLogOff ? 'accessLog: false\n' : ''}services:\n  nodeb: { balancer: round-robin, instances: [${backends.map((backend) => `127.0.0.1:${backend}`).join(', ')}] }\nroutes:\n  - { path: /, service: nodeb }\n`);
    return file;
  };
  const gatewayConfigs = new Map<number, string>();
  const gateway = (name: string, program: string, root: string): Contender => ({ name, root, args: (port) => [...shebangNodeFlags(program), program, '--config', gatewayConfigs.get(port)!] });
  const contenders: Contender[] = [
    { name: 'bare undici proxy', root: REPO_ROOT, args: (port) => ['--max-semi-space-size=32', 'bench/proxy/bare-proxy.mjs', String(port), ...backends.map(String), ...(certificate ? ['--tls', certificate.certFile, certificate.keyFile] : [])] },
    gateway('switchboard (this checkout)', 'bin/switchboard.js', REPO_ROOT),
  ];
  if (BASELINE_REF) {
    baseline = await checkoutBaseline(REPO_ROOT, BASELINE_REF, join(dir, 'baseline'));
    contenders.push(gateway(`switchboard ${baseline.commit} (baseline)`, baseline.program, join(dir, 'baseline')));
  }
  if (LOG_OFF) contenders.push({ ...gateway(LOG_OFF_NAME, 'bin/switchboard.js', REPO_ROOT), accessLogOff: true });
  if (process.env.BENCH_NODE24 === '1') {
    const node24 = node24Binary();
    if (node24) contenders.push({ ...gateway('switchboard (node 24)', 'bin/switchboard.js', REPO_ROOT), node: node24 });
    else process.stdout.write(`Node 24 row skipped: ${NODE24_MISSING}\n`);
  }
  // Every contender runs for the whole benchmark; rounds alternate between them (the order rotating),
  // so a slow minute of this shared machine falls on all of them alike.
  const running: Array<{ contender: Contender; port: number; child: ChildProcess; profileDir: string; windows: Array<[number, number]>; rates: number[] }> = [];
  for (const contender of contenders) {
    const port = await freePort();
    gatewayConfigs.set(port, await config(port, contender.accessLogOff));
    const profileDir = join(dir, `profile-${port}`);
    await mkdir(profileDir);
    const child = await start([`--cpu-prof`, `--cpu-prof-dir=${profileDir}`, `--cpu-prof-interval=${INTERVAL_US}`, ...contender.args(port)], port, contender.node);
    running.push({ contender, port, child, profileDir, windows: [], rates: [] });
  }
  for (const { port } of running) await h2load(port, Math.max(10_000, REQUESTS / 5));
  const perRound = Math.ceil(REQUESTS / ROUNDS);
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let step = 0; step < running.length; step += 1) {
      const entry = running[(step + round) % running.length]!;
      const from = nowUs();
      entry.rates.push(await h2load(entry.port, perRound));
      entry.windows.push([from, nowUs()]);
    }
  }
  for (const { contender, child, profileDir, windows, rates } of running) {
    // The profile is written as the process exits: the gateway drains on SIGTERM, the bare proxy exits on SIGINT.
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(contender.name.startsWith('bare') ? 'SIGINT' : 'SIGTERM');
    await exited;
    results.set(contender.name, breakdown(profileDir, contender.root, windows, perRound * ROUNDS, median(rates)));
  }

  const names = [...results.keys()];
  const bare = results.get(names[0]!)!;
  const self = results.get(names[1]!)!;
  process.stdout.write(`\nCPU per request by where it went (µs of profiler samples ÷ requests): h2load ${LOAD.join(' ')}${H2 ? ' (HTTP/2 over TLS)' : ''}, ${ROUNDS} alternating rounds of ${Math.ceil(REQUESTS / ROUNDS)} requests each, ${BACKENDS_LABEL}, --cpu-prof-interval=${INTERVAL_US}\n\n`);
  process.stdout.write(
    `${table(
      ['proxy', 'req/s (profiled)', 'busy µs/req', ...CATEGORIES, 'access log (inclusive)'],
      names.map((name) => {
        const result = results.get(name)!;
        const accessLog = result.accessLogUs > 0 ? `${perRequest(result.accessLogUs)} (${((100 * result.accessLogUs) / result.busyUs).toFixed(1)} %)` : '';
        return [name, result.requestsPerSecond.toFixed(0), perRequest(result.busyUs), ...CATEGORIES.map((category) => perRequest(result.byCategory.get(category))), accessLog];
      }),
    )}\n`,
  );

  const base = baseline ? results.get(`switchboard ${baseline.commit} (baseline)`) : undefined;
  const logOff = results.get(LOG_OFF_NAME);
  process.stdout.write(`\nThe gateway's own functions, µs per request (top ${TOP})${base ? `, beside ${baseline!.commit}` : ''}\n\n`);
  const ownNames = [...self.ownFunctions].sort((a, b) => b[1] - a[1]).slice(0, TOP);
  process.stdout.write(
    `${table(
      ['function (source:line)', 'this checkout', ...(base ? ['baseline'] : []), ...(logOff ? ['access log off'] : [])],
      ownNames.map(([name, us]) => [name, perRequest(us), ...(base ? [perRequest(base.ownFunctions.get(name))] : []), ...(logOff ? [perRequest(logOff.ownFunctions.get(name))] : [])]),
    )}\n`,
  );
  if (base) {
    const gone = [...base.ownFunctions].filter(([name]) => !self.ownFunctions.has(name)).sort((a, b) => b[1] - a[1]).slice(0, 10);
    if (gone.length > 0) process.stdout.write(`\nBaseline functions not in this checkout's profile: ${gone.map(([name, us]) => `${name} ${perRequest(us)}`).join('; ')}\n`);
  }

  process.stdout.write(`\nLargest differences from the bare proxy, µs per request (top ${TOP})\n\n`);
  const differences = [...new Set([...self.functions.keys(), ...bare.functions.keys()])]
    .map((place) => [place, (self.functions.get(place) ?? 0) - (bare.functions.get(place) ?? 0)] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP);
  const label = (place: string) => (place.startsWith('(native)') ? place.slice(9) : `${self.names.get(place) ?? bare.names.get(place) ?? '(anonymous)'} (${place})`);
  process.stdout.write(`${table(['function (file:line)', 'bare', 'switchboard', 'difference'], differences.map(([place, difference]) => [label(place), perRequest(bare.functions.get(place)), perRequest(self.functions.get(place)), perRequest(difference)]))}\n`);
  process.stdout.write('(Inlining moves samples between a caller and the functions it inlined, which V8 may inline differently in the two processes: read a pair of neighbours together.)\n');
} finally {
  // SIGTERM, not SIGKILL: nginx's master stops its worker on it, where a killed master leaves the worker
  // running (BENCH_BACKENDS=nginx), its ports bound and this process's stdout pipe open, so that the
  // benchmark never exited. Waited for, so that the profiles folder is removed after nginx has left it;
  // one that has not left 10 s later is killed.
  const stopped = (child: (typeof children)[number]) =>
    new Promise((resolve) => {
      child.once('exit', resolve).kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    });
  await Promise.all(children.filter((child) => child.exitCode === null && child.signalCode === null).map(stopped));
  await baseline?.remove();
  if (process.env.BENCH_KEEP) process.stdout.write(`\nProfiles kept in ${dir}\n`);
  else await rm(dir, { recursive: true, force: true });
}
