// `npm run bench:admin`: what `GET /api/services` costs the gateway's event loop with many services
// (1,000 of 10 static instances by default, as `BENCH_SERVICES`/`BENCH_INSTANCES`). The compiled
// gateway runs as a child; a probe requests one proxied route every few milliseconds throughout,
// and in alternating phases a second process either rests (the anchor: the same gateway, nobody
// asking the admin API) or calls `/api/services` in a loop, as a dashboard or a script would. Prints
// medians over `ROUNDS` rounds of: the call's time and size, the proxied probe's latency, and the
// gateway's own event-loop delay (`nodejs_eventloop_lag_*` of `/metrics`, which resets on each read).
// A third phase calls `/ready` in the same loop: the anchor for what a busy client costs by itself.
// `BENCH_BASELINE=<ref>` runs that commit's gateway beside this checkout's (a git worktree), the
// contenders alternating, so that one run on a noisy machine compares them. `BENCH_PROFILE=1` runs
// the gateways with `--cpu-prof` and prints where the profiles went.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup as buildPrograms } from '../../test/harness/build-programs.ts';
import { checkoutBaseline, type Baseline } from '../proxy/baseline.ts';
import { freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { ms, summarize, table } from '../lib/stats.ts';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 1_000);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 5_000);
const PROBE_PAUSE_MS = 5;
const PROFILE = process.env.BENCH_PROFILE === '1';
const BASELINE = process.env.BENCH_BASELINE;

type Phase = 'idle (anchor)' | '/ready loop (anchor)' | '/api/services loop';
const PHASES: readonly Phase[] = ['idle (anchor)', '/ready loop (anchor)', '/api/services loop'];

interface PhaseResult {
  readonly calls: number[];
  readonly bytes: number;
  readonly probes: number[];
  readonly lagMaxMs: number;
  readonly lagP99Ms: number;
}

function configText(port: number, adminPort: number, backendPort: number): string {
  const lines = [`listen: 127.0.0.1:${port}`, `admin: 127.0.0.1:${adminPort}`, 'accessLog: false', 'services:', `  probe: { instances: ["127.0.0.1:${backendPort}"] }`];
  // Nobody listens on these: no checks and no traffic, so only the admin API reads them.
  for (let service = 0; service < SERVICES; service += 1) {
    const instances = Array.from({ length: INSTANCES }, (_, index) => `"127.0.${1 + index}.${1 + (service % 250)}:${20_000 + service}"`);
    lines.push(`  svc-${String(service).padStart(4, '0')}: { instances: [${instances.join(', ')}] }`);
  }
  lines.push('routes:', '  - { path: /probe, service: probe }', '');
  return lines.join('\n');
}

function started(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`exited ${code} before it was ready:\n${output.slice(-2_000)}`)));
  });
}

async function lagMs(adminUrl: string): Promise<{ max: number; p99: number }> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 1_000;
  return { max: value('nodejs_eventloop_lag_max_seconds'), p99: value('nodejs_eventloop_lag_p99_seconds') };
}

async function runPhase(phase: Phase, gatewayUrl: string, adminUrl: string): Promise<PhaseResult> {
  await lagMs(adminUrl); // resets the gateway's event-loop histogram
  const probes: number[] = [];
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const start = performance.now();
      const response = await fetch(`${gatewayUrl}/probe`);
      await response.arrayBuffer();
      probes.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, PROBE_PAUSE_MS));
    }
  })();
  let calls: number[] = [];
  let bytes = 0;
  if (phase !== 'idle (anchor)') {
    const path = phase === '/ready loop (anchor)' ? '/ready' : '/api/services';
    const client = spawn(process.execPath, [join(import.meta.dirname, 'services-client.mjs'), `${adminUrl}${path}`, String(PHASE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    client.stdout.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    await new Promise((resolve) => client.once('exit', resolve));
    ({ durations: calls, bytes } = JSON.parse(output) as { durations: number[]; bytes: number });
  } else {
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS));
  }
  probing = false;
  await probeLoop;
  const lag = await lagMs(adminUrl);
  return { calls, bytes, probes, lagMaxMs: lag.max, lagP99Ms: lag.p99 };
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

interface Contender {
  readonly name: string;
  readonly gateway: ChildProcess;
  readonly gatewayUrl: string;
  readonly adminUrl: string;
}

async function startContender(name: string, program: string, dir: string, backendPort: number): Promise<Contender> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
  await writeFile(config, configText(port, adminPort, backendPort));
  const gateway = spawn(process.execPath, [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, name.replace(/\W+/g, '-'))}`] : []), program, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Its log stays out of the table, but is shown when it does not start.
  let log = '';
  gateway.stderr?.on('data', (chunk: Buffer) => void (log = (log + chunk.toString()).slice(-4_000)));
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitFor(async () => (await fetch(`${adminUrl}/ready`).then((response) => response.ok, () => false)) || undefined, { timeoutMs: 60_000, message: `${name}: the gateway ready` }).catch((error: Error) => {
    throw new Error(`${error.message}\n${log}`);
  });
  return { name, gateway, gatewayUrl: `http://127.0.0.1:${port}`, adminUrl };
}

