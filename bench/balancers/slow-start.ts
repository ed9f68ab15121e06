// Slow start benchmark: (1) the share of traffic a new instance gets per second of its ramp, per
// algorithm, on a simulated clock (2 warm instances of weight 1, a third joins at t = 0); (2) what
// the ramp costs: ns per weighted-round-robin pick with and without a ramping member, beside a
// variant that computes the ramp at pick time, and µs per timer rebuild (`reweigh`).
// Run: npm run bench:slow-start  (env BENCH_TARGET_MS sets the time per measurement, 200 by default)
import { instanceAddress, type Instance } from '../../src/discovery/instance.ts';
import type { BalancerAlgorithm, BalancerEndpoint } from '../../src/balance/balancer.ts';
import { createBalancer, type BalancerConfig } from '../../src/balance/balancer-factory.ts';
import { WeightedMember } from '../../src/balance/balancer-weighted-round-robin.ts';
import { HostLoads } from '../../src/balance/host-load.ts';
import { SLOW_START_ALGORITHMS, slowStartFactor, slowStartTickMs, type SlowStartOptions } from '../../src/balance/slow-start.ts';
import { measure } from './measure.ts';

const TARGET_MS = Number(process.env.BENCH_TARGET_MS ?? 200);
const SLOW: SlowStartOptions = { windowMs: 4_000, aggression: 1, minWeightPercent: 10 };
const PICKS_PER_SECOND = 2_000;
const OK = { ok: true, latencyMs: 3 } as const;

function endpointsOf(count: number, offset = 0): BalancerEndpoint[] {
  return Array.from({ length: count }, (_, index) => {
    const number = index + offset;
    const instance: Instance = { id: `i-${number}`, service: 'bench', host: `10.${number >> 16}.${(number >> 8) & 255}.${number & 255}`, port: 8080, weight: 1, protocol: 'http', metadata: {} };
    return { address: instanceAddress(instance), instance, routable: true };
  });
}

/** Share of the joining member per simulated second, the balancer rebuilt every tick as the gateway's timer does. */
function sharesPerSecond(algorithm: BalancerAlgorithm, options: SlowStartOptions, seconds: number): number[] {
  let now = 0;
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
  const balancer = createBalancer({ algorithm } as BalancerConfig, { now: () => now, random, slowStart: options });
  balancer.update(endpointsOf(2));
  balancer.update(endpointsOf(3));
  const tick = slowStartTickMs(options);
  const shares: number[] = [];
  for (let second = 0; second < seconds; second += 1) {
    let joined = 0;
    for (let pick = 0; pick < PICKS_PER_SECOND; pick += 1) {
      const next = second * 1_000 + (pick * 1_000) / PICKS_PER_SECOND;
      if (Math.floor(next / tick) !== Math.floor(now / tick)) balancer.reweigh();
      now = next;
      const result = balancer.picker.pick({});
      if (result.kind !== 'endpoint') continue;
      if (result.instance.id === 'i-2') joined += 1;
      result.done(OK);
    }
    shares.push(joined / PICKS_PER_SECOND);
  }
  return shares;
}

/** nginx's smooth WRR step with the ramp computed per member at pick time: the alternative the timer avoids. */
function pickTimeStep(members: readonly (WeightedMember & { startedAt: number })[], now: number): WeightedMember {
  let best = members[0]!;
  let total = 0;
  for (const member of members) {
    const weight = member.startedAt < 0 ? member.weight : member.weight * slowStartFactor(now - member.startedAt, SLOW);
    member.current += weight;
    total += weight;
    if (member.current > best.current) best = member;
  }
  best.current -= total;
  return best;
}

function pickNs(size: number, mode: 'off' | 'ramping'): number {
  const balancer = createBalancer({ algorithm: 'weighted-round-robin' }, mode === 'off' ? {} : { slowStart: SLOW });
  balancer.update(endpointsOf(size - 1));
  const picker = balancer.update(endpointsOf(size));
  return measure(TARGET_MS, (iterations) => {
    for (let round = 0; round < iterations; round += 1) {
      const result = picker.pick({});
      if (result.kind === 'endpoint') result.done(OK);
    }
  }).nsPerOp;
}

function pickTimeNs(size: number): number {
  const members = endpointsOf(size).map((endpoint, index) => Object.assign(new WeightedMember(endpoint.address, endpoint.instance, true, new HostLoads().of(endpoint.address)), { startedAt: index === size - 1 ? performance.now() : -1 }));
  let sink = 0;
  const result = measure(TARGET_MS, (iterations) => {
    for (let round = 0; round < iterations; round += 1) sink += pickTimeStep(members, performance.now()).instance.port;
  });
  if (sink === -1) console.log('unreachable');
  return result.nsPerOp;
}

function reweighUs(size: number): number {
  let now = 0;
  const balancer = createBalancer({ algorithm: 'weighted-round-robin' }, { now: () => now, slowStart: { ...SLOW, windowMs: 1e12 } });
  balancer.update(endpointsOf(size - 1));
  balancer.update(endpointsOf(size));
  return (
    measure(TARGET_MS, (iterations) => {
      for (let round = 0; round < iterations; round += 1) {
        now += 1;
        balancer.reweigh();
      }
    }).nsPerOp / 1_000
  );
}

const SECONDS = 6;
console.log(`share of a new instance per second (2 warm instances of weight 1; window ${SLOW.windowMs} ms, minWeightPercent ${SLOW.minWeightPercent}; ${PICKS_PER_SECOND} picks/s, rebuilt every ${slowStartTickMs(SLOW)} ms)`);
console.log(['algorithm'.padEnd(22), ...Array.from({ length: SECONDS }, (_, second) => `s${second}`.padStart(7))].join(''));
const expected = Array.from({ length: SECONDS }, (_, second) => {
  // Mean of the ramped weight over the second, then its share beside two weights of 1.
  const steps = 100;
  let sum = 0;
  for (let step = 0; step < steps; step += 1) {
    const weight = slowStartFactor((second + (step + 0.5) / steps) * 1_000, SLOW);
    sum += weight / (weight + 2);
  }
  return sum / steps;
});
console.log(['formula (Envoy)'.padEnd(22), ...expected.map((share) => `${(share * 100).toFixed(1)}%`.padStart(7))].join(''));
for (const algorithm of SLOW_START_ALGORITHMS) {
  console.log([algorithm.padEnd(22), ...sharesPerSecond(algorithm, SLOW, SECONDS).map((share) => `${(share * 100).toFixed(1)}%`.padStart(7))].join(''));
}
const aggressive = { ...SLOW, aggression: 2 };
console.log(['wrr, aggression 2'.padEnd(22), ...sharesPerSecond('weighted-round-robin', aggressive, SECONDS).map((share) => `${(share * 100).toFixed(1)}%`.padStart(7))].join(''));

console.log(`\nweighted-round-robin cost, node ${process.version}, ${TARGET_MS} ms per measurement after warm-up`);
const header = ['instances', 'ns/pick, no slow start', 'ns/pick, 1 ramping (timer)', 'ns/pick, ramp at pick time', 'µs/rebuild per tick'];
const rows = [10, 100, 1_000].map((size) => [String(size), pickNs(size, 'off').toFixed(1), pickNs(size, 'ramping').toFixed(1), pickTimeNs(size).toFixed(1), reweighUs(size).toFixed(1)]);
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padStart(widths[column]!)).join('  ');
console.log([line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n'));
