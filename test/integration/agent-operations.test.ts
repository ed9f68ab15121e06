import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exists } from '../../src/zookeeper/index.ts';
import {
  backendCommand,
  freePort,
  holdBundle,
  logOf,
  makeTempDir,
  startAgent,
  startBackend,
  waitFor,
  type ManagedProcess,
} from '../harness/index.ts';
import { cleanupsAfterEach } from '../harness/cleanups.ts';
import { zooKeeperWithReader } from '../harness/zookeeper-fixture.ts';
import { processExists } from '../harness/process-tree.ts';

const PROBES = ['--interval', '200ms', '--timeout', '1s', '--rise', '1', '--fall', '3', '--drain', '0s', '--ttl', '4s'];
/** Signals an operator sends a server for its own sake (reopen its logs, reload), which the agent passes on. */
const PASSED = ['SIGUSR2', 'SIGUSR1', 'SIGHUP'] as const;

describe('switchboard-agent as an operator runs it: signals for the backend, and why it is not registered', () => {
  const registry = zooKeeperWithReader();
  const cleanup = cleanupsAfterEach();

  async function agent(args: string[]): Promise<ManagedProcess> {
    const started = await startAgent(['--registry', `zk://${registry.zk.connectString}/services`, '--service', 'ops', ...PROBES, ...args]);
    // SIGTERM: with --drain 0s the agent deregisters and stops the backend it runs at once (SIGKILL would leave that running).
    cleanup.push(() => started.stop());
    return started;
  }

  async function registered(path: string, process: ManagedProcess): Promise<void> {
    await waitFor(() => exists(registry.reader, path), { timeoutMs: 20_000, message: `${path} to appear` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(process)}`);
    });
  }

  it('passes SIGUSR1, SIGUSR2 and SIGHUP on to the backend it runs, which stays registered', async () => {
    const port = await freePort();
    const runner = await agent(['--port', String(port), '--id', 'signalled', '--', ...backendCommand(port), '--log-signals']);
    const path = '/services/ops/signalled';
    await registered(path, runner);
    for (const signal of PASSED) {
      process.kill(runner.pid!, signal);
      // The backend prints each signal it gets: one at a time, so none is merged with another by the kernel.
      await waitFor(async () => (await logOf(runner)).includes(`signal ${signal}\n`), { timeoutMs: 10_000, message: `the backend to get ${signal}` }).catch(async (error: Error) => {
        // Node's default ends the agent on SIGUSR2 (its backend left running unregistered) and opens its inspector on SIGUSR1.
        throw new Error(`${error.message} (agent ${runner.running ? 'running' : `exited ${JSON.stringify(runner.exitInfo)}`})\n${await logOf(runner)}`);
      });
    }
    expect(runner.running).toBe(true);
    expect(await exists(registry.reader, path)).not.toBeNull();
    await runner.stop();
    expect(runner.exitInfo?.code).toBe(0);
    expect(await exists(registry.reader, path)).toBeNull();
  });

  it('ignores SIGUSR1 and SIGUSR2 without a backend to pass them to, and keeps the entry', async () => {
    const backend = await startBackend();
    cleanup.push(() => backend.process.kill());
    const runner = await agent(['--port', String(backend.port), '--id', 'beside']);
    const path = '/services/ops/beside';
    await registered(path, runner);
    for (const signal of PASSED.slice(0, 2)) {
      process.kill(runner.pid!, signal);
      await waitFor(async () => runner.exitInfo !== undefined || (await logOf(runner)).includes(`"msg":"${signal} ignored"`), { timeoutMs: 10_000, message: `the agent to log ${signal}` });
      expect(runner.running, await logOf(runner)).toBe(true);
    }
    // Node's inspector would have opened on SIGUSR1: the agent does not listen for a debugger.
    expect(await logOf(runner)).not.toContain('Debugger listening');
    expect(await exists(registry.reader, path)).not.toBeNull();
  });

  it('survives SIGUSR2 and keeps its inspector shut on SIGUSR1 that come while it is still loading its code', async () => {
    // A backend of its own: on Node 24 the signals held back while loading reach main.ts's handlers once it runs, which would pass them on to a backend just spawned.
    const backend = await startBackend();
    cleanup.push(() => backend.process.kill());
    // The agent's bundle is held from loading (test/fixtures/hold-bundle.mjs) while the signals come: the moment does not depend on timing.
    const hold = await holdBundle('switchboard-agent.js');
    const runner = await startAgent(['--registry', `zk://${registry.zk.connectString}/services`, '--service', 'ops', ...PROBES, '--port', String(backend.port), '--id', 'early'], hold.env);
    cleanup.push(() => runner.stop());
    const pid = await hold.held();
    // SIGUSR1 first: Node's default opens the inspector and the agent lives on, so SIGUSR2 still finds it.
    process.kill(pid, 'SIGUSR1');
    process.kill(pid, 'SIGUSR2');
    await hold.release();
    const path = '/services/ops/early';
    // Node's default ends the agent on SIGUSR2 before it registers (the wait stops at once), and opens its inspector on SIGUSR1.
    const state = await waitFor(async () => (runner.exitInfo !== undefined ? 'exited' : (await exists(registry.reader, path)) && 'registered'), { timeoutMs: 30_000, message: `${path} to appear` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(runner)}`);
    });
    expect(state, await logOf(runner)).toBe('registered');
    expect(await logOf(runner)).not.toContain('Debugger listening');
  });

  it('stops the backend it has just spawned on a SIGTERM that comes before the agent has set up anything else', async () => {
    const dir = await makeTempDir('sb-agent-early-term-');
    const pidFile = join(dir, 'backend.pid');
    // The backend stops the agent the moment it runs, as a service manager stopping the agent as it starts
    // would: Node's default ended the agent there, and this backend ran on unregistered, orphaned.
    const runner = await agent(['--port', String(await freePort()), '--id', 'early-term', '--', 'sh', '-c', 'echo $$ > "$0"; kill -TERM "$PPID"; exec sleep 60', pidFile]);
    await runner.waitForExit(15_000);
    const backendPid = Number(await waitFor(() => readFile(pidFile, 'utf8').catch(() => undefined), { timeoutMs: 10_000, message: 'the backend to write its pid' }));
    cleanup.push(async () => {
      if (processExists(backendPid)) process.kill(backendPid, 'SIGKILL');
    });
    await waitFor(() => !processExists(backendPid), { timeoutMs: 15_000, message: `the backend (pid ${backendPid}) to be stopped` }).catch(async (error: Error) => {
      throw new Error(`${error.message} (agent exited ${JSON.stringify(runner.exitInfo)})\n${await logOf(runner)}`);
    });
    expect(await logOf(runner)).toContain('deregistered; stopping the backend');
  });

  it("logs why the backend is not registered: the failing probe's reason, once, while its entry stays away", async () => {
    const port = await freePort();
    // A health path the backend does not serve (it answers 404): before, the agent logged nothing at all and never registered.
    const runner = await agent(['--port', String(port), '--id', 'unhealthy', '--health', 'http:/status/404', '--', ...backendCommand(port), '--log-requests']);
    // Five probes in (the backend prints each request it gets), each failing the same way.
    await waitFor(async () => ((await logOf(runner)).match(/^request \d+ GET \/status\/404$/gm) ?? []).length >= 5, { timeoutMs: 20_000, message: 'five probes' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(runner)}`);
    });
    // (A probe before the backend listened failed for another reason: ECONNREFUSED, logged once too.)
    const failures = (await logOf(runner)).split('\n').filter((line) => line.includes('backend probe failed') && line.includes('"detail":"status 404"'));
    // Once a minute at most for one reason, not at every probe (every 200 ms here).
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('"detail":"status 404","probe":"http:/status/404"');
    expect(failures[0]).toContain('backend probe failed; not registered until --rise passes in a row');
    expect(await exists(registry.reader, '/services/ops/unhealthy')).toBeNull();
  });

  it('warns of a registered backend failing its probe before --fall failures deregister it', async () => {
    const backend = await startBackend();
    cleanup.push(() => backend.process.kill());
    const runner = await agent(['--port', String(backend.port), '--id', 'failing', '--health', 'http:/healthz']);
    const path = '/services/ops/failing';
    await registered(path, runner);
    await fetch(`http://127.0.0.1:${backend.port}/health/fail`, { method: 'POST' });
    await waitFor(async () => (await exists(registry.reader, path)) === null, { timeoutMs: 20_000, message: `${path} to go` });
    const lines = (await logOf(runner)).split('\n');
    const warned = lines.findIndex((line) => line.includes('"detail":"status 500"') && line.includes('backend probe failed; deregistering after --fall failures in a row'));
    const flipped = lines.findIndex((line) => line.includes('"msg":"backend unhealthy"'));
    expect(warned, lines.join('\n')).toBeGreaterThanOrEqual(0);
    expect(warned).toBeLessThan(flipped);
  });

  it('logs at info that it registered again after the registry lost its entry, as at its first registration', async () => {
    const backend = await startBackend();
    cleanup.push(() => backend.process.kill());
    const runner = await agent(['--port', String(backend.port), '--id', 'lost']);
    const path = '/services/ops/lost';
    await registered(path, runner);
    const infos = async () => (await logOf(runner)).split('\n').filter((line) => line.includes('"level":30') && line.includes('"msg":"registration registered"'));
    await waitFor(async () => (await infos()).length === 1, { timeoutMs: 10_000, message: 'the first registration logged' });
    // Another client deletes the node, as a session expiry or a lost lease takes an entry away: the agent writes it again.
    await new Promise<void>((resolve, reject) => registry.reader.remove(path, -1, (error) => (error ? reject(error) : resolve())));
    await waitFor(async () => (await infos()).length === 2, { timeoutMs: 15_000, message: 'the registration again logged at info' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(runner)}`);
    });
    expect(await exists(registry.reader, path)).not.toBeNull();
  });
});
