// Balancer benchmark: time per pick and per update of every algorithm at 10, 100 and 1,000 instances,
// beside the cheapest possible pick (`array[i++ % n]`) and, for weighted-round-robin and
// least-connections, the O(n) pickers their indexed ones replaced ("linear, before"), measured in the same run.
// Run: npm run bench:balancers  (env BENCH_TARGET_MS sets the time spent per measurement, 200 by default)
import { instanceAddress, type Instance } from '../../src/discovery/instance.ts';
import { BALANCER_ALGORITHMS, type BalancerAlgorithm, type BalancerEndpoint } from '../../src/balance/balancer.ts';
import type { Balancer } from '../../src/balance/balancer.ts';
import { createBalancer, type BalancerConfig } from '../../src/balance/balancer-factory.ts';
import { LinearLeastConnectionsBalancer, LinearWeightedRoundRobinBalancer } from '../../src/balance/balancer-linear.ts';
import type { PickContext } from '../../src/balance/picker.ts';
import { measure } from './measure.ts';

const TARGET_MS = Number(process.env.BENCH_TARGET_MS ?? 200);
const SIZES = [10, 100, 1_000] as const;
const KEYS = 4_096;
const OK = { ok: true, latencyMs: 3 } as const;

const CONFIGS: Record<BalancerAlgorithm, BalancerConfig> = {
  random: { algorithm: 'random' },
  'round-robin': { algorithm: 'round-robin' },
  'weighted-round-robin': { algorithm: 'weighted-round-robin' },
  'least-connections': { algorithm: 'least-connections' },
  'p2c-ewma': { algorithm: 'p2c-ewma' },
  'consistent-hash': { algorithm: 'consistent-hash', key: { from: 'client-ip' } },
};

/** `count` endpoints with weights 1..5, so weighted algorithms do real work. */
function endpointsOf(count: number, offset = 0): BalancerEndpoint[] {
  return Array.from({ length: count }, (_, index) => {
    const number = index + offset;
    const instance: Instance = { id: `i-${number}`, service: 'bench', host: `10.${number >> 16}.${(number >> 8) & 255}.${number & 255}`, port: 8080, weight: 1 + (number % 5), protocol: 'http', metadata: {} };
    return { address: instanceAddress(instance), instance, routable: true };
  });
}

/** The balancers measured: every algorithm, and the linear pickers beside the two that replaced them. */
const CONTENDERS: ReadonlyArray<{ name: string; create: () => Balancer }> = BALANCER_ALGORITHMS.flatMap((algorithm): Array<{ name: string; create: () => Balancer }> => {
  const own = { name: algorithm, create: () => createBalancer(CONFIGS[algorithm]) };
  if (algorithm === 'weighted-round-robin') return [own, { name: `${algorithm} (linear, before)`, create: () => new LinearWeightedRoundRobinBalancer() }];
  if (algorithm === 'least-connections') return [own, { name: `${algorithm} (linear, before)`, create: () => new LinearLeastConnectionsBalancer() }];
  return [own];
});

const contexts: PickContext[] = Array.from({ length: KEYS }, (_, index) => ({ clientIp: `198.51.${index >> 8}.${index & 255}` }));

function anchorNsPerPick(size: number): number {
  const array = endpointsOf(size);
  let index = 0;
  let sink = 0;
  const result = measure(TARGET_MS, (iterations) => {
    for (let round = 0; round < iterations; round += 1) sink += array[index++ % size]!.instance.port;
  });
  if (sink === -1) console.log('unreachable');
  return result.nsPerOp;
}

function pickNs(create: () => Balancer, size: number): number {
  const balancer = create();
  const picker = balancer.update(endpointsOf(size));
  let key = 0;
  return measure(TARGET_MS, (iterations) => {
    for (let round = 0; round < iterations; round += 1) {
      const result = picker.pick(contexts[key++ & (KEYS - 1)]!);
      if (result.kind === 'endpoint') result.done(OK);
    }
  }).nsPerOp;
}

/** Alternates two sets that differ by one member leaving and one joining, or by one member's health. */
function updateUs(create: () => Balancer, size: number, change: 'swap' | 'health'): number {
  const balancer = create();
  const base = endpointsOf(size);
  const other =
    change === 'swap'
      ? [...base.slice(1), ...endpointsOf(1, size)]
      : base.map((endpoint, index) => (index === size >> 1 ? { ...endpoint, routable: false } : endpoint));
  balancer.update(base);
  let flip = false;
  return (
    measure(TARGET_MS, (iterations) => {
      for (let round = 0; round < iterations; round += 1) {
        flip = !flip;
        balancer.update(flip ? other : base);
      }
    }).nsPerOp / 1_000
  );
}

const rows: string[][] = [];
for (const size of SIZES) {
  const anchor = anchorNsPerPick(size);
  rows.push(['array[i++ % n] (anchor)', String(size), anchor.toFixed(1), '1.0', '-', '-']);
  for (const { name, create } of CONTENDERS) {
    const pick = pickNs(create, size);
    rows.push([name, String(size), pick.toFixed(1), (pick / anchor).toFixed(1), updateUs(create, size, 'swap').toFixed(1), updateUs(create, size, 'health').toFixed(1)]);
  }
}

const header = ['algorithm', 'instances', 'ns/pick', '× anchor', 'µs/update (1 leaves, 1 joins)', 'µs/update (1 health flip)'];
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
const line = (cells: readonly string[]) => cells.map((cell, column) => (column < 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
console.log(`node ${process.version}, ${TARGET_MS} ms per measurement after warm-up; a pick includes its done() call`);
console.log([line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n'));
