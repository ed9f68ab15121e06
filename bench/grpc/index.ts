// gRPC through Switchboard against the same grpc-js server directly, in one run: h2load posts a
// prepared gRPC message (5-byte prefix + payload) to test.Echo/Echo of test/fixtures/backend-grpc.mjs,
// direct and through the gateway (h2c entry point, instance protocol grpc), alternating rounds,
// and prints req/s medians and the ratio. ghz is not packaged here; h2load (nghttp2-client) is.
//   npm run bench:grpc [-- --rounds 5 --duration 5 --clients 8 --streams 16]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { acceptsConnections, freePort, REPO_ROOT, waitFor } from '../../test/harness/index.ts';
import { grpcBackendCommand } from '../../test/harness/grpc.ts';
import { captureStdout } from '../lib/capture.ts';
import { table } from '../lib/stats.ts';
import { median } from '../proxy/rounds.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, duration: { type: 'string', default: '5' }, clients: { type: 'string', default: '8' }, streams: { type: 'string', default: '16' } },
});
const rounds = Number(values.rounds);
const durationS = Number(values.duration);
const clients = Number(values.clients);
const streams = Number(values.streams);

const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));
const dir = await mkdtemp(join(tmpdir(), 'sb-bench-grpc-'));

async function start(command: string, args: string[], port: number): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: REPO_ROOT });
  children.push(child);
  await waitFor(() => acceptsConnections(port), { timeoutMs: 60_000, message: `${args.join(' ')} on port ${port}` });
}

/** One unary call by raw HTTP/2: the grpc-status it ended with (h2load counts HTTP 200 only, so each contender is checked once first). */
function grpcStatusOf(port: number, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
    let status = 'missing';
    stream.on('response', (headers) => (status = String(headers['grpc-status'] ?? status)));
    stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'] ?? status)));
    stream.resume();
    stream.on('close', () => {
      session.close();
      resolve(status);
    });
    stream.end(body);
  });
}

/** One h2load run posting the prepared message; requests per second and failures (non-2xx, errors). */
async function h2load(port: number, bodyFile: string, seconds: number): Promise<{ requestsPerSecond: number; errors: number }> {
  const args = ['-c', String(clients), '-m', String(streams), '-D', String(seconds), '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${port}/test.Echo/Echo`];
  const output = await captureStdout('h2load', args);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
  const perSecond = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output);
  if (!requests || !perSecond) throw new Error(`could not read h2load's summary:\n${output}`);
  return { requestsPerSecond: Number(perSecond[1]), errors: Number(requests[5]) + Number(requests[6]) + Number(requests[7]) };
}

try {
  const [backendPort, gatewayPort] = [await freePort(), await freePort()];
  const message = Buffer.from('hello, switchboard');
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
  const bodyFile = join(dir, 'echo.grpc');
  await writeFile(bodyFile, body);
  const configFile = join(dir, 'gateway.yaml');
  await writeFile(
    configFile,
    `admin: false
accessLog: false
workers: 1
entryPoints:
  web: { listen: "127.0.0.1:${gatewayPort}", h2c: true }
services:
  echo: { instances: [{ host: 127.0.0.1, port: ${backendPort}, protocol: grpc }] }
routes:
  - { grpcService: test.Echo, service: echo }
`,
  );
  const [node, ...backendArgs] = grpcBackendCommand(backendPort, 'bench');
  await start(node!, backendArgs, backendPort);
  await start(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configFile], gatewayPort);
  const contenders = [
    { name: 'direct (grpc-js server)', port: backendPort },
    { name: 'through Switchboard', port: gatewayPort },
  ];
  for (const contender of contenders) {
    await waitFor(async () => ((await grpcStatusOf(contender.port, body)) === "0" ? "ok" : undefined), { timeoutMs: 20_000, message: `grpc-status 0 from ${contender.name}` });
    await h2load(contender.port, bodyFile, 2);
  }
  const runs = contenders.map((): { requestsPerSecond: number; errors: number }[] => []);
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    // Alternate the order each round, so a neighbour's burst lands on both alike.
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const index of order) runs[index]!.push(await h2load(contenders[index]!.port, bodyFile, durationS));
    ratios.push(runs[1]![round]!.requestsPerSecond / runs[0]![round]!.requestsPerSecond);
  }
  console.log(`gRPC unary test.Echo/Echo, h2load -c ${clients} -m ${streams}, ${rounds} rounds of ${durationS} s, medians\n`);
  console.log(
    table(
      ['contender', 'req/s', 'errors', 'ratio to direct'],
      contenders.map((contender, index) => {
        const rps = median(runs[index]!.map((run) => run.requestsPerSecond));
        const errors = runs[index]!.reduce((sum, run) => sum + run.errors, 0);
        return [contender.name, rps.toFixed(0), String(errors), index === 0 ? '1.00' : median(ratios).toFixed(2)];
      }),
    ),
  );
  console.log(`\nper-round ratios: ${ratios.map((ratio) => ratio.toFixed(2)).join(' ')}`);
} finally {
  children.forEach((child) => child.kill('SIGTERM'));
  await rm(dir, { recursive: true, force: true });
}
