// A multi-process gateway told to stop while its workers are still starting stops then, without
// waiting for the start (whose bound is 30 s per worker), and leaves no worker behind; told to
// stop before its control plane has started, it forks no worker at all.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { logOf, makeTempDir, ManagedProcess, refusingPort, REPO_ROOT, waitFor } from '../harness/index.ts';
import { descendantsOf, killStillRunning, stillRunning, type ProcessRecord } from '../harness/process-tree.ts';

/** Longer than the workers' start bound: a gateway that waited for the start would fail it (exit 1), not stop. */
const WORKER_HOLD_MS = 60_000;

describe('workers: 2 — SIGTERM while the workers are starting', () => {
  let gateway: ManagedProcess | undefined;
  let tree: ProcessRecord[] = [];

  afterEach(async () => {
    killStillRunning(tree);
    await gateway?.kill();
  });

  it('stops the starting workers, says so, exits 0 and leaves no worker process behind', async () => {
    const dir = await makeTempDir('sb-stop-starting-');
    // Each worker's event loop is held before the gateway's code loads: it can take no drain, only a kill.
    const preload = join(dir, 'hold-workers.cjs');
    writeFileSync(preload, `if (require('node:cluster').isWorker) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${WORKER_HOLD_MS});\n`);
    const configPath = join(dir, 'gateway.yaml');
    // Port 0 for the listeners (a port chosen ahead could be taken by a program of the other test worker
    // first); the instance is never reached.
    writeFileSync(configPath, `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
workers: 2
accessLog: false
services:
  user: { instances: ["127.0.0.1:${await refusingPort()}"] }
routes:
  - { path: /, service: user }
`);
    gateway = new ManagedProcess({
      name: 'gateway:stop-while-starting',
      command: process.execPath,
      args: [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath],
      logFile: join(dir, 'gateway.log'),
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require=${preload}` },
      cwd: REPO_ROOT,
    });
    gateway.start();
    const pid = gateway.pid!;
    tree = await waitFor(() => {
      const workers = descendantsOf(pid).filter((record) => record.command.includes('switchboard'));
      return workers.length === 2 ? workers : undefined;
    }, { timeoutMs: 30_000, message: 'both workers to be forked' });

    process.kill(pid, 'SIGTERM');
    // Well under the workers' 30 s start bound: the stop does not wait for it.
    const exit = await gateway.waitForExit(20_000).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!)}`);
    });
    const log = await logOf(gateway);
    expect(exit.code, log).toBe(0);
    expect(log).toContain('stop requested while workers were starting; stopping them without waiting for the start');
    expect(log.split('\n').filter((line) => line.includes('worker still starting when the gateway stopped; killed'))).toHaveLength(2);
    expect(log).toContain('stopped before the gateway finished starting');
    expect(log).not.toContain('cannot start');
    expect(log).not.toContain('gateway listening');
    expect(stillRunning(tree)).toEqual([]);
  }, 60_000);

  it('forks no worker when the stop comes before the control plane has started, and exits 0 without the starting-worker kill', async () => {
    const dir = await makeTempDir('sb-stop-before-fork-');
    const forked = join(dir, 'workers-forked');
    const held = join(dir, 'admin-held');
    // In the primary, the admin bind (within the control plane's start; its port 0 told apart from the
    // workers' listeners, whose binds in the primary pass an options object) waits for the SIGTERM, and
    // says when it waits; a worker writes its pid as its code loads, so any fork at all is seen.
    const preload = join(dir, 'hold-admin.cjs');
    writeFileSync(preload, `
const fs = require('node:fs');
if (require('node:cluster').isWorker) fs.appendFileSync(${JSON.stringify(forked)}, process.pid + '\\n');
else {
  const net = require('node:net');
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    if (args[0] !== 0) return listen.apply(this, args);
    // The bind it holds would be a handle keeping the process alive; without one, a primary with
    // nothing else pending ended on an empty event loop (exit 0, nothing logged) before a late SIGTERM.
    const pending = setInterval(() => {}, 60_000);
    process.once('SIGTERM', () => setImmediate(() => (clearInterval(pending), listen.apply(this, args))));
    fs.writeFileSync(${JSON.stringify(held)}, '');
    return this;
  };
}
`);
    const configPath = join(dir, 'gateway.yaml');
    writeFileSync(configPath, `
listen: 127.0.0.1:0
admin: 127.0.0.1:0
workers: 2
accessLog: false
services:
  user: { instances: ["127.0.0.1:${await refusingPort()}"] }
routes:
  - { path: /, service: user }
`);
    gateway = new ManagedProcess({
      name: 'gateway:stop-before-fork',
      command: process.execPath,
      args: [join(REPO_ROOT, 'bin/switchboard.js'), '--config', configPath],
      logFile: join(dir, 'gateway.log'),
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require=${preload}` },
      cwd: REPO_ROOT,
    });
    gateway.start();
    const pid = gateway.pid!;
    await waitFor(() => existsSync(held) || undefined, { timeoutMs: 30_000, message: 'the primary to reach its admin bind' });

    process.kill(pid, 'SIGTERM');
    const exit = await gateway.waitForExit(20_000).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!)}`);
    });
    const log = await logOf(gateway);
    expect(exit.code, log).toBe(0);
    // A gateway that forked after the stop started workers (each writes its pid) and drained or killed them.
    expect(existsSync(forked) ? readFileSync(forked, 'utf8') : '', log).toBe('');
    expect(log).toContain('stop requested before the workers were forked; none is forked');
    expect(log).not.toContain('worker still starting when the gateway stopped; killed');
    expect(log).toContain('stopped before the gateway finished starting');
    expect(log).not.toContain('cannot start');
    expect(log).not.toContain('gateway listening');
  }, 60_000);
});
