// A log reader that goes away or stalls never holds a process up. With stderr a pipe whose reader
// has closed, SIGTERM still ends the gateway and the agent within their bounds (pino's asynchronous
// destination flushed at exit in a loop that met EPIPE, slept 100 ms and wrote again, forever). With
// stderr a pipe nobody reads, the gateway keeps answering, drops and counts log lines, and exits on
// SIGTERM (a synchronous writer blocks the event loop on the full pipe; pino's asynchronous one
// buffers without limit, counts nothing, and its exit flush waits on the pipe forever). A gateway,
// or a worker, that cannot start writes the lines it logged before it exits, a reader that stalls too;
// and one whose stderr a preloaded module wrote to, on a full pipe, still starts.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { createServer } from 'node:net';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import {
  acceptsConnections,
  backendCommand,
  freePort,
  gatewayListeningIn,
  getStatus,
  listeningPorts,
  makeTempDir,
  REPO_ROOT,
  retryOnPortClash,
  startEtcd,
  waitFor,
  type EtcdCluster,
} from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** A gateway config in a new file: `listen` on `port` (0: a free one, which no other program can take first), one service `a` on a port nothing listens on (each request is retried twice, each retry logged at debug). */
async function gatewayConfig(port: number, admin: string): Promise<string> {
  const configPath = join(await makeTempDir('sb-stderr-'), 'gateway.yaml');
  await writeFile(
    configPath,
    `listen: 127.0.0.1:${port}
admin: ${admin}
services:
  a: { instances: [127.0.0.1:1], outlierDetection: false, circuitBreaker: false, retryBudget: false }
routes:
  - { path: /, service: a }
`,
  );
  return configPath;
}

/** Starts `bin` with `args`, stderr a pipe; resolves once a stderr line matches `ready`, with what stderr said so far (the pipe still read). */
async function startUntilLogged(bin: string, args: readonly string[], ready: RegExp): Promise<{ child: ChildProcess; stderr: Readable; seen: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, bin), ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'debug' },
    cwd: REPO_ROOT,
  });
  let seen = '';
  const stderr = child.stderr as NonNullable<typeof child.stderr>;
  stderr.setEncoding('utf8');
  stderr.on('data', (chunk: string) => {
    seen += chunk;
  });
  const exited = once(child, 'exit');
  await Promise.race([
    waitFor(() => ready.test(seen), { timeoutMs: 20_000, message: `${bin} to log ${ready}` }),
    exited.then(() => {
      throw new Error(`${bin} exited before it logged ${ready}:\n${seen}`);
    }),
  ]);
  return { child, stderr, seen };
}

/** Starts `bin` with `args`, stderr a pipe; resolves once a stderr line matches `ready`, then closes the pipe's read end. */
async function startThenCloseStderr(bin: string, args: readonly string[], ready: RegExp): Promise<ChildProcess> {
  const { child, stderr } = await startUntilLogged(bin, args, ready);
  // The reader goes away: every later write to the pipe fails with EPIPE.
  stderr.destroy();
  return child;
}

/** A FIFO at `path` filled to the brim (lines of `x`), both ends open and non-blocking: each write to it waits for a read. */
function fullFifo(path: string): { reader: number; writer: number } {
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  const filler = Buffer.from(`${'x'.repeat(4_095)}\n`);
  for (let full = false; !full; ) {
    try {
      writeSync(writer, filler);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      full = true;
    }
  }
  return { reader, writer };
}

/** SIGTERM, then the exit within `boundMs`. */
async function terminate(child: ChildProcess, boundMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  child.kill('SIGTERM');
  await waitFor(() => child.exitCode !== null || child.signalCode !== null, { timeoutMs: boundMs, message: 'the process to exit after SIGTERM with its stderr reader gone' });
  return { code: child.exitCode, signal: child.signalCode };
}

