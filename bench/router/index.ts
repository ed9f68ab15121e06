// Router benchmark: 10,000 routes (exact hosts × prefixes, wildcard hosts, host-less prefixes, regexes).
// Prints, beside the linear matcher the route table replaced (measured in the same run, alternating):
// the time to compile the routes (wall clock, and CPU time, which a busy machine inflates less), and the
// time of one match (p50 and p99 per request, and the mean).
// Run: npm run bench:router  (env BENCH_ROUNDS sets the rounds, 5 by default)
import { parseConfig, parseLocated } from '../../gateway/config/load.ts';
import { createRouter, normalizeHost, type RouteRequest, type Router } from '../../gateway/router/index.ts';
import { LinearRouteList } from '../../gateway/router/router-linear.ts';
import { table } from '../lib/stats.ts';
import { benchConfigText, benchRequests } from './routes.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Requests timed per round for the table; the linear matcher gets fewer, since one of its misses scans every route. */
const TABLE_REQUESTS = 4_096;
const LINEAR_REQUESTS = 512;
/** Each request is timed over this many repeats so that the clock's own cost (~50 ns) is spread thin. */
const REPEATS = 16;

interface Contender {
  readonly name: string;
  compile(): (request: RouteRequest) => unknown;
  readonly requests: number;
}

const text = benchConfigText();
const parseStarted = performance.now();
const config = parseConfig('bench.yaml', text);
const parseMs = performance.now() - parseStarted;
const requests = benchRequests(TABLE_REQUESTS);

const contenders: Contender[] = [
  {
    name: 'route table (segment trees per host)',
    requests: TABLE_REQUESTS,
    compile: () => {
      const router: Router = createRouter(config.routes, { hasService: () => false });
      return (request) => router.route(request);
    },
  },
  {
    name: 'linear scan (before)',
    requests: LINEAR_REQUESTS,
    compile: () => {
      const list = new LinearRouteList(config.routes);
      return (request) => list.match(normalizeHost(request.host), request.path, request);
    },
  },
];

checkAgreement();
const compileMs = contenders.map((): number[] => []);
const compileCpuMs = contenders.map((): number[] => []);
const matchNs = contenders.map((): number[] => []);
const meanNs = contenders.map((): number[] => []);
for (let round = 0; round < ROUNDS; round += 1) {
  contenders.forEach((contender, index) => {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    const match = contender.compile();
    compileMs[index]!.push(performance.now() - started);
    const cpu = process.cpuUsage(cpuStarted);
    compileCpuMs[index]!.push((cpu.user + cpu.system) / 1_000);
    const sample = timeMatches(match, requests.slice(0, contender.requests));
    matchNs[index]!.push(...sample.perRequest);
    meanNs[index]!.push(sample.mean);
  });
}

const rows = contenders.map((contender, index) => {
  const sorted = [...matchNs[index]!].sort((a, b) => a - b);
  return [contender.name, median(compileMs[index]!).toFixed(1), median(compileCpuMs[index]!).toFixed(1), percentile(sorted, 0.5).toFixed(0), percentile(sorted, 0.99).toFixed(0), median(meanNs[index]!).toFixed(0)];
});
const [tableRow, linearRow] = rows;
rows.push(['linear ÷ table', ...tableRow!.slice(1).map((cell, column) => ratio(linearRow![column + 1]!, cell))]);
console.log(`node ${process.version}, ${config.routes.length} routes, ${ROUNDS} rounds alternating; match times per request over ${REPEATS} repeats (${TABLE_REQUESTS} requests for the table, ${LINEAR_REQUESTS} for the linear scan, every tenth a miss)`);
console.log(table(['matcher', 'compile ms (median)', 'compile CPU ms', 'match p50 ns', 'match p99 ns', 'match mean ns (median round)'], rows));
console.log(`targets: match p50 ≤ 1,000 ns, compile ≤ 200 ms. Parsing the same file (YAML + validation, not the router) took ${parseMs.toFixed(0)} ms once.`);
applyConfig();

/**
 * Applying the whole file: text → validated GatewayConfig → router ready, by the fast reader
 * (js-yaml, `yaml` only on errors) and by `yaml`'s parseDocument alone (before), alternating.
 */
function applyConfig(): void {
  const paths = [
    { name: 'apply 10,000-route config (parse + validate + resolve + compile), js-yaml fast path', parse: parseConfig },
    { name: 'same, yaml parseDocument (before)', parse: (path: string, body: string) => parseLocated(path, body, {}) },
  ];
  const wall = paths.map((): number[] => []);
  const cpu = paths.map((): number[] => []);
  for (let round = 0; round < ROUNDS; round += 1) {
    paths.forEach((entry, index) => {
      const started = performance.now();
      const cpuStarted = process.cpuUsage();
      const applied = entry.parse('bench.yaml', text);
      const router = createRouter(applied.routes, { hasService: () => false });
      wall[index]!.push(performance.now() - started);
      const used = process.cpuUsage(cpuStarted);
      cpu[index]!.push((used.user + used.system) / 1_000);
      if (!router.route(requests[0]!)) throw new Error('the applied config does not route');
    });
  }
  const applyRows = paths.map((entry, index) => [entry.name, median(wall[index]!).toFixed(0), median(cpu[index]!).toFixed(0)]);
  applyRows.push(['before ÷ fast path', ratio(applyRows[1]![1]!, applyRows[0]![1]!), ratio(applyRows[1]![2]!, applyRows[0]![2]!)]);
  console.log(table(['apply', 'wall ms (median)', 'CPU ms (median)'], applyRows));
  console.log('target: apply ≤ 200 ms');
}

/** Both matchers must agree on every request, or the comparison means nothing. */
function checkAgreement(): void {
  const [fast, slow] = contenders.map((contender) => contender.compile());
  let routed = 0;
  for (const request of requests) {
    const a = (fast!(request) as { name: string } | undefined)?.name;
    const b = (slow!(request) as { name: string } | undefined)?.name;
    if (a !== b) throw new Error(`matchers disagree on ${JSON.stringify(request)}: ${a} vs ${b}`);
    if (a !== undefined) routed += 1;
  }
  console.log(`both matchers agree on ${requests.length} requests (${routed} routed, ${requests.length - routed} misses)`);
}

function timeMatches(match: (request: RouteRequest) => unknown, sample: readonly RouteRequest[]): { perRequest: number[]; mean: number } {
  let sink = 0;
  // Warm-up pass so that the JIT has settled before timing.
  for (const request of sample) if (match(request)) sink += 1;
  const perRequest: number[] = [];
  const started = process.hrtime.bigint();
  for (const request of sample) {
    const begin = process.hrtime.bigint();
    for (let repeat = 0; repeat < REPEATS; repeat += 1) if (match(request)) sink += 1;
    perRequest.push(Number(process.hrtime.bigint() - begin) / REPEATS);
  }
  const mean = Number(process.hrtime.bigint() - started) / (sample.length * REPEATS);
  if (sink === -1) console.log('unreachable');
  return { perRequest, mean };
}

function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

function ratio(slow: string, fast: string): string {
  return `${(Number(slow) / Number(fast)).toFixed(1)}×`;
}
