// The access log never holds the gateway up: with stdout a pipe nobody reads, requests are still
// answered, the lines that do not fit the bounded buffer are dropped and counted, memory stays
// bounded, and SIGTERM still ends the process. A synchronous writer blocks the event loop on the
// full pipe (no answers); an unbounded buffer keeps the ~42 MB of lines sent where the 1 MiB bound
// keeps ~70 and drops the rest (metric), until it outgrows the 128 MB heap the gateway is given (it
// dies: answers stop); pino's thread-pool writer never drops (metric) and its stuck write holds the
// exit (SIGTERM).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { getStatus, makeTempDir, REPO_ROOT, startBackend, waitFor, waitForGatewayListening, type BackendProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** Requests sent, one access line each, 40 times what the bound holds: 10,000 showed no more and took ~19 s a case, 87 to 118 s under load. */
const LINES = 3_000;

describe('the access log on a stdout nobody reads', () => {
  let gateway: ChildProcess | undefined;
  let backend: BackendProcess | undefined;
  afterEach(async () => {
    if (gateway && gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGKILL');
    await backend?.process.stop();
  });

  // `--pretty` formats the same lines for people; written through Node's stdout stream, they once piled up in memory behind a stuck pipe.
  it.each([{ output: 'JSON lines', flags: [] as string[] }, { output: '--pretty lines', flags: ['--pretty'] }])('keeps answering, drops and counts lines instead of buffering them, stays bounded in memory and still exits on SIGTERM ($output)', async ({ flags }) => {
    backend = await startBackend({ name: 'logged' });
    const dir = await makeTempDir('sb-access-log-');
    const configPath = join(dir, 'gateway.yaml');
    await writeFile(
      configPath,
      // Port 0: ports chosen ahead could be taken by a program of the other test worker first.
      `listen: 127.0.0.1:0
admin: 127.0.0.1:0
services:
  logged: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { path: /, service: logged }
`,
    );
    const logFile = join(dir, 'gateway.stderr.log');
    // stdout is a pipe (a socket pair) this test never reads: once the kernel buffer and the few
    // KiB Node reads ahead on its own are full, every write to it would block.
    gateway = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), ...flags, '--config', configPath], {
      stdio: ['ignore', 'pipe', openSync(logFile, 'a')],
      // A heap as small as a container's: holding lines without bound is fatal sooner or later.
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=128` },
      cwd: REPO_ROOT,
    });
    const child = gateway;
    const readLog = async () => (flags.length === 0 ? await readFile(logFile, 'utf8') : jsonOfPrettyListening(await readFile(logFile, 'utf8')));
    const { port, adminPort } = await waitForGatewayListening(readLog, () => child.exitCode !== null || child.signalCode !== null);
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    try {
      // 3,000 lines of ~14 KiB: about 42 MB of access log the pipe cannot take, 40 times the bound.
      const path = `/${'p'.repeat(14 * 1_024)}`;
      let next = 0;
      const statuses: number[] = [];
      const worker = async () => {
        while (next < LINES) {
          next += 1;
          statuses.push(await getStatus(port, `${path}?n=${next}`, agent, 20_000));
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      expect(statuses.filter((status) => status !== 200)).toEqual([]);

      const metrics = await adminClient(`http://127.0.0.1:${adminPort}`).metrics();
      // The buffer holds 1 Mi characters (~70 lines) besides the batch stuck in the pipe: nearly all were dropped.
      expect(sampleValue(metrics, 'switchboard_access_log_dropped_total')).toBeGreaterThan(LINES - 100);
      expect(child.exitCode).toBeNull();

      // Said once, not once per dropped line.
      const log = await readFile(logFile, 'utf8');
      expect(log.match(/dropping access log lines/g)).toHaveLength(1);

      // The shutdown is bounded although a batch is still stuck in the pipe.
      child.kill('SIGTERM');
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs: 20_000, message: 'the gateway to exit after SIGTERM' });
      expect(child.exitCode).toBe(0);
    } finally {
      agent.destroy();
    }
  });
});

/** The "gateway listening" line of a `--pretty` log (`… gateway: gateway listening ports={"web":N} admin=M …`) as the JSON line the harness reads. */
function jsonOfPrettyListening(log: string): string {
  const match = /gateway listening ports=(\{[^}]*\}) admin=(\d+)/.exec(log);
  return match ? `{"msg":"gateway listening","ports":${match[1]},"admin":${match[2]}}\n` : '';
}
