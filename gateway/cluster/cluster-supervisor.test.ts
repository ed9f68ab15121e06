import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../src/metrics.ts';
import { waitFor } from '../../test/harness/index.ts';
import { workerRestartsTotal } from './cluster-restarts.ts';
import { WorkerSupervisor, type SupervisorHooks } from './cluster-supervisor.ts';

// Real worker processes: the stub in test/fixtures speaks the IPC protocol and misbehaves on request.
describe('WorkerSupervisor', () => {
  const log = pino({ level: 'silent' });
  const exits: { pid: number | undefined; code: number | null; signal: string | null }[] = [];
  const onExit = (worker: Worker, code: number | null, signal: string | null) => exits.push({ pid: worker.process.pid, code, signal });
  let supervisor: WorkerSupervisor | undefined;

  const hooks = (overrides: Partial<SupervisorHooks> = {}): SupervisorHooks => ({
    attach: (send) => {
      send({ kind: 'switchboard:config', path: 'gateway.yaml', text: '', workers: 1, sequence: 1, digest: '' });
      return () => undefined;
    },
    message: () => undefined,
    exited: () => undefined,
    failedToStart: () => undefined,
    ...overrides,
  });

  function stub(mode: string): void {
    process.env.STUB_MODE = mode;
    cluster.setupPrimary({ exec: join(import.meta.dirname, '../../test/fixtures/cluster-worker-stub.mjs'), silent: true });
    cluster.on('exit', onExit);
  }

  /** One worker started normally, then killed; its replacement runs the stub in `mode`. Resolves with the replacement's pid once forked. */
  async function replacementIn(mode: string): Promise<number> {
    stub('normal');
    supervisor = new WorkerSupervisor(1, hooks(), log);
    await supervisor.start();
    process.env.STUB_MODE = mode;
    const [first] = supervisor.connected();
    first!.process.kill('SIGKILL');
    return waitFor(() => supervisor!.view()[0]!.pid !== first!.process.pid && supervisor!.view()[0]!.pid, { message: 'the replacement to be forked' }) as Promise<number>;
  }

  afterEach(async () => {
    await supervisor?.stop(5_000);
    supervisor = undefined;
    cluster.off('exit', onExit);
    exits.length = 0;
    delete process.env.STUB_MODE;
    delete process.env.STUB_BUSY_MS;
    delete process.env.STUB_DRAIN_MS;
  });

  /** A logger whose lines (parsed) land in the array it returns. */
  function capturedLog() {
    const lines: { msg: string; worker?: number }[] = [];
    return { lines, logger: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) }) };
  }
  const unresponsiveRestarts = async () => (await workerRestartsTotal.get()).values.find((value) => value.labels.reason === 'unresponsive')?.value ?? 0;

  it('drains a worker forked just before stop(), though it was not yet listening for the drain message', async () => {
    // The replacement of a killed worker loads slowly: the drain that stop() sends it comes too early.
    const replacement = await replacementIn('late-listener');
    // It listens after 1 s; killed at the 5 s bound, it would exit by SIGKILL.
    await supervisor!.stop(5_000);
    expect(exits.find((exit) => exit.pid === replacement)).toEqual({ pid: replacement, code: 0, signal: null });
  });

  it('counts a worker among the connected ones only once it says ready, so a metrics request never waits on one still loading', async () => {
    await replacementIn('late-listener');
    expect(supervisor!.connected()).toEqual([]);
    const replacement = await waitFor(() => supervisor!.connected()[0], { message: 'the replacement to say ready' });
    expect(replacement.process.pid).toBe(supervisor!.view()[0]!.pid);
  });

  it('fails the start, with the reason, when a worker does not listen within the start bound', async () => {
    stub('hang');
    const failed = new Promise<string>((resolve) => {
      supervisor = new WorkerSupervisor(1, hooks({ failedToStart: (slot, reason) => resolve(`worker ${slot}: ${reason}`) }), log, 3_000);
    });
    void supervisor!.start();
    expect(await failed).toBe('worker 0: it did not listen within 3000 ms');
    expect(exits).toEqual([expect.objectContaining({ signal: 'SIGKILL' })]);
  }, 20_000);

  it('replaces a replacement that hangs at start, as it replaces one that crashes', async () => {
    stub('normal');
    supervisor = new WorkerSupervisor(1, hooks(), log, 3_000);
    await supervisor.start();
    process.env.STUB_MODE = 'hang';
    supervisor.connected()[0]!.process.kill('SIGKILL');
    // The first replacement hangs, is killed at the bound and replaced in turn.
    await waitFor(() => supervisor!.view()[0]!.restarts >= 2, { timeoutMs: 15_000, message: 'the hanging replacement to be replaced' });
    expect(exits.map((exit) => exit.signal)).toEqual(['SIGKILL', 'SIGKILL']);
  }, 20_000);

  it('kills a worker whose heartbeat stopped and replaces it, while the other worker keeps running', async () => {
    stub('normal');
    const { lines, logger } = capturedLog();
    supervisor = new WorkerSupervisor(2, hooks(), logger, 10_000, 3_000);
    await supervisor.start();
    const before = supervisor.view();
    const counted = await unresponsiveRestarts();
    // SIGSTOP: its sockets stay open but its event loop runs nothing, as when a middleware spins.
    process.kill(before[0]!.pid!, 'SIGSTOP');
    await waitFor(() => supervisor!.view()[0]!.state === 'listening' && supervisor!.view()[0]!.pid !== before[0]!.pid, { timeoutMs: 15_000, message: 'the stopped worker to be replaced' });
    expect(exits).toEqual([{ pid: before[0]!.pid, code: null, signal: 'SIGKILL' }]);
    expect(supervisor.view().map((worker) => [worker.restarts, worker.state])).toEqual([[1, 'listening'], [0, 'listening']]);
    expect(supervisor.view()[1]!.pid).toBe(before[1]!.pid);
    expect(lines.filter((line) => line.msg.startsWith('worker unresponsive')).map((line) => line.worker)).toEqual([0]);
    expect(await unresponsiveRestarts()).toBe(counted + 1);
  }, 20_000);

  it('leaves a worker busy for less than the bound alone, such as one applying a large configuration', async () => {
    stub('busy');
    // Silent 2.5 s: a watchdog checking every second with a bound of 1.5 s or less (a missed heartbeat
    // or two) surely kills it; one with the 6 s bound never does, with seconds to spare on a loaded machine.
    process.env.STUB_BUSY_MS = '2500';
    const { lines, logger } = capturedLog();
    const results: string[] = [];
    supervisor = new WorkerSupervisor(1, hooks({ message: (message) => void results.push(message.kind) }), logger, 10_000, 6_000);
    await supervisor.start();
    supervisor.broadcast({ kind: 'switchboard:config', path: 'gateway.yaml', text: '', workers: 1, sequence: 1, digest: '' });
    // Its answer comes after the block: a watchdog that judged it during the block has killed it by then.
    await waitFor(() => results.includes('switchboard:config-result'), { timeoutMs: 10_000, message: 'the busy worker to answer' });
    expect(lines.filter((line) => line.msg.startsWith('worker unresponsive'))).toEqual([]);
    expect(exits).toEqual([]);
    expect(supervisor.view()[0]!.restarts).toBe(0);
  }, 20_000);

  it('kills no worker when the primary itself was blocked past the bound, with their heartbeats waiting unread', async () => {
    stub('normal');
    const { lines, logger } = capturedLog();
    const listened: number[] = [];
    supervisor = new WorkerSupervisor(1, hooks({ message: (message) => void (message.kind === 'switchboard:listening' && listened.push(1)) }), logger, 10_000, 3_000);
    await supervisor.start();
    const until = performance.now() + 4_500;
    while (performance.now() < until);
    // The overdue check runs before any message is read; the stub answers a configuration with `listening`.
    supervisor.broadcast({ kind: 'switchboard:config', path: 'gateway.yaml', text: '', workers: 1, sequence: 1, digest: '' });
    await waitFor(() => listened.length === 2, { timeoutMs: 10_000, message: 'the worker to answer after the block' });
    expect(lines.filter((line) => line.msg.startsWith('worker unresponsive'))).toEqual([]);
    expect(exits).toEqual([]);
  }, 20_000);

  it('lets a draining worker take its drain bound, though its heartbeat stopped', async () => {
    stub('slow-drain');
    process.env.STUB_DRAIN_MS = '4500';
    supervisor = new WorkerSupervisor(1, hooks(), log, 10_000, 3_000);
    await supervisor.start();
    const [worker] = supervisor.connected();
    await supervisor.stop(10_000);
    expect(exits).toEqual([{ pid: worker!.process.pid, code: 0, signal: null }]);
    expect(supervisor.view()[0]!.state).toBe('stopped');
  }, 20_000);

  it('says once that no worker listens any more and once that one does again, and shows it in switchboard_workers_listening and its readiness', async () => {
    stub('normal');
    const { lines, logger } = capturedLog();
    const listening = async () => (await metricsRegistry.getSingleMetric('switchboard_workers_listening')!.get()).values[0]!.value;
    supervisor = new WorkerSupervisor(2, hooks(), logger);
    expect(supervisor.readiness()).toEqual({ ready: false, reason: 'the workers are not listening yet' });
    await supervisor.start();
    expect(await listening()).toBe(2);
    expect(supervisor.readiness()).toEqual({ ready: true, reason: null });
    // Every replacement exits before it listens: both slots crash-loop.
    process.env.STUB_MODE = 'fail-start';
    for (const worker of supervisor.connected()) worker.process.kill('SIGKILL');
    await waitFor(() => supervisor!.view().every((worker) => worker.restarts >= 3), { timeoutMs: 15_000, message: 'both slots to crash three times' });
    expect(await listening()).toBe(0);
    expect(supervisor.readiness()).toEqual({ ready: false, reason: 'no worker is listening (2 down or restarting)' });
    expect(lines.filter((line) => line.msg.startsWith('no worker is listening'))).toHaveLength(1);
    process.env.STUB_MODE = 'normal';
    await waitFor(() => supervisor!.view().some((worker) => worker.state === 'listening'), { timeoutMs: 15_000, message: 'a replacement to listen' });
    expect(lines.filter((line) => line.msg.startsWith('a worker listens again'))).toHaveLength(1);
    expect(await listening()).toBeGreaterThan(0);
    expect(supervisor.readiness().ready).toBe(true);
    await supervisor.stop(5_000);
    expect(supervisor.readiness()).toEqual({ ready: false, reason: 'draining: the gateway is stopping' });
  }, 30_000);
});
