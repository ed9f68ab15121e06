import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import type { WorkerConfigView } from '../../gateway/cluster/cluster-worker-configs.ts';
import { logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';
import { processExists } from '../harness/process-tree.ts';

type Worker = WorkerView & WorkerConfigView;

describe('workers: 2 — the primary shows which configuration each worker runs', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let adminPort: number;
  const stopped: number[] = [];

  const configText = (tag: string) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
# The watchdog off: a worker the test stops (SIGSTOP) stays in its slot, behind, until it is continued.
workers: { count: 2, heartbeatTimeout: 0 }
accessLog: false
services:
  echo: { instances: [127.0.0.1:${backend.port}], healthCheck: false }
routes:
  - { path: /, service: echo, responseHeaders: { set: { x-config: ${tag} } } }
shutdown: { drainTimeout: 2s }
`;

  const workers = async (): Promise<Worker[]> => (await (await fetch(`http://127.0.0.1:${adminPort}/api/workers`)).json()) as Worker[];
  const behind = async () => sampleValue(parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()), 'switchboard_workers_config_behind');
  /** The digest of the file as the gateway reads it now (the text the primary sends its workers). */
  const fileDigest = async () => createHash('sha256').update(await readFile(gateway.configPath, 'utf8')).digest('base64url');
  /** Waits until every worker reports `sequence` (with the file's digest) as its current configuration, and the gauge says none is behind. */
  const allRunning = async (sequence: number, message: string): Promise<Worker[]> => {
    const digest = await fileDigest();
    return waitFor(
      async () => {
        const view = await workers();
        const inStep = view.every((worker) => worker.state === 'listening' && worker.config?.sequence === sequence && worker.config.digest === digest && worker.config.current);
        return inStep && (await behind()) === 0 ? view : undefined;
      },
      { timeoutMs: 20_000, message },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(await workers())}\n${await logOf(gateway.process)}`);
    });
  };

  beforeAll(async () => {
    backend = await startBackend({ name: 'echo' });
    gateway = await startGateway(configText('one'));
    adminPort = gateway.adminPort;
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 20_000, message: 'both workers to listen' });
  }, 60_000);

  afterAll(async () => {
    for (const pid of stopped) if (processExists(pid)) process.kill(pid, 'SIGCONT');
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('shows both workers running the text the primary started with, and none behind', async () => {
    const view = await allRunning(1, 'both workers to report the first text');
    for (const worker of view) {
      expect(worker.refused).toBeNull();
      expect(Date.parse(worker.config!.appliedAt)).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it('shows every worker running the new text after a reload, applied after the first', async () => {
    const before = await workers();
    await gateway.writeConfig(configText('two'));
    const after = await allRunning(2, 'both workers to report the reloaded text');
    for (const [slot, worker] of after.entries()) {
      expect(worker.config!.digest).not.toBe(before[slot]!.config!.digest);
      expect(Date.parse(worker.config!.appliedAt)).toBeGreaterThanOrEqual(Date.parse(before[slot]!.config!.appliedAt));
    }
  });

  it('counts a worker that has not applied the latest text behind, and in step once it has', async () => {
    const [frozen] = await workers();
    // Stopped, the worker reads nothing: the reload waits in its channel while the other applies it.
    process.kill(frozen!.pid!, 'SIGSTOP');
    stopped.push(frozen!.pid!);
    try {
      await gateway.writeConfig(configText('three'));
      const digest = await fileDigest();
      const split = await waitFor(
        async () => {
          const view = await workers();
          return view[1]!.config?.sequence === 3 && view[1]!.config.digest === digest && (await behind()) === 1 ? view : undefined;
        },
        { timeoutMs: 20_000, message: 'the running worker to apply the reload while the stopped one is counted behind' },
      );
      expect(split[0]!.config).toMatchObject({ sequence: 2, current: false });
      expect(split[1]!.config).toMatchObject({ sequence: 3, current: true });
    } finally {
      process.kill(frozen!.pid!, 'SIGCONT');
    }
    await allRunning(3, 'the continued worker to apply the reload');
  });

  it('shows a worker that replaced a killed one in step once it applied the text it got at its start', async () => {
    const [, victim] = await workers();
    const killedAt = Date.now();
    process.kill(victim!.pid!, 'SIGKILL');
    await waitFor(async () => (await workers())[1]!.restarts === 1, { timeoutMs: 10_000, message: 'the primary to notice the exit' });
    const view = await allRunning(3, 'the replacement to report the current text');
    // Applied by the replacement, not the killed worker's record kept over.
    expect(view[1]!.pid).not.toBe(victim!.pid);
    expect(Date.parse(view[1]!.config!.appliedAt)).toBeGreaterThanOrEqual(killedAt);
  });
});
