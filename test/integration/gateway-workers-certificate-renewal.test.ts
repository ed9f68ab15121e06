import { readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import {
  keepWritingApart,
  logOf,
  makeCertificate,
  makeTempDir,
  readFrom,
  startBackend,
  startGateway,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type TestCertificate,
} from '../harness/index.ts';
import { processExists } from '../harness/process-tree.ts';

/** The status of one GET on a connection of its own (no keep-alive), so that successive ones go to each worker in turn. */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false, headers: { connection: 'close' }, signal: AbortSignal.timeout(5_000) }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

/** The JSON lines of the gateway's log (primary and workers) written past byte `offset`. */
async function linesFrom(gateway: GatewayProcess, offset: number): Promise<{ msg?: string; worker?: number; routes?: number }[]> {
  const text = await readFrom(gateway.process.logFile, offset);
  return text.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as { msg?: string; worker?: number; routes?: number }];
    } catch {
      return [];
    }
  });
}

const REFUSED = 'configuration refused; the running configuration stays';
const READ_AGAIN = 'certificate pair refused; read again until both files have settled';

describe('workers: a worker takes the configuration the primary took while a certificate pair it names is renewed', () => {
  let dir: string;
  let backend: BackendProcess;
  let site: TestCertificate;
  let other: TestCertificate;
  let renew: TestCertificate;
  let rightKey: string;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    dir = await makeTempDir('sb-workers-renewal-');
    [site, other, renew, backend] = await Promise.all([
      makeCertificate(dir, 'site', { key: 'ec', names: ['site.test'] }),
      makeCertificate(dir, 'other', { key: 'ec', names: ['other.test'] }),
      makeCertificate(dir, 'renew', { key: 'ec', names: ['renew.test'] }),
      startBackend({ name: 'echo' }),
    ]);
    rightKey = await readFile(site.keyFile, 'utf8');
  }, 60_000);

  afterAll(async () => {
    for (const gateway of gateways) await gateway.process.stop();
    await backend?.process.kill();
  });

  /** A gateway with two workers, an https entry point with the pair `site`, and the route /a; `workers()` reads its admin API. */
  async function startWorkers(): Promise<{ gateway: GatewayProcess; config: (routes: string, certificates?: string) => string; workers: () => Promise<WorkerView[]> }> {
    const config = (routes: string, certificates = '{}') => `
admin: 127.0.0.1:{{adminPort}}
# heartbeatTimeout: well past the time the test keeps the workers stopped (a second or two), so the watchdog never replaces them meanwhile.
workers: { count: 2, heartbeatTimeout: 60s }
accessLog: false
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  websecure:
    listen: 127.0.0.1:{{port:secure}}
    protocol: https
    tls: { certificates: [{ certFile: ${site.certFile}, keyFile: ${site.keyFile} }] }
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
routes:
${routes}
certificates: ${certificates}
shutdown: { drainTimeout: 5s }
`;
    const workers = async (): Promise<WorkerView[]> => (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/workers`)).json()) as WorkerView[];
    const gateway = await startGateway(config('  - { path: /a, service: echo }'));
    gateways.push(gateway);
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 20_000, message: 'both workers to listen' });
    return { gateway, config, workers };
  }

  /**
   * Has the workers get the reload adding the route /b once `site`'s key is being replaced by another pair's (the race
   * made certain: a renewal begun just after the primary's check): the workers are stopped (SIGSTOP) while the primary
   * takes the reload with the pair whole, then the key is written every few milliseconds with the wrong text (so the pair
   * never settles on it before the 2 s maximum wait) and the workers go on. Resolves once each worker has read the bad
   * pair (it refused the text at once, before, or reads the pair again until it settles), the wrong key still being written.
   */
  async function reloadMidRenewal(gateway: GatewayProcess, config: (routes: string) => string, pids: readonly number[]): Promise<{ writeRightKey(): Promise<void>; stop(): Promise<void> }> {
    let writer: { write(text: string): void; stop(): Promise<void> } | undefined;
    const stop = async () => {
      for (const pid of pids) if (processExists(pid)) process.kill(pid, 'SIGCONT');
      await writer?.stop();
      // The pair whole again for the gateways of the tests that follow.
      await writeFile(site.keyFile, rightKey);
    };
    let offset = (await stat(gateway.process.logFile)).size;
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      await gateway.writeConfig(config('  - { path: /a, service: echo }\n  - { path: /b, service: echo }'));
      await waitFor(async () => (await linesFrom(gateway, offset)).some((line) => line.msg === 'configuration applied' && line.routes === 2), {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: 'the primary to apply the reload',
      });
      const keyText = await readFile(other.keyFile, 'utf8');
      // In a process of its own: a stall of this one (150 ms, the settle time) would otherwise let the wrong pair settle, and be refused.
      writer = keepWritingApart(site.keyFile, keyText);
      await waitFor(async () => (await readFile(site.keyFile, 'utf8')) === keyText, { timeoutMs: 10_000, intervalMs: 5, message: 'the wrong key to be written' });
      offset = (await stat(gateway.process.logFile)).size;
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      await waitFor(
        async () => {
          const seen = new Set<number>();
          for (const line of await linesFrom(gateway, offset)) if (line.worker !== undefined && (line.msg === REFUSED || line.msg === READ_AGAIN)) seen.add(line.worker);
          return seen.size === pids.length;
        },
        { timeoutMs: 10_000, intervalMs: 10, message: 'both workers to read the pair being renewed' },
      );
    } catch (error) {
      await stop();
      throw error;
    }
    return {
      // The writer's next write is the right key, so the wrong one never stays on disk unwritten for the settle time.
      async writeRightKey() {
        writer?.write(rightKey);
        await waitFor(async () => (await readFile(site.keyFile, 'utf8')) === rightKey, { timeoutMs: 10_000, intervalMs: 5, message: 'the writer to write the right key' });
        await writer?.stop();
      },
      stop,
    };
  }

  it('waits for a pair whose key is still being written when the reload reaches it, then serves the new route, where it refused the text and kept the old routes', async () => {
    const { gateway, config, workers } = await startWorkers();
    expect(await statusOf(`${gateway.url}/b`)).toBe(404);
    const pids = (await workers()).map((worker) => worker.pid!);
    const renewal = await reloadMidRenewal(gateway, config, pids);
    try {
      await renewal.writeRightKey();
    } finally {
      await renewal.stop();
    }
    // Both workers serve the new route: a fresh connection goes to each in turn.
    await waitFor(async () => (await Promise.all([0, 1, 2, 3].map(() => statusOf(`${gateway.url}/b`)))).every((status) => status === 200), {
      timeoutMs: 10_000,
      message: 'every worker to serve the route the reload added',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    const log = await linesFrom(gateway, 0);
    expect(log.filter((line) => line.msg === REFUSED || line.msg === 'a worker refused the configuration; it keeps its running one')).toEqual([]);
    // The same workers, never replaced by the watchdog while they were stopped.
    expect((await workers()).map((worker) => [worker.pid, worker.state, worker.restarts])).toEqual(pids.map((pid) => [pid, 'listening', 0]));
  });

  it('stops waiting for the pair when the gateway shuts down, and judges the text no more', async () => {
    const { gateway, config, workers } = await startWorkers();
    const pids = (await workers()).map((worker) => worker.pid!);
    const renewal = await reloadMidRenewal(gateway, config, pids);
    try {
      const exit = await gateway.process.stop();
      expect(exit?.code).toBe(0);
    } finally {
      await renewal.stop();
    }
    // Waiting on, each worker would have refused the text at the 2 s maximum wait (the key kept being written wrong), then drained.
    const log = await linesFrom(gateway, 0);
    expect(log.filter((line) => line.msg === REFUSED || line.msg === 'applying the configuration failed')).toEqual([]);
    expect(pids.filter(processExists)).toEqual([]);
  });

  it('drops a text waiting for its pair when a newer one comes from the primary, and applies the newer one at once', async () => {
    const { gateway, config, workers } = await startWorkers();
    const pids = (await workers()).map((worker) => worker.pid!);
    const appliedSince = async (offset: number) => (await linesFrom(gateway, offset)).filter((line) => line.worker === undefined && line.msg === 'configuration applied').length;
    let writer: { stop(): Promise<void> } | undefined;
    const offset = (await stat(gateway.process.logFile)).size;
    // Stopped, the workers get both reloads only once they run again, the newer one already waiting behind the older.
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      // The older adds the route /b and the named pair renew, whole when the primary takes it.
      await gateway.writeConfig(config('  - { path: /b, service: echo }', `{ renew: { certFile: ${renew.certFile}, keyFile: ${renew.keyFile} } }`));
      await waitFor(async () => (await appliedSince(offset)) === 1, { timeoutMs: 10_000, intervalMs: 20, message: 'the primary to apply the older reload' });
      // renew's key is then replaced, for good: the older text, waited for to the end, would be refused after the 2 s maximum wait.
      const wrongKey = await readFile(other.keyFile, 'utf8');
      writer = keepWritingApart(renew.keyFile, wrongKey);
      await waitFor(async () => (await readFile(renew.keyFile, 'utf8')) === wrongKey, { timeoutMs: 10_000, intervalMs: 5, message: 'the wrong key to be written' });
      // The newer names no such pair: the primary takes it at once.
      await gateway.writeConfig(config('  - { path: /c, service: echo }'));
      await waitFor(async () => (await appliedSince(offset)) === 2, { timeoutMs: 10_000, intervalMs: 20, message: 'the primary to apply the newer reload' });
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      // Every worker serves the newer text, without waiting for the older one's pair to the maximum wait.
      await waitFor(async () => (await Promise.all([0, 1, 2, 3].map(() => statusOf(`${gateway.url}/c`)))).every((status) => status === 200), {
        timeoutMs: 10_000,
        message: 'every worker to serve the route the newer reload has',
      });
      const lines = await linesFrom(gateway, offset);
      expect(lines.filter((line) => line.msg === REFUSED || line.msg === 'a worker refused the configuration; it keeps its running one')).toEqual([]);
      expect(await Promise.all([0, 1, 2, 3].map(() => statusOf(`${gateway.url}/b`)))).toEqual([404, 404, 404, 404]);
      // Not waited for to the end (about 13 readings, one every 150 ms for 2 s): dropped as the newer text came, before its pair was read or soon after.
      const readings = lines.filter((line) => line.msg === READ_AGAIN);
      expect(readings.length, JSON.stringify(readings)).toBeLessThan(2 * 4);
    } finally {
      for (const pid of pids) if (processExists(pid)) process.kill(pid, 'SIGCONT');
      await writer?.stop();
    }
  });
});
