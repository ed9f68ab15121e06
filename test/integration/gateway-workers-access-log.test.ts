// The workers of one gateway write their access lines to the stdout they share, and a reader gets
// every line whole. Behind Docker or a process manager stdout is a pipe. When its reader falls
// behind, a write larger than PIPE_BUF into the nearly full pipe is taken in part, and another
// worker's bytes then land in the middle of a line: batches of 32 KiB written as one did that
// (corrupt lines, JSON that does not parse). Written as whole lines of at most PIPE_BUF, each write
// is kept whole by the kernel.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, REPO_ROOT, startBackend, waitFor, waitForGatewayListening, type BackendProcess } from '../harness/index.ts';
import { descendantsOf, killStillRunning, type ProcessRecord } from '../harness/process-tree.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';

const REQUESTS = 3_000;
/** Lines of ~14 KiB sent to a stdout nobody reads, 20 times what the two workers' buffers hold. */
const LINES_DROPPED = 3_000;

/** GET `path` through `agent`; resolves with the status, rejects when the connection closes before the whole answer. */
function get(port: number, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, agent, timeout: 20_000 }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      // A connection closed mid-body aborts the response with neither 'end' nor (unlisted) 'error', and the
      // idle timeout goes with the socket; after 'end' this is a no-op.
      response.on('close', () => reject(new Error(`GET ${path}: the connection closed before the whole answer`)));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('no answer within 20 s')));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Sends `bytes` on a new connection; resolves with the whole answer once the gateway closes it. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

