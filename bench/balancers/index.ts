// Balancer benchmark: time per pick and per update of every algorithm at 10, 100 and 1,000 instances,
// beside the cheapest possible pick (`array[i++ % n]`) and, for weighted-round-robin and
// least-connections, the O(n) pickers their indexed ones replaced ("linear, before"), measured in the same run.
// Picks are measured over BENCH_ROUNDS rounds (3 by default), every contender once per round in turn,
// and the medians are printed, so that a noisy neighbour moves all of them alike.
// Run: npm run bench:balancers  (env BENCH_TARGET_MS sets the time spent per measurement, 200 by default)
import { instanceAddress, type Instance } from '../../src/discovery/instance.ts';
import { BALANCER_ALGORITHMS, type BalancerAlgorithm, type BalancerEndpoint } from '../../src/balance/balancer.ts';
import type { Balancer } from '../../src/balance/balancer.ts';
import { createBalancer, type BalancerConfig } from '../../src/balance/balancer-factory.ts';
import { LinearLeastConnectionsBalancer, LinearWeightedRoundRobinBalancer } from '../../src/balance/balancer-linear.ts';
import type { PickContext, PickResult } from '../../src/balance/picker.ts';
import { measure } from './measure.ts';

const TARGET_MS = Number(process.env.BENCH_TARGET_MS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Requests kept open in the "in flight" rows: each pick finishes the one made this many picks before. */
const OPEN_REQUESTS = 64;
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

interface Contender {
  readonly name: string;
  create(): Balancer;
  /** Picks kept open (finished this many picks later); 0 finishes each at once. */
  readonly open: number;
}

/**
 * The balancers measured: every algorithm, and the linear pickers beside the two that replaced
 * them; least-connections also with requests in flight, so that members move between load buckets.
 */
const CONTENDERS: readonly Contender[] = BALANCER_ALGORITHMS.flatMap((algorithm): Contender[] => {
  const own = { name: algorithm, create: () => createBalancer(CONFIGS[algorithm]), open: 0 };
  if (algorithm === 'weighted-round-robin') return [own, { name: `${algorithm} (linear, before)`, create: () => new LinearWeightedRoundRobinBalancer(), open: 0 }];
  if (algorithm === 'least-connections') {
    const linear = () => new LinearLeastConnectionsBalancer();
    const inFlight = ` (${OPEN_REQUESTS} in flight)`;
    return [own, { name: `${algorithm} (linear, before)`, create: linear, open: 0 }, { ...own, name: `${algorithm}${inFlight}`, open: OPEN_REQUESTS }, { name: `${algorithm}${inFlight} (linear, before)`, create: linear, open: OPEN_REQUESTS }];
  }
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

function pickNs({ create, open }: Contender, size: number): number {
  const balancer = create();
  const picker = balancer.update(endpointsOf(size));
  let key = 0;
  if (open === 0) {
    return measure(TARGET_MS, (iterations) => {
      for (let round = 0; round < iterations; round += 1) {
        const result = picker.pick(contexts[key++ & (KEYS - 1)]!);
        if (result.kind === 'endpoint') result.done(OK);
      }
    }).nsPerOp;
  }
  const ring: Array<PickResult | undefined> = Array.from({ length: open }, () => undefined);
  let slot = 0;
  return measure(TARGET_MS, (iterations) => {
    for (let round = 0; round < iterations; round += 1) {
      const previous = ring[slot];
      if (previous?.kind === 'endpoint') previous.done(OK);
      ring[slot] = picker.pick(contexts[key++ & (KEYS - 1)]!);
      slot = (slot + 1) % open;
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

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1]!;
}

const rows: string[][] = [];
const picksAt = new Map<string, number>();
for (const size of SIZES) {
  const anchors: number[] = [];
  const picks = CONTENDERS.map((): number[] => []);
  for (let round = 0; round < ROUNDS; round += 1) {
    anchors.push(anchorNsPerPick(size));
    CONTENDERS.forEach((contender, index) => picks[index]!.push(pickNs(contender, size)));
  }
  const anchor = median(anchors);
  rows.push(['array[i++ % n] (anchor)', String(size), anchor.toFixed(1), '1.0', '-', '-']);
  CONTENDERS.forEach((contender, index) => {
    const pick = median(picks[index]!);
    picksAt.set(`${contender.name}@${size}`, pick);
    const updates = contender.open === 0 ? [updateUs(contender.create, size, 'swap').toFixed(1), updateUs(contender.create, size, 'health').toFixed(1)] : ['-', '-'];
    rows.push([contender.name, String(size), pick.toFixed(1), (pick / anchor).toFixed(1), ...updates]);
  });
}

const header = ['algorithm', 'instances', 'ns/pick', '× anchor', 'µs/update (1 leaves, 1 joins)', 'µs/update (1 health flip)'];
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
const line = (cells: readonly string[]) => cells.map((cell, column) => (column < 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
console.log(`node ${process.version}, ${TARGET_MS} ms per measurement after warm-up, picks the median of ${ROUNDS} alternating rounds; a pick includes its done() call`);
console.log([line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n'));
console.log('\nat 1,000 instances (target ≤ 1,000 ns per pick):');
for (const name of ['weighted-round-robin', 'least-connections', `least-connections (${OPEN_REQUESTS} in flight)`]) {
  const now = picksAt.get(`${name}@1000`)!;
  const before = picksAt.get(`${name} (linear, before)@1000`)!;
  console.log(`  ${name}: ${now.toFixed(0)} ns per pick, linear before ${before.toFixed(0)} ns: ${(before / now).toFixed(1)}× faster`);
}