buildPrograms();
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-admin-'));
const backendPort = await freePort();
const backend = spawn(process.execPath, [join(REPO_ROOT, 'bench/proxy/backend.mjs'), String(backendPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
let baseline: Baseline | undefined;
const contenders: Contender[] = [];
try {
  await started(backend, /listening/);
  if (BASELINE) baseline = await checkoutBaseline(REPO_ROOT, BASELINE, join(dir, 'baseline'));
  contenders.push(await startContender('this checkout', join(REPO_ROOT, 'bin/switchboard.js'), dir, backendPort));
  if (baseline) contenders.push(await startContender(`baseline ${baseline.commit}`, baseline.program, dir, backendPort));
  process.stdout.write(`bench:admin: ${SERVICES} services × ${INSTANCES} instances, ${ROUNDS} rounds of ${PHASE_MS} ms per phase; Node ${process.version}\n`);
  const results = new Map<string, PhaseResult[]>();
  for (let round = 0; round < ROUNDS; round += 1) {
    // Rotate the order each round so that no contender or phase always runs first.
    const order = contenders.map((_, index) => contenders[(index + round) % contenders.length]!);
    for (const contender of order) {
      for (const phase of round % 2 === 0 ? PHASES : [...PHASES].reverse()) {
        const key = `${contender.name}|${phase}`;
        results.set(key, [...(results.get(key) ?? []), await runPhase(phase, contender.gatewayUrl, contender.adminUrl)]);
      }
    }
    process.stdout.write(`  round ${round + 1}/${ROUNDS} done\n`);
  }
  const rows = contenders.flatMap((contender) =>
    PHASES.map((phase) => {
      const runs = results.get(`${contender.name}|${phase}`)!;
      const calls = summarize(runs.flatMap((run) => run.calls));
      const probes = summarize(runs.flatMap((run) => run.probes));
      return [
        contender.name,
        phase,
        calls.count === 0 ? '–' : `${calls.count} × ${ms(calls.p50)} ms (max ${ms(calls.max)})`,
        calls.count === 0 ? '–' : `${(runs[0]!.bytes / 1e3).toFixed(0)} kB`,
        `${ms(probes.p50)} / ${ms(probes.p99)} / ${ms(probes.max)}`,
        `${ms(median(runs.map((run) => run.lagP99Ms)))} / ${ms(median(runs.map((run) => run.lagMaxMs)))}`,
      ];
    }),
  );
  process.stdout.write(`\n${table(['gateway', 'phase', 'admin calls (p50)', 'body', 'proxied p50 / p99 / max ms', 'gateway loop delay p99 / max ms (median)'], rows)}\n`);
} finally {
  for (const contender of contenders) contender.gateway.kill('SIGTERM');
  backend.kill('SIGTERM');
  await Promise.all(contenders.map(({ gateway }) => new Promise((resolve) => (gateway.exitCode === null ? gateway.once('exit', resolve) : resolve(undefined)))));
  await baseline?.remove();
  if (PROFILE) process.stdout.write(`\nCPU profiles of the gateways under ${dir} (open in Chrome DevTools)\n`);
  else await rm(dir, { recursive: true, force: true });
}
