import { execFile, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * Linux `perf` samples of a running process, for `BENCH_PERF=1` of `bench:proxy-cpu`: unlike V8's
 * profiler (`bench:proxy-profile`), they see the whole process, the kernel's work on its behalf,
 * node's C++ and V8's builtins (inline caches, string building, the garbage collector) beside the
 * JIT-compiled JavaScript, whose names perf reads from the `/tmp/perf-<pid>.map` that
 * `--perf-basic-prof` has node write. The event is `cpu-clock`, so every sample is 1/FREQUENCY s of
 * CPU time whatever the machine's counters.
 */
export const PERF_FREQUENCY = 1_999;

/** What kind of code a sample was in. */
export type SampleKind = 'kernel' | 'JavaScript (JIT)' | 'node and V8 (native)' | 'libc' | 'other';
export const SAMPLE_KINDS: readonly SampleKind[] = ['kernel', 'node and V8 (native)', 'JavaScript (JIT)', 'libc', 'other'];

/** Samples summed by symbol (its name without file and position, so that a function bundled by the gateway meets its copy in node_modules). */
export type SymbolSamples = Map<string, { kind: SampleKind; samples: number }>;

/** Node flag for contenders recorded by perf. */
export const PERF_NODE_FLAG = '--perf-basic-prof';

/** Starts `perf record` on `pid` into `file`; `stop()` ends it (SIGINT, as perf expects) once its file is written. */
export function recordPerf(pid: number, file: string): { stop(): Promise<void> } {
  const child = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', String(PERF_FREQUENCY), '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // Settled at once, not rejected: perf missing (ENOENT) is told by stop(), after the run, where an
  // unhandled rejection would end the bench before its finally stopped the contenders.
  const exited = new Promise<[number | null, NodeJS.Signals | null] | Error>((resolve) => {
    child.once('exit', (code, signal) => resolve([code, signal]));
    child.once('error', resolve);
  });
  return {
    async stop() {
      child.kill('SIGINT');
      const outcome = await exited;
      if (outcome instanceof Error) throw new Error(`perf record could not start (${outcome.message}): BENCH_PERF=1 needs perf (Debian: linux-perf)`, { cause: outcome });
      // perf writes its file and then ends by the signal (no exit code) or with 0.
      const [code, signal] = outcome;
      if (code !== 0 && signal !== 'SIGINT') throw new Error(`perf record -p ${pid} failed (exit ${code ?? signal}): ${stderr.trim().split('\n').slice(-2).join(' ')}`);
    },
  };
}

/** `perf report` of one recording, as samples by symbol (added into `into`); the recording is removed afterwards. */
export async function readPerfSamples(file: string, into: SymbolSamples = new Map()): Promise<SymbolSamples> {
  const { stdout } = await promisify(execFile)('perf', ['report', '-i', file, '--no-children', '-F', 'sample,dso,sym', '-q', '-g', 'none', '--stdio'], { maxBuffer: 64 << 20 });
  await rm(file, { force: true });
  for (const line of stdout.split('\n')) addReportLine(line, into);
  return into;
}

/** One line of `perf report -F sample,dso,sym`: `   304  node   [.] Builtins_KeyedLoadIC_Megamorphic`. */
export function addReportLine(line: string, into: SymbolSamples): void {
  const match = /^\s*(\d+)\s+(.+?)\s+\[([.k])\]\s+(.*)$/.exec(line);
  if (!match) return;
  const [, count, dso, level, symbol] = match;
  const name = symbolName(symbol!);
  const entry = into.get(name);
  if (entry) entry.samples += Number(count);
  else into.set(name, { kind: kindOf(dso!, level!), samples: Number(count) });
}

function kindOf(dso: string, level: string): SampleKind {
  if (level === 'k' || dso.startsWith('[kernel')) return 'kernel';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-')) return 'JavaScript (JIT)';
  if (dso === 'node') return 'node and V8 (native)';
  if (dso.startsWith('libc')) return 'libc';
  return 'other';
}

/** `JS:*writeH1 file:///…/dist/switchboard.js:23241:21` and `JS:^writeH1 /…/undici/lib/…/client-h1.js:1:2` both read `JS:writeH1`. */
export function symbolName(symbol: string): string {
  return symbol
    .trim()
    .replace(/^JS:[*^~+-]?/, 'JS:')
    .replace(/ (?:file:\/\/)?\/\S*$/, '')
    .replace(/ node:\S+$/, '');
}

/** Removes the symbol maps `--perf-basic-prof` had each of `pids` write (they grow with every compiled function). */
export async function removePerfMaps(pids: readonly number[]): Promise<void> {
  await Promise.all(pids.map((pid) => rm(`/tmp/perf-${pid}.map`, { force: true })));
}
