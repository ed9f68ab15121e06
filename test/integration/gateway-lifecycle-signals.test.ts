import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acceptsConnections, holdBundle, logOf, makeTempDir, REPO_ROOT, startBackend, startEtcd, startGateway, startOnTerminal, waitFor } from '../harness/index.ts';
import { lifecycleConfigFor as configFor, lifecycleFixtures } from '../harness/gateway-lifecycle.ts';
import { descendantsOf, killStillRunning, stillRunning } from '../harness/process-tree.ts';

// The signals a gateway takes beside SIGTERM's drain (gateway-lifecycle.test.ts), its start-up, and
// its output: a file of its own so that CI's Node 24 run of the lifecycle runs both halves side by side.
const { gateways, closers, gatewayOverHeldBackend } = lifecycleFixtures();

describe('gateway lifecycle: signals, start-up and output', () => {
  it("ignores SIGUSR2 and SIGUSR1 (a log rotation's and nginx's signals): logs each, keeps serving, opens no inspector", async () => {
    const backend = await startBackend({ name: 'usr' });
    closers.push(() => void backend.process.kill());
    const gateway = await startGateway(configFor(backend.port));
    gateways.push(gateway);
    for (const signal of ['SIGUSR2', 'SIGUSR1'] as const) {
      process.kill(gateway.process.pid!, signal);
      // Node's default ends the gateway on SIGUSR2, cutting what is in flight, and opens its inspector on SIGUSR1.
      await waitFor(async () => !gateway.process.running || (await logOf(gateway.process)).includes(`"msg":"${signal} ignored`), { timeoutMs: 10_000, message: `the gateway to log ${signal}` });
      expect(gateway.process.running, await logOf(gateway.process)).toBe(true);
    }
    const response = await fetch(`${gateway.url}/`);
    expect([response.status, await response.text()]).toEqual([200, expect.stringContaining('usr')]);
    expect(await logOf(gateway.process)).not.toContain('Debugger listening');
  });

  it('survives SIGUSR2 and keeps its inspector shut on SIGUSR1 that come while it is still loading its code', async () => {
    const backend = await startBackend({ name: 'early-usr' });
    closers.push(() => void backend.process.kill());
    const hold = await holdBundle('switchboard.js');
    const starting = startGateway(configFor(backend.port), hold.env);
    const pid = await hold.held();
    // SIGUSR1 first: Node's default opens the inspector and the gateway lives on, so SIGUSR2 still finds it.
    process.kill(pid, 'SIGUSR1');
    process.kill(pid, 'SIGUSR2');
    await hold.release();
    const gateway = await starting;
    gateways.push(gateway);
    const response = await fetch(`${gateway.url}/`);
    expect([response.status, await response.text()]).toEqual([200, expect.stringContaining('early-usr')]);
    expect(await logOf(gateway.process)).not.toContain('Debugger listening');
  });

  it('survives a SIGHUP that comes while it is still loading its code (systemctl reload just after a start), then starts and serves', async () => {
    const backend = await startBackend({ name: 'early' });
    closers.push(() => void backend.process.kill());
    // The gateway's bundle is held from loading (test/fixtures/hold-bundle.mjs) until the signal is sent: the moment does not depend on timing.
    const hold = await holdBundle('switchboard.js');
    const starting = startGateway(configFor(backend.port), hold.env);
    // Written once the bin runs and is about to load the gateway's code, the gateway's own handlers not yet in place.
    const pid = await hold.held();
    process.kill(pid, 'SIGHUP');
    await hold.release();
    const gateway = await starting;
    gateways.push(gateway);
    expect(gateway.process.pid).toBe(pid);
    const response = await fetch(`${gateway.url}/`);
    expect([response.status, await response.text()]).toEqual([200, expect.stringContaining('early')]);
  });

  it('drains as on SIGTERM when its terminal hangs up (an ssh session ended): the request in flight gets its answer, then it ends', async () => {
    const waiting: ServerResponse[] = [];
    const backend = createHttpServer((request, response) => {
      request.resume();
      waiting.push(response);
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    closers.push(() => backend.close());
    const path = join(await makeTempDir('sb-tty-'), 'gateway.yaml');
    await writeFile(path, configFor((backend.address() as AddressInfo).port).replace('{{port}}', '0'));
    // `script` runs the gateway on a pseudo-terminal of its own, as a shell would: its output is a terminal.
    const gateway = await startOnTerminal('bin/switchboard.js', ['--config', path], 'gateway listening');
    closers.push(() => gateway.kill());
    // Its ready line names the port it took: `"ports":{"<entry point>":<port>}`.
    const port = Number(/"ports":\{"[^"]+":(\d+)/.exec(gateway.output())?.[1]);
    expect(port).toBeGreaterThan(0);
    const answer = fetch(`http://127.0.0.1:${port}/slow`).then(
      async (response) => [response.status, await response.text()],
      (error: Error) => [0, String(error.cause ?? error)],
    );
    await waitFor(() => waiting.length === 1, { timeoutMs: 10_000, message: 'the request to reach the backend' });
    // The terminal goes away: the kernel sends the gateway, which `script` made the terminal's
    // controlling process, a SIGHUP, and its writes to that terminal fail from then on.
    gateway.hangUp();
    // Draining, it closes its listener (Node's default would have ended it, the request cut).
    await waitFor(async () => !(await acceptsConnections(port)), { timeoutMs: 10_000, message: 'the gateway to stop accepting connections' });
    expect(gateway.running()).toBe(true);
    waiting[0]!.end('answered after the hangup');
    expect(await answer).toEqual([200, 'answered after the hangup']);
    await waitFor(() => !gateway.running(), { timeoutMs: 10_000, message: 'the gateway to end after its drain' });
  });

  it('ends at once on a second Ctrl-C (SIGINT) during the drain, with 130, cutting the request in flight; a second SIGTERM changes nothing', async () => {
    const { gateway, waiting } = await gatewayOverHeldBackend();
    const inFlight = fetch(`${gateway.url}/slow`).then((response) => response.text()).then(() => 'answered', () => 'cut');
    await waitFor(() => waiting.length === 1, { message: 'the request to reach the backend' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the listener to close' });
    process.kill(gateway.process.pid!, 'SIGTERM');
    // The drain waits for the held request (drainTimeout 25 s): the second SIGTERM has not ended it.
    await waitFor(async () => (await logOf(gateway.process)).includes('"msg":"draining"'), { timeoutMs: 5_000, message: 'the drain to be logged' });
    expect(gateway.process.running).toBe(true);
    process.kill(gateway.process.pid!, 'SIGINT');
    expect((await gateway.process.waitForExit(10_000)).code).toBe(130);
    expect(await inFlight).toBe('cut');
    expect(await logOf(gateway.process)).toMatch(/"signal":"SIGINT"[^\n]*"msg":"a second SIGINT: ending now, without waiting for the drain"/);
  });

  it('with workers, ends the primary and its workers at once on a second Ctrl-C to the primary alone', async () => {
    const { gateway, waiting } = await gatewayOverHeldBackend('workers: 2\n');
    const inFlight = fetch(`${gateway.url}/slow`).then((response) => response.text()).then(() => 'answered', () => 'cut');
    await waitFor(() => waiting.length === 1, { timeoutMs: 10_000, message: 'the request to reach the backend' });
    const workers = descendantsOf(gateway.process.pid!).filter((record) => record.command.includes('switchboard'));
    expect(workers).toHaveLength(2);
    closers.push(() => killStillRunning(workers));
    process.kill(gateway.process.pid!, 'SIGINT');
    await waitFor(async () => (await logOf(gateway.process)).includes('"msg":"draining"'), { timeoutMs: 5_000, message: 'the drain to be logged' });
    process.kill(gateway.process.pid!, 'SIGINT');
    expect((await gateway.process.waitForExit(10_000)).code).toBe(130);
    expect(await inFlight).toBe('cut');
    // Left alone, a worker would drain on its primary's going and hold the request to drainTimeout.
    await waitFor(() => stillRunning(workers).length === 0, { timeoutMs: 5_000, message: 'the workers to be gone' });
  });

  it.each([
    ['a hangup that reaches the whole job (a shell passes it on)', 'SIGHUP'],
    ['a Ctrl-C (the terminal sends it to the whole job)', 'SIGINT'],
  ] as const)('with workers, leaves %s to the primary: no worker drains early or is replaced as crashed', async (_, signal) => {
    const etcd = await startEtcd();
    closers.push(() => void etcd.close());
    const path = join(await makeTempDir('sb-tty-workers-'), 'gateway.yaml');
    const store = `etcd://${etcd.endpoints[0]!.replace('http://', '')}/sb`;
    await writeFile(path, `listen: 127.0.0.1:0\nadmin: false\nworkers: 2\nconfigStore: ${store}\npeers: { id: hangup, ttl: 30s }\nroutes: []\n`);
    const gateway = await startOnTerminal('bin/switchboard.js', ['--config', path], 'gateway listening');
    closers.push(() => gateway.kill());
    // The store stops answering: the primary's stop waits (PEER_LEAVE_TIMEOUT_MS, 2 s) for its peer
    // entry to go before it drains the workers, longer than an idle worker takes to drain on its own.
    etcd.members[0]!.pause();
    // An interactive shell whose terminal hangs up sends SIGHUP to its job's process group, and the
    // terminal sends Ctrl-C's SIGINT there itself: the primary (here the group's leader) and its workers alike.
    process.kill(-gateway.pid, signal);
    await waitFor(() => !gateway.running(), { timeoutMs: 20_000, message: `the gateway to end after ${signal} to its job` });
    expect(gateway.output()).toMatch(new RegExp(`"signal":"${signal}"[^\\n]*"msg":"draining"`));
    expect(gateway.output()).not.toMatch(/worker exited; replacing it|no worker is listening/);
  });

  it('writes human-readable lines with --pretty when its output is a file or a pipe, not a terminal', async () => {
    const backend = await startBackend({ name: 'pretty' });
    closers.push(() => void backend.process.kill());
    const path = join(await makeTempDir('sb-pretty-'), 'gateway.yaml');
    await writeFile(path, configFor(backend.port).replace('{{port}}', '0'));
    const gateway = spawn(process.execPath, ['bin/switchboard.js', '--config', path, '--pretty'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' } });
    closers.push(() => gateway.kill('SIGKILL'));
    let output = '';
    gateway.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    gateway.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => gateway.on('exit', resolve));
    await waitFor(() => /INFO +gateway: gateway listening/.test(output), { timeoutMs: 30_000, message: "a pretty \"gateway listening\" line" });
    gateway.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Every line of its own in the pretty form: none of the JSON lines of the default sink.
    expect(output).toMatch(/INFO +main: draining/);
    expect(output.split('\n').filter((line) => line.startsWith('{'))).toEqual([]);
  });

  it('refuses to start on an invalid file, naming the file, the key, the line and the reason', async () => {
    const path = join(await makeTempDir('sb-bad-config-'), 'gateway.yaml');
    await writeFile(path, 'listen: 127.0.0.1:0\nroutes:\n  - { path: /a, servce: a }\n');
    const run = spawnSync(process.execPath, ['bin/switchboard.js', '--config', path], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${path}: routes.0.servce (line 3): unknown field "servce"`);
  });
});
