// `npm run bench:startup`: start-up of the compiled programs (bin/*.js → dist/) against the TypeScript
// sources through tsx (how the bins ran before), and on Node 24 when `npm run node24` installed it.
// In one run, alternating the contenders every round: `--help` time, exec → listening (the gateway's
// port polled from here) or exec → "agent started" (the agent), and idle RSS one second after.
// Prints medians of ROUNDS rounds (7 by default) and each contender's ratio to the compiled bins.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup as buildPrograms } from '../../test/harness/build-programs.ts';
import { freePort, REPO_ROOT } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { listensOn, median, timeToExit, timeToReady, type Launcher } from './measure.ts';
import { node24Binary } from '../lib/node24.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const IDLE_MS = 1_000;

interface Program {
  readonly name: string;
  /** The launcher arguments that run it compiled, and from its sources through tsx. */
  readonly bin: string;
  readonly source: string;
}
const PROGRAMS: readonly Program[] = [
  { name: 'gateway', bin: join(REPO_ROOT, 'bin/switchboard.js'), source: join(REPO_ROOT, 'gateway/main.ts') },
  { name: 'agent', bin: join(REPO_ROOT, 'bin/switchboard-agent.js'), source: join(REPO_ROOT, 'registry-agent/main.ts') },
];

type Variant = 'compiled' | 'tsx (before)' | 'compiled, Node 24';
const node24 = node24Binary();
const variants: Variant[] = ['compiled', 'tsx (before)', ...(node24 ? (['compiled, Node 24'] as const) : [])];

function launcher(program: Program, variant: Variant): Launcher {
  const label = `${program.name} ${variant}`;
  if (variant === 'tsx (before)') return { label, node: process.execPath, args: ['--import', 'tsx', program.source] };
  return { label, node: variant === 'compiled' ? process.execPath : node24!, args: [program.bin] };
}

buildPrograms();
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-startup-'));
const port = await freePort();
const adminPort = await freePort();
const deadPort = await freePort(); // Nothing listens: the agent's registry and backend connect in the background.
const configPath = join(dir, 'gateway.yaml');
await writeFile(configPath, [
  `listen: 127.0.0.1:${port}`,
  `admin: 127.0.0.1:${adminPort}`,
  'services:',
  '  demo:',
  `    instances: ["127.0.0.1:${deadPort}"]`,
  'routes:',
  '  - { path: /api, service: demo }',
  '',
].join('\n'));
const agentArgs = ['--registry', `zk://127.0.0.1:${deadPort}/services`, '--service', 'demo', '--port', String(deadPort)];

type Metric = 'help' | 'ready' | 'rss';
const samples = new Map<string, number[]>();
const record = (program: Program, variant: Variant, metric: Metric, value: number) => {
  const key = `${program.name}|${variant}|${metric}`;
  samples.set(key, [...(samples.get(key) ?? []), value]);
};

process.stdout.write(`bench:startup: ${ROUNDS} rounds, ${variants.join(' / ')}; Node ${process.version}${node24 ? ` and ${node24}` : ' (no Node 24: run npm run node24)'}\n`);
const floor: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round += 1) {
    floor.push(await timeToExit({ label: 'node -e 0', node: process.execPath, args: ['-e', '0'] }, []));
    // Rotate the order each round so no contender always runs first (or right after a heavy one).
    const order = variants.map((_, index) => variants[(index + round) % variants.length]!);
    for (const variant of order) {
      for (const program of PROGRAMS) {
        record(program, variant, 'help', await timeToExit(launcher(program, variant), ['--help']));
        const ready = program.name === 'gateway' ? listensOn(port) : (output: string) => output.includes('"msg":"agent started"');
        const started = await timeToReady(launcher(program, variant), program.name === 'gateway' ? ['--config', configPath] : agentArgs, ready, IDLE_MS);
        record(program, variant, 'ready', started.readyMs);
        record(program, variant, 'rss', started.rssMb);
      }
    }
    process.stdout.write(`  round ${round + 1}/${ROUNDS} done\n`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const med = (program: Program, variant: Variant, metric: Metric) => median(samples.get(`${program.name}|${variant}|${metric}`) ?? []);
const rows = PROGRAMS.flatMap((program) =>
  variants.map((variant) => {
    const cell = (metric: Metric, digits: number) => {
      const value = med(program, variant, metric);
      const ratio = value / med(program, 'compiled', metric);
      return variant === 'compiled' ? value.toFixed(digits) : `${value.toFixed(digits)} (${ratio.toFixed(2)}×)`;
    };
    return [program.name, variant, cell('help', 0), cell('ready', 0), cell('rss', 1)];
  }),
);
process.stdout.write(`\nmedians of ${ROUNDS} rounds (ratio to the compiled bins on this Node); a bare \`node -e 0\` took ${median(floor).toFixed(0)} ms\n`);
process.stdout.write(`${table(['program', 'run as', '--help ms', 'exec → ready ms', 'idle RSS MB'], rows)}\n`);
process.stdout.write('ready: the gateway accepts TCP connections on its port; the agent logged "agent started" (registry connecting in the background)\n');
process.stdout.write('targets: --help ≤ 150 ms, gateway exec → listening ≤ 300 ms\n');
