// Rate-limiter benchmark:
//  1. Memory: a local limiter fed 1M distinct client IPs (one request each, as a scan or a botnet
//     would), heap and RSS after a full GC, against the bound (RATE_LIMIT_MAX_KEYS keys per
//     limiter; idle keys also expire once their bucket is full again). The same with the bound
//     lifted to 1M keys, for the cost of one key.
//  2. Throughput (wrk, contenders alternating in rounds, medians): a gateway without policy, with a
//     generous local limit, and with the same limit in a redis-server: the policy rows of bench:proxy
//     (bench/proxy/policy.ts) on their own. BENCH_LIMITS_HTTP=0 skips it.
// Run: npm run bench:limits   (env BENCH_DURATION_S, BENCH_ROUNDS, BENCH_CONNECTIONS; needs wrk)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RATE_LIMIT_MAX_KEYS, TokenBucketLimiter } from '../../gateway/middleware/rate-limit/index.ts';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { localLimiterContender, noPolicyContender, policyCostLines, redisLimiterContender, type PolicyBench } from '../proxy/policy.ts';
import { alternateRounds } from '../proxy/rounds.ts';

const KEYS = 1_000_000;
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);

/** Heap and RSS after a full GC. */
function memory(): { heap: number; rss: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss };
}

/** The IPv4 address number `index` in 10.0.0.0/8, as a client IP string. */
const ip = (index: number) => `10.${(index >>> 16) & 255}.${(index >>> 8) & 255}.${index & 255}`;

/** Feeds `KEYS` distinct IPs to a fresh limiter; what it holds and what that costs. */
function fill(maxKeys: number): { keys: number; heapMb: string; rssMb: string; bytesPerKey: string; ms: string } {
  const before = memory();
  // A slow refill: no bucket is full again during the run, so only the key bound forgets keys.
  const limiter = new TokenBucketLimiter({ average: 1, periodMs: 3_600_000, burst: 10, maxKeys });
  const started = performance.now();
  for (let index = 0; index < KEYS; index += 1) limiter.take(ip(index));
  const ms = performance.now() - started;
  const after = memory();
  const heap = after.heap - before.heap;
  const result = { keys: limiter.size, heapMb: mb(heap), rssMb: mb(after.rss - before.rss), bytesPerKey: (heap / limiter.size).toFixed(0), ms: (ms / KEYS * 1_000).toFixed(2) };
  // Keep the limiter alive until measured.
  if (limiter.size < 0) console.log(limiter);
  return result;
}

const rows = [
  [`bound ${RATE_LIMIT_MAX_KEYS.toLocaleString('en')} keys (default)`, fill(RATE_LIMIT_MAX_KEYS)],
  [`bound lifted to ${KEYS.toLocaleString('en')} keys`, fill(KEYS)],
] as const;
process.stdout.write(
  `\nLocal rate limiter, ${KEYS.toLocaleString('en')} distinct client IPs (one request each); heap and RSS growth after a full GC\n\n${table(
    ['limiter', 'keys held', 'heap MB', 'RSS MB', 'bytes/key', 'µs/request'],
    rows.map(([name, row]) => [name, row.keys.toLocaleString('en'), row.heapMb, row.rssMb, row.bytesPerKey, row.ms]),
  )}\nBound: at most ${RATE_LIMIT_MAX_KEYS.toLocaleString('en')} keys per limiter (least recently used forgotten past it; idle keys dropped once full again) ≈ ${mb(RATE_LIMIT_MAX_KEYS * Number(rows[0][1].bytesPerKey))} MB per limiter and per worker, whatever the number of clients.\n`,
);

if (process.env.BENCH_LIMITS_HTTP !== '0') {
  const children: ChildProcess[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-limits-'));
  process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));
  const start = async (args: string[], port: number) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: REPO_ROOT, env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' } });
    children.push(child);
    await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${args.join(' ')} on port ${port}` });
  };
  const upstreams = [await freePort(), await freePort()];
  let redis: Awaited<ReturnType<typeof redisLimiterContender>>['redis'] | undefined;
  try {
    for (const upstream of upstreams) await start(['bench/proxy/backend.mjs', String(upstream)], upstream);
    const bench: PolicyBench = { dir, upstreams, port: freePort, startGateway: (file, port) => start(['bin/switchboard.js', '--config', file], port) };
    const contenders = [await noPolicyContender(bench), await localLimiterContender(bench)];
    const withRedis = await redisLimiterContender(bench);
    redis = withRedis.redis;
    contenders.push(withRedis.contender);
    const results = await alternateRounds(contenders, { connections: CONNECTIONS, durationS: DURATION_S, warmupS: 2, rounds: ROUNDS });
    process.stdout.write(
      `\nThroughput: wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${DURATION_S}s alternating, medians (Node backends)\n\n${table(
        ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors'],
        results.map((row) => [row.name, row.requestsPerSecond.toFixed(0), row.p50Ms.toFixed(2), row.p99Ms.toFixed(2), String(row.errors)]),
      )}\n${policyCostLines(results).join('\n')}\n`,
    );
  } finally {
    children.forEach((child) => child.kill('SIGTERM'));
    await redis?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
process.exit(0);
