import { existsSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { freePort, makeTempDir, ManagedProcess, readTail, REPO_ROOT, retryOnPortClash, waitFor } from '../harness/index.ts';
import { descendantsOf, killStillRunning, stillRunning, type ProcessRecord } from '../harness/process-tree.ts';

const START_TIMEOUT_MS = 90_000;
const CHURN_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** `helloworld.Greeter/SayHello` with name "demo" by raw HTTP/2 through `port`: the grpc-status and the reply's text. */
function sayHello(port: number): Promise<{ grpcStatus: string | undefined; reply: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', 'content-type': 'application/grpc', te: 'trailers' });
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => (grpcStatus = (headers['grpc-status'] as string | undefined) ?? grpcStatus));
    stream.on('trailers', (trailers) => (grpcStatus = trailers['grpc-status'] as string));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      // One gRPC frame (5-byte prefix) holding HelloReply { message = 1 }: skip the prefix and the field's two bytes.
      resolve({ grpcStatus, reply: Buffer.concat(chunks).subarray(7).toString() });
    });
    const request = Buffer.from([0x0a, 4, ...Buffer.from('demo')]);
    stream.end(Buffer.concat([Buffer.from([0, 0, 0, 0, request.length]), request]));
  });
}

describe('npm run demo', () => {
  let demo: ManagedProcess | undefined;
  let children: ProcessRecord[] = [];

  afterAll(async () => {
    // Only when an assertion failed midway: stop the demo the way a user would, then make sure.
    if (demo?.running && demo.pid !== undefined) {
      process.kill(demo.pid, 'SIGINT');
      await demo.waitForExit(STOP_TIMEOUT_MS).catch(() => demo?.kill());
    }
    killStillRunning(children);
  });

  /** The backend names (or failures) of `count` requests sent one after another to `url`. */
  async function answers(url: string, count: number): Promise<string[]> {
    const names: string[] = [];
    for (let index = 0; index < count; index += 1) {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await response.text();
      names.push(response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`);
    }
    return names;
  }

  it('serves traffic from several backends, follows a backend leaving and returning, and stops everything on SIGINT with status 0', async () => {
    // The demo takes a port asked for only when it can bind it, but a program of the other test worker
    // may take one between that check and the bind: then its gateway (or another of its programs)
    // exits, the demo stops, and it is started again on fresh ports.
    let output: () => Promise<string> = () => Promise.resolve('');
    const { url, adminPort, running } = await retryOnPortClash(async () => {
      const dir = await makeTempDir('sb-demo-test-');
      const started = new ManagedProcess({
        name: 'npm run demo',
        command: process.execPath,
        args: [join(REPO_ROOT, 'scripts/demo.mjs')],
        logFile: join(dir, 'demo.log'),
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          DEMO_PORT: String(await freePort()),
          DEMO_ADMIN_PORT: String(await freePort()),
          DEMO_TCP_PORT: String(await freePort()),
          DEMO_CHURN_SECONDS: '2',
          DEMO_RPS: '4',
          // A safety net: a demo this test lost track of still stops by itself.
          DEMO_DURATION_SECONDS: '300',
        },
      });
      demo = started;
      started.start();
      output = (): Promise<string> => readTail(started.logFile, 1 << 20);
      // The ports it printed, not the ones asked for: one taken at its check is replaced by a free one.
      const printed = await waitFor(
        async () => {
          if (!started.running) return 'exited';
          const text = await output();
          const proxy = /^demo: proxy\s+(\S+)/m.exec(text)?.[1];
          const admin = /^demo: dashboard\s+http:\/\/127\.0\.0\.1:(\d+)\//m.exec(text)?.[1];
          return proxy !== undefined && admin !== undefined ? { url: proxy, adminPort: Number(admin), running: started } : undefined;
        },
        { timeoutMs: START_TIMEOUT_MS, intervalMs: 200, message: 'the demo to print its proxy URL' },
      ).catch(async (error: Error) => {
        await started.kill();
        throw new Error(`${error.message}\n${await output()}`);
      });
      if (printed === 'exited') throw new Error(`the demo exited before it printed its proxy URL\n${await output()}`);
      return printed;
    });
    const port = Number(new URL(url).port);
    const filesDir = /logs of every process go to (\S+)\/logs\//.exec(await output())?.[1];
    expect(filesDir).toBeDefined();

    // The TCP service: a line server behind the tcp entry point answers through the gateway, and /api/tcp counts it.
    const tcpAnswer = await waitFor(async () => /^demo: tcp\s+127\.0\.0\.1:\d+ .*"(.*)"\)$/m.exec(await output())?.[1], { timeoutMs: START_TIMEOUT_MS, message: 'the demo to print its tcp line' });
    // On a failure the TCP member's own log (agent and line server), the gateway's view of its
    // service and the gateway's log say why, beside the demo's output. (Once in a dozen CI runs the
    // demo printed "not answering yet" here.)
    const tcpFailure = async () => {
      const log = (name: string) => readTail(join(filesDir!, 'logs', name), 1 << 16).catch((error: Error) => error.message);
      const view = await fetch(`http://127.0.0.1:${adminPort}/api/services`)
        .then(async (response) => JSON.stringify(((await response.json()) as { services: { name: string }[] }).services.find((service) => service.name === 'demo-tcp') ?? 'no demo-tcp service'))
        .catch((error: Error) => error.message);
      return `${await output()}\n--- tcp-backend-1.log ---\n${await log('tcp-backend-1.log')}\n--- /api/services demo-tcp ---\n${view}\n--- gateway.log ---\n${await log('gateway.log')}`;
    };
    expect(tcpAnswer, tcpAnswer === 'tcp-backend-1: hello' ? '' : await tcpFailure()).toBe('tcp-backend-1: hello');
    const tcpView = (await (await fetch(`http://127.0.0.1:${adminPort}/api/tcp`)).json()) as { entryPoints: { service: string }[]; services: { name: string; total: number }[] };
    expect(tcpView.entryPoints.map((entryPoint) => entryPoint.service)).toEqual(['demo-tcp']);
    expect(tcpView.services.find((service) => service.name === 'demo-tcp')?.total).toBeGreaterThanOrEqual(1);

    // Traffic through the gateway reaches more than one backend.
    const seen = new Set((await answers(url, 18)).filter((name) => name.startsWith('backend-')));
    expect(seen.size).toBeGreaterThanOrEqual(2);

    // The gRPC greeter is registered with protocol grpc, shows in the admin API the dashboard
    // reads, and answers a gRPC call through the gateway's h2c entry point.
    const greeter = await waitFor(async () => (await adminClient(`http://127.0.0.1:${adminPort}`).instance('greeter', 'greeter-1').catch(() => undefined)) ?? undefined, {
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 250,
      message: 'the gRPC greeter in the admin API',
    });
    expect(greeter.protocol).toBe('grpc');
    const hello = await waitFor(async () => {
      const answer = await sayHello(port).catch(() => undefined);
      return answer?.grpcStatus === '0' ? answer : undefined;
    }, { timeoutMs: START_TIMEOUT_MS, intervalMs: 250, message: 'a gRPC call through the gateway to succeed' });
    expect(hello.reply).toBe('Hello demo, from greeter-1');

    // Churn: one of them stops answering (its agent deregistered it), then answers again.
    const gone = await waitFor(async () => {
      const window = new Set(await answers(url, 18));
      return [...seen].find((name) => !window.has(name));
    }, { timeoutMs: CHURN_TIMEOUT_MS, intervalMs: 100, message: 'a backend to disappear from the answers' });
    await waitFor(async () => (await answers(url, 12)).includes(gone), {
      timeoutMs: CHURN_TIMEOUT_MS,
      intervalMs: 100,
      message: `${gone} to answer again after its restart`,
    });
    expect(await output()).toMatch(new RegExp(`churn: restarting ${gone}`));

    children = descendantsOf(running.pid!);
    const commands = children.map((child) => child.command).join('\n');
    expect(commands).toMatch(/ZooKeeperServerMain/);
    expect(commands).toMatch(/bin\/switchboard\.js/);
    expect(commands.match(/bin\/switchboard-agent\.js/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    expect(commands).toMatch(/fixtures\/backend\.mjs/);
    expect(commands).toMatch(/demo\/greeter\.mjs/);
    expect(commands).toMatch(/demo\/tcp-backend\.mjs/);

    process.kill(running.pid!, 'SIGINT');
    const exit = await running.waitForExit(STOP_TIMEOUT_MS);
    expect(exit, await output()).toEqual({ code: 0, signal: null });
    expect(await output()).toMatch(/demo: stopped; every process it started has exited/);
    expect(stillRunning(children).map((child) => child.command)).toEqual([]);
    expect(existsSync(filesDir!)).toBe(false);
  });
});