describe('workers: 2 writing one access log into one pipe', () => {
  let gateway: ChildProcess | undefined;
  let backend: BackendProcess | undefined;
  /** The workers, once they listen: a failed test kills them too, not only the primary. */
  let workers: ProcessRecord[] = [];
  const descriptors: number[] = [];
  afterEach(async () => {
    if (gateway && gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGKILL');
    killStillRunning(workers);
    await backend?.process.stop();
    for (const fd of descriptors.splice(0)) closeSync(fd);
  });

  /**
   * Starts a gateway of 2 workers proxying to a backend, its stdout on `stdout` (a descriptor, or a
   * pipe nobody reads), its stderr in a file; resolves once both workers listen, with their pids.
   */
  async function startWorkers(dir: string, stdout: number | 'pipe') {
    backend = await startBackend({ name: 'logged' });
    const configPath = join(dir, 'gateway.yaml');
    await writeFile(
      configPath,
      // Port 0 (the workers share the port the first one got): ports chosen ahead could be taken by a
      // program of the other test worker first.
      `listen: 127.0.0.1:0
admin: 127.0.0.1:0
workers: 2
services:
  logged: { instances: [127.0.0.1:${backend.port}], healthCheck: false }
routes:
  - { path: /, service: logged }
`,
    );
    const stderrLog = join(dir, 'gateway.stderr.log');
    const stderr = openSync(stderrLog, 'a');
    descriptors.push(stderr);
    gateway = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath], {
      stdio: ['ignore', stdout, stderr],
      // Info: the lines that say which ports the gateway got.
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
      cwd: REPO_ROOT,
    });
    const child = gateway;
    const { port, adminPort } = await waitForGatewayListening(() => readFile(stderrLog, 'utf8'), () => child.exitCode !== null || child.signalCode !== null);
    const pids = await waitFor(
      async () => {
        const view = (await (await fetch(`http://127.0.0.1:${adminPort}/api/workers`)).json()) as Array<{ state: string; pid: number }>;
        return view.length === 2 && view.every((worker) => worker.state === 'listening') ? view.map((worker) => worker.pid) : undefined;
      },
      { timeoutMs: 30_000, message: 'both workers to listen' },
    );
    workers = descendantsOf(child.pid!);
    return { child, port, adminPort, stderrLog, pids };
  }

  it('delivers every line whole to a reader that falls behind', async () => {
    const dir = await makeTempDir('sb-workers-log-');
    // A named pipe, as Docker gives a container's stdout: opened read-write here so that opening
    // it does not wait for the other end, and read through a second, non-blocking descriptor.
    const fifo = join(dir, 'stdout.fifo');
    execFileSync('mkfifo', [fifo]);
    const writeEnd = openSync(fifo, 'r+');
    descriptors.push(writeEnd);
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    descriptors.push(readEnd);
    const { child, port, adminPort } = await startWorkers(dir, writeEnd);

    // Nothing is read while the requests run: the pipe fills, and each worker holds its lines.
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      let next = 0;
      const statuses: number[] = [];
      const client = async () => {
        while (next < REQUESTS) {
          next += 1;
          statuses.push(await get(port, `/?n=${next}`, agent));
        }
      };
      await Promise.all(Array.from({ length: 50 }, client));
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
    } finally {
      agent.destroy();
    }
    // A worker's listener refuses malformed bytes itself: its line goes into the same pipe, and the
    // primary's metrics count it as a request no route matched.
    expect(await rawExchange(port, 'GARBAGE\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(sampleValue(parsePrometheusText(metrics), 'switchboard_requests_total', { route: '', service: '', status: '4xx' })).toBe(1);

    // Then a slow reader: a kilobyte at a time, so the pipe stays nearly full while both workers
    // write the rest of their lines into whatever room each read makes.
    const chunk = Buffer.alloc(1_000);
    const parts: Buffer[] = [];
    let newlines = 0;
    const deadline = performance.now() + 60_000;
    while (newlines < REQUESTS + 1 && performance.now() < deadline) {
      let read = 0;
      try {
        read = readSync(readEnd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      }
      if (read > 0) {
        const part = Buffer.from(chunk.subarray(0, read));
        parts.push(part);
        for (const byte of part) if (byte === 0x0a) newlines += 1;
      }
      // The reader's pace, not a wait for something.
      await delay(1);
    }
    const lines = Buffer.concat(parts).toString('utf8').split('\n').slice(0, -1);
    const corrupt = lines.filter((line) => {
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    expect(corrupt.slice(0, 3)).toEqual([]);
    const records = lines.map((line) => JSON.parse(line) as { path?: string; errorClass?: string; status: number });
    expect(records.filter((record) => record.path === undefined)).toMatchObject([{ status: 400, errorClass: 'bad-request' }]);
    const paths = records.filter((record) => record.path !== undefined).map((record) => record.path);
    expect(new Set(paths).size).toBe(REQUESTS);
    expect(paths).toHaveLength(REQUESTS);

    child.kill('SIGTERM');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 20_000, message: 'the gateway to exit after SIGTERM' });
    expect(child.exitCode).toBe(0);
  });

  // Each worker holds its own bounded buffer in front of the stdout they share, and drops and counts
  // on its own: a stall of the reader is an episode in each, said by each (with its pid), and the
  // metric sums their drops.
  it("says a stalled reader's episode of drops once per worker, each its own, and sums their drops", async () => {
    // stdout a pipe this test never reads.
    const { port, adminPort, stderrLog, pids } = await startWorkers(await makeTempDir('sb-workers-drops-'), 'pipe');
    // Lines of ~14 KiB on fresh connections, which alternate between the workers: both buffers (1 MiB each) overflow.
    const path = `/${'p'.repeat(14 * 1_024)}`;
    const agent = new Agent({ keepAlive: false, maxSockets: 8 });
    try {
      let next = 0;
      const statuses: number[] = [];
      const client = async () => {
        while (next < LINES_DROPPED) {
          next += 1;
          statuses.push(await get(port, `${path}?n=${next}`, agent));
        }
      };
      await Promise.all(Array.from({ length: 8 }, client));
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
    } finally {
      agent.destroy();
    }
    const warnings = () =>
      readFile(stderrLog, 'utf8').then((log) =>
        log
          .split('\n')
          .filter((line) => line.includes('dropping access log lines'))
          .map((line) => JSON.parse(line) as { pid: number }),
      );
    const said = await waitFor(async () => ((await warnings()).length >= 2 ? warnings() : undefined), { timeoutMs: 10_000, message: 'a warning from each worker' });
    expect(said.map((warning) => warning.pid).sort()).toEqual([...pids].sort());
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
    // Each buffer holds ~70 such lines besides a batch stuck in the pipe: nearly all of both workers' lines were dropped.
    expect(sampleValue(metrics, 'switchboard_access_log_dropped_total')).toBeGreaterThan(LINES_DROPPED - 300);
  });
});