describe('SIGTERM after the stderr reader has gone', () => {
  const children: ChildProcess[] = [];
  let etcd: EtcdCluster | undefined;
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await etcd?.close();
    etcd = undefined;
  });

  it('the gateway drains and exits', async () => {
    const configPath = await gatewayConfig(0, 'false');
    const gateway = await startThenCloseStderr('bin/switchboard.js', ['--config', configPath], /entry point listening/);
    children.push(gateway);
    expect(await terminate(gateway, 10_000)).toEqual({ code: 0, signal: null });
  });

  it('the agent deregisters, stops its backend and exits', async () => {
    etcd = await startEtcd();
    const registry = `etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`;
    // The backend (the agent's child, its stderr the agent's) exits on EADDRINUSE when a program of the
    // other test worker took its port first, and the agent with it: then again on a fresh port.
    const agent = await retryOnPortClash(async () => {
      const port = await freePort();
      return startThenCloseStderr(
        'bin/switchboard-agent.js',
        ['--registry', registry, '--service', 'user', '--port', String(port), '--id', 'gone', '--interval', '200ms', '--drain', '0', '--', ...backendCommand(port, 'gone')],
        /registration registered/,
      );
    });
    children.push(agent);
    expect(await terminate(agent, 10_000)).toEqual({ code: 0, signal: null });
  });

  it('the gateway with a stderr nobody reads keeps answering, drops and counts log lines, and exits', async () => {
    const configPath = await gatewayConfig(0, '127.0.0.1:0');
    // stderr is a pipe this test reads only until the gateway says which ports it got: then no more.
    // Once Node's read-ahead and the kernel buffer are full, every write to it would block.
    const { child: gateway, stderr, seen } = await startUntilLogged('bin/switchboard.js', ['--config', configPath], /"msg":"gateway listening"\}\n/);
    children.push(gateway);
    stderr.removeAllListeners('data');
    stderr.pause();
    const { port, adminPort } = gatewayListeningIn(seen)!;
    const admin = adminClient(`http://127.0.0.1:${adminPort}`);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    try {
      // Each request logs two ~250-byte debug lines (its retries): past the pipe's 64 KiB and the
      // buffer's 1 MiB after ~2,500 requests. Every request is answered (a 502: nothing listens).
      let dropped = 0;
      for (let round = 0; round < 40 && dropped === 0; round += 1) {
        const statuses = await Promise.all(Array.from({ length: 500 }, (_, n) => getStatus(port, `/r${round}-${n}`, agent, 10_000)));
        expect(statuses.filter((status) => status !== 502)).toEqual([]);
        dropped = sampleValue(await admin.metrics(), 'switchboard_log_dropped_total') ?? 0;
      }
      expect(dropped).toBeGreaterThan(0);
    } finally {
      agent.destroy();
    }
    expect(await terminate(gateway, 10_000)).toEqual({ code: 0, signal: null });
  });
});

describe('a gateway whose stderr was written before it started, on a full pipe', () => {
  it('starts, answers and exits on SIGTERM', async () => {
    // A preloaded module (an APM agent, say) writes a line to process.stderr that waits on the full
    // pipe: Node's stderr stream then holds the descriptor in the event loop, where libuv refuses to
    // open it a second time (EEXIST), and the gateway's log sink made that a start-up crash.
    const dir = await makeTempDir('sb-stderr-');
    const preload = join(dir, 'preload.cjs');
    await writeFile(preload, "process.stderr.write('preloaded\\n');\n");
    // Port 0: a port chosen ahead could be taken by a program of the other test worker first. Which
    // one it got the gateway logs into the full pipe, which this test must not read; /proc tells.
    const configPath = await gatewayConfig(0, 'false');
    const { reader, writer } = fullFifo(join(dir, 'stderr'));
    const gateway = spawn(process.execPath, ['--require', preload, join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath], {
      stdio: ['ignore', 'ignore', writer],
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
      cwd: REPO_ROOT,
    });
    closeSync(writer);
    const agent = new Agent({ keepAlive: true });
    try {
      const port = await Promise.race([
        waitFor(async () => (await listeningPorts(gateway.pid!))[0], { timeoutMs: 20_000, message: 'the gateway to listen' }),
        once(gateway, 'exit').then(([code]) => {
          throw new Error(`the gateway exited with ${String(code)} before it listened`);
        }),
      ]);
      expect(await acceptsConnections(port)).toBe(true);
      expect(await getStatus(port, '/', agent, 10_000)).toBe(502);
      expect(await terminate(gateway, 10_000)).toEqual({ code: 0, signal: null });
    } finally {
      agent.destroy();
      if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill('SIGKILL');
      closeSync(reader);
    }
  });
});

