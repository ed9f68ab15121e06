// `npm run bench:regex-check`: what the backtracking check (gateway/config/regex-safety.ts) costs a
// configuration of 1,000 distinct regex routes, the shapes docs/configuration.md lists as common plus
// repeated groups with alternatives (the costliest case of the check: automata built per repetition).
// Alternating rounds (ROUNDS, 9 by default), each on patterns never seen before (the check keeps
// verdicts by source): scslre alone (the check before ambiguous repetitions were added), the whole
// check, and parsing a file of 1,000 such routes (YAML, validation and the check). Prints medians,
// wall clock and CPU time (which a busy machine inflates less). Then V8's time on hostile paths for
// the shapes the check lets through as bounded or with lookarounds, and for what it refuses
// (regex-hostile.ts).
import { analyse } from 'scslre';
import { parseConfig } from '../../gateway/config/load.ts';
import { regexBacktrackingRisk } from '../../gateway/config/regex-safety.ts';
import { table } from '../lib/stats.ts';
import { hostileTable } from './regex-hostile.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 9);
const PATTERNS = 1_000;

/** Route regexes as teams write them, made distinct by `n`. */
const SHAPES: readonly ((n: number) => string)[] = [
  (n) => String.raw`^/api${n}/v[0-9]+/(.*)$`,
  (n) => String.raw`^/static${n}/.*\.(css|js)$`,
  (n) => String.raw`^/users${n}/(?<id>\d+)$`,
  (n) => String.raw`^/(foo${n}|bar)/.*$`,
  (n) => String.raw`^/(v1|v2)/x${n}$`,
  (n) => String.raw`^/t${n}/(?:[a-z0-9-]+/)*item$`,
  (n) => String.raw`^/t${n}/(?:\.\w+|/[a-z]+|-[0-9]+)*$`,
  (n) => String.raw`^/(en|de|fr)/p${n}(/.*)?$`,
];

let fresh = 0;
function patterns(): string[] {
  return Array.from({ length: PATTERNS }, (_, index) => SHAPES[index % SHAPES.length]!((fresh += 1)));
}

interface Contender {
  readonly name: string;
  run(sources: readonly string[]): void;
}
const contenders: Contender[] = [
  { name: 'scslre alone (before)', run: (sources) => sources.forEach((source) => analyse({ source, flags: '' }, { maxReports: 1 })) },
  { name: 'whole check (now)', run: (sources) => sources.forEach((source) => regexBacktrackingRisk(source)) },
  {
    name: 'parse a 1,000-route file (now)',
    run: (sources) => parseConfig('bench.yaml', `routes:\n${sources.map((source, index) => `  - ${JSON.stringify({ pathRegex: source, service: `s${index}` })}`).join('\n')}\n`),
  },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

// One round unmeasured, for the JIT and the modules' first use.
contenders.forEach((contender) => contender.run(patterns()));
const wallMs = contenders.map((): number[] => []);
const cpuMs = contenders.map((): number[] => []);
for (let round = 0; round < ROUNDS; round += 1) {
  contenders.forEach((contender, index) => {
    const sources = patterns();
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    contender.run(sources);
    wallMs[index]!.push(performance.now() - started);
    const cpu = process.cpuUsage(cpuStarted);
    cpuMs[index]!.push((cpu.user + cpu.system) / 1_000);
  });
}
console.log(`node ${process.version}, ${PATTERNS} distinct regex patterns a round (${SHAPES.length} shapes), ${ROUNDS} rounds alternating`);
console.log(
  table(
    ['contender', 'wall ms (median)', 'CPU ms (median)', 'CPU µs per pattern'],
    contenders.map((contender, index) => [contender.name, median(wallMs[index]!).toFixed(0), median(cpuMs[index]!).toFixed(0), ((median(cpuMs[index]!) * 1_000) / PATTERNS).toFixed(0)]),
  ),
);
console.log(`\nV8 on hostile paths (${process.version}), beside the check's verdict`);
console.log(hostileTable());
