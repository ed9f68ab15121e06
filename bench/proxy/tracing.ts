// The cost of tracing, contenders alternating in rounds (medians): the gateway of a baseline
// checkout (BENCH_TRACING_BASELINE, a folder with a built bin/switchboard.js; tracing did not exist
// there), this gateway with tracing off, and with tracing on at sampleRatio 1.0 and 0.01, exporting
// to an OTLP/HTTP sink in this process that reads and discards every export.
// Run: npm run bench:tracing   (env BENCH_DURATION_S, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_TRACING_BASELINE)
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { table } from '../lib/stats.ts';
import { alternateRounds, type Contender } from './rounds.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BASELINE = process.env.BENCH_TRACING_BASELINE;

const children: ChildProcess[] = [];
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-tracing-'));
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function start(command: string, args: string[], port: number): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' }, cwd: REPO_ROOT });
  child.stdout!.resume();
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${args.join(' ')} on port ${port}` });
}

let exports = 0;
let exportBytes = 0;
const sink = createServer((request, response) => {
  request.on('data', (chunk: Buffer) => (exportBytes += chunk.length));
  request.on('end', () => {
    exports += 1;
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
const sinkPort = await freePort();
sink.listen(sinkPort, '127.0.0.1');

const backends = [await freePort(), await freePort()];
const contenders: Contender[] = [];
try {
  for (const backend of backends) await start(process.execPath, ['bench/proxy/backend.mjs', String(backend)], backend);
  const gateway = async (name: string, program: string, tracing: string) => {
    const port = await freePort();
    const file = join(dir, `${contenders.length}.yaml`);
    await writeFile(file, `listen: 127.0.0.1:${port}\nadmin: false\n${tracing}services:\n  b: { balancer: round-robin, instances: [${backends.map((p) => `127.0.0.1:${p}`).join(', ')}] }\nroutes:\n  - { path: /, service: b }\n`);
    await start(process.execPath, [program, '--config', file], port);
    contenders.push({ name, url: `http://127.0.0.1:${port}/` });
  };
  const endpoint = `http://127.0.0.1:${sinkPort}/v1/traces`;
  if (BASELINE && existsSync(join(BASELINE, 'bin/switchboard.js'))) await gateway(`baseline (${BASELINE})`, join(BASELINE, 'bin/switchboard.js'), '');
  await gateway('tracing off', 'bin/switchboard.js', '');
  await gateway('tracing on, ratio 1.0', 'bin/switchboard.js', `tracing: { endpoint: "${endpoint}", sampleRatio: 1 }\n`);
  await gateway('tracing on, ratio 0.01', 'bin/switchboard.js', `tracing: { endpoint: "${endpoint}", sampleRatio: 0.01 }\n`);
  const rows = await alternateRounds(contenders, { connections: CONNECTIONS, durationS: DURATION_S, warmupS: 2, rounds: ROUNDS });
  const anchor = rows.find((row) => row.name === 'tracing off')!.requestsPerSecond;
  process.stdout.write(
    `\nTracing cost: wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${DURATION_S}s, contenders alternating; medians\n\n${table(
      ['gateway', 'req/s', 'p50 ms', 'p99 ms', 'errors', '× tracing off'],
      rows.map((row) => [row.name, row.requestsPerSecond.toFixed(0), row.p50Ms.toFixed(2), row.p99Ms.toFixed(2), String(row.errors), (row.requestsPerSecond / anchor).toFixed(3)]),
    )}\n\nOTLP sink: ${exports} exports, ${(exportBytes / 1e6).toFixed(1)} MB\n`,
  );
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  sink.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