describe('a gateway that cannot start, with stderr a pipe', () => {
  it('writes every line it logged before the reason, then exits 1', async () => {
    // The port is taken, so the gateway closes its three registries (each logs a line, in one tick) and exits.
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const dir = await makeTempDir('sb-stderr-');
      await writeFile(join(dir, 'instances.yaml'), 'services:\n  a: ["127.0.0.1:1"]\n');
      await writeFile(join(dir, 'more-instances.yaml'), 'services:\n  a: ["127.0.0.1:2"]\n');
      const configPath = join(dir, 'gateway.yaml');
      await writeFile(configPath, `listen: 127.0.0.1:${port}\nadmin: false\nregistries: [file:${dir}/instances.yaml, file:${dir}/more-instances.yaml]\nroutes:\n  - { path: /, service: a }\n`);
      const gateway = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
        cwd: REPO_ROOT,
      });
      let seen = '';
      gateway.stderr.setEncoding('utf8');
      gateway.stderr.on('data', (chunk: string) => (seen += chunk));
      const [code] = (await Promise.race([
        once(gateway, 'close'),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`the gateway did not exit within 20 s:\n${seen}`)), 20_000).unref()),
      ])) as [number | null];
      expect(code).toBe(1);
      const lines = seen.trimEnd().split('\n');
      expect(lines.filter((line) => line.includes('"registry closed"'))).toHaveLength(3);
      expect(lines.at(-1)).toMatch(/^switchboard: cannot start: listen EADDRINUSE/);
    } finally {
      holder.close();
    }
  });

  it('a worker that cannot start writes its lines before it exits 1, though its reader stalls', async () => {
    const dir = await makeTempDir('sb-stderr-');
    // stderr is a FIFO filled to the brim: each line the worker writes waits for this test to read.
    const { reader, writer } = fullFifo(join(dir, 'stderr'));
    // The test plays the primary (cluster-messages.ts): the worker is the real program, started as
    // cluster.fork starts it, and its failure reaches the test at once instead of when it exits.
    const worker = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), '--config', join(dir, 'unused.yaml')], {
      stdio: ['ignore', 'ignore', writer, 'ipc'],
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info', NODE_UNIQUE_ID: '1', SWITCHBOARD_WORKER_SLOT: '1' },
      cwd: REPO_ROOT,
    });
    closeSync(writer);
    const exited = once(worker, 'exit');
    try {
      const reason = await new Promise<string>((resolve, reject) => {
        worker.on('message', (message: { kind?: string; reason?: string }) => {
          if (message.kind === 'switchboard:ready') worker.send({ kind: 'switchboard:config', path: 'gateway.yaml', text: 'listen: [', workers: 2 });
          if (message.kind === 'switchboard:failed') resolve(String(message.reason));
        });
        void exited.then(() => reject(new Error('the worker exited before it reported its failure')));
      });
      expect(reason).toMatch(/gateway\.yaml/);
      let seen = '';
      const chunk = Buffer.alloc(65_536);
      await waitFor(
        () => {
          for (;;) {
            let read: number;
            try {
              read = readSync(reader, chunk);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
              return false;
            }
            if (read === 0) return true;
            seen += chunk.toString('utf8', 0, read);
          }
        },
        { timeoutMs: 10_000, intervalMs: 10, message: 'the worker to exit and close its stderr' },
      );
      const lines = seen.trimEnd().split('\n').filter((line) => !line.startsWith('x'));
      expect(lines.filter((line) => line.includes('"worker cannot start"'))).toHaveLength(1);
      const [code] = (await exited) as [number | null];
      expect(code).toBe(1);
    } finally {
      if (worker.exitCode === null) worker.kill('SIGKILL');
      closeSync(reader);
    }
  });
});
