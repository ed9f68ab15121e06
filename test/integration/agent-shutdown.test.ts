import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import {
  backendCommand,
  connectZooKeeperClient,
  freePort,
  logOf,
  makeTempDir,
  startAgent,
  startOnTerminal,
  startEtcd,
  startZooKeeper,
  waitFor,
  type EtcdCluster,
  type ManagedProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';
import { agentWithBackend, type AgentWithBackend } from '../harness/agent-with-backend.ts';
import type { Cleanups } from '../harness/cleanups.ts';
import { descendantsOf, killStillRunning, stillRunning, type ProcessRecord } from '../harness/process-tree.ts';
import { exists } from '../../src/zookeeper/index.ts';

const TTL_MS = 2_000;
const DRAIN_MS = 500;
/**
 * The documented bound (README, `--help`): deregistration gives up after `--ttl`, then `--drain`,
 * then the backend's own stop (this one exits at once on SIGTERM) and at most 1 s to close the
 * registry client. Two more seconds of slack for a loaded 2-core machine.
 */
const EXIT_BOUND_MS = TTL_MS + DRAIN_MS + 1_000 + 2_000;
const PROBES = ['--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '2'];

/** An agent running its own backend (`agentWithBackend`) with this file's --ttl, --drain and probes. */
function agentWithOwnBackend(registry: string, id: string, cleanup: Cleanups, drain = `${DRAIN_MS}ms`): Promise<AgentWithBackend> {
  return agentWithBackend(registry, id, ['--ttl', `${TTL_MS}ms`, '--drain', drain, ...PROBES], cleanup);
}

/** SIGTERM, then how long the agent took to exit and how; a SIGKILL from the harness means it missed the bound. */
async function terminate(agent: ManagedProcess): Promise<{ elapsedMs: number; code: number | null; signal: NodeJS.Signals | null }> {
  const sentAt = Date.now();
  const exit = await agent.stop(EXIT_BOUND_MS + 2_000);
  return { elapsedMs: Date.now() - sentAt, code: exit?.code ?? null, signal: exit?.signal ?? null };
}

describe('switchboard-agent SIGTERM while its registry is down, and while its backend dies', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  let zk: ZooKeeperCluster | undefined;
  let etcd: EtcdCluster | undefined;

  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });
  afterAll(async () => {
    await zk?.close();
    await etcd?.close();
  });

  it('exits within the stated bound and stops its backend when ZooKeeper was killed', async () => {
    zk = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    const reader = await connectZooKeeperClient(zk.connectString);
    const { agent, backend } = await agentWithOwnBackend(`zk://${zk.connectString}/services`, 'zk-down', cleanup);
    try {
      await waitFor(() => exists(reader, '/services/user/zk-down'), { timeoutMs: 10_000, message: 'the node to appear' });
    } finally {
      reader.close();
    }
    expect(backend().map((child) => child.command).join('\n')).toMatch(/backend/);

    await zk.nodes[0]!.kill();
    const exit = await terminate(agent);
    expect(exit, await logOf(agent)).toMatchObject({ signal: null, code: 0 });
    expect(exit.elapsedMs).toBeLessThan(EXIT_BOUND_MS);
    expect(stillRunning(backend())).toEqual([]);
  });

  it('exits within the stated bound when ZooKeeper stops answering (a silent partition), deregistering once', async () => {
    // A longer --ttl than the other tests': a second deregistration at close (the bug this guards
    // against) waits out a whole --ttl more, which this bound then tells from a loaded machine.
    const ttlMs = 4_000;
    const silent = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    cleanup.push(() => silent.close());
    const reader = await connectZooKeeperClient(silent.connectString);
    const port = await freePort();
    const agent = await startAgent([
      '--registry', `zk://${silent.connectString}/services`, '--service', 'user', '--port', String(port), '--id', 'zk-silent',
      '--ttl', `${ttlMs}ms`, '--drain', `${DRAIN_MS}ms`, ...PROBES, '--', ...backendCommand(port, 'zk-silent'),
    ]);
    cleanup.push(() => agent.kill());
    try {
      await waitFor(() => exists(reader, '/services/user/zk-silent'), { timeoutMs: 10_000, message: 'the node to appear' });
    } finally {
      reader.close();
    }
    const node = silent.nodes[0]!;
    node.pause();
    cleanup.unshift(async () => node.resume());
    const sentAt = Date.now();
    const exit = await agent.stop(2 * ttlMs + DRAIN_MS + 5_000);
    const elapsedMs = Date.now() - sentAt;
    expect(exit, await logOf(agent)).toMatchObject({ signal: null, code: 0 });
    expect(elapsedMs, await logOf(agent)).toBeLessThan(ttlMs + DRAIN_MS + 1_000 + 2_000);
    // The backend stopped because the agent stopped it, after the drain: no warning says otherwise.
    expect(await logOf(agent)).not.toContain('backend exited during the drain');
    // The deletion gave up within what was left of --ttl after the drain, named in whole milliseconds (986.0133340000011 before).
    expect(await logOf(agent)).toMatch(/no answer from the registry within \d+ ms"/);
  });

  it("exits with the backend's status when the backend dies during the drain", async () => {
    const live = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    cleanup.push(() => live.close());
    const reader = await connectZooKeeperClient(live.connectString);
    const port = await freePort();
    const agent = await startAgent([
      '--registry', `zk://${live.connectString}/services`, '--service', 'user', '--port', String(port), '--id', 'zk-dies',
      '--ttl', `${TTL_MS}ms`, '--drain', '60s', ...PROBES, '--', ...backendCommand(port, 'zk-dies'),
    ]);
    cleanup.push(() => agent.kill());
    try {
      await waitFor(() => exists(reader, '/services/user/zk-dies'), { timeoutMs: 10_000, message: 'the node to appear' });
      process.kill(agent.pid!, 'SIGTERM');
      await waitFor(async () => (await logOf(agent)).includes('marked draining'), { timeoutMs: 10_000, message: 'the agent to mark its entry draining' });
      // The backend dies while the agent waits --drain (60 s): the agent deregisters at once and exits with its status.
      const [backend] = descendantsOf(agent.pid!);
      process.kill(backend!.pid, 'SIGKILL');
      expect(await agent.waitForExit(20_000)).toMatchObject({ code: 128 + 9 });
      expect(await logOf(agent)).toContain('backend exited during the drain');
      expect(await exists(reader, '/services/user/zk-dies')).toBeNull();
    } finally {
      reader.close();
    }
  });

  it('cuts the --drain wait short on a second Ctrl-C (SIGINT): deletes the entry, then stops the backend, at once', async () => {
    const live = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    cleanup.push(() => live.close());
    const reader = await connectZooKeeperClient(live.connectString);
    const { agent, backend } = await agentWithOwnBackend(`zk://${live.connectString}/services`, 'zk-twice', cleanup, '60s');
    try {
      await waitFor(() => exists(reader, '/services/user/zk-twice'), { timeoutMs: 10_000, message: 'the node to appear' });
      expect(backend()).toHaveLength(1);
      process.kill(agent.pid!, 'SIGINT');
      await waitFor(async () => (await logOf(agent)).includes('marked draining'), { timeoutMs: 10_000, message: 'the agent to mark its entry draining' });
      // A second SIGTERM would change nothing; a second SIGINT ends the 60 s wait.
      process.kill(agent.pid!, 'SIGINT');
      // The backend is stopped with the agent's signal, SIGINT, which ends it (Node's default): the agent exits with its status.
      const exit = await agent.waitForExit(15_000);
      expect(exit, await logOf(agent)).toMatchObject({ signal: null, code: 128 + 2 });
      const log = await logOf(agent);
      expect(log).toContain('a second SIGINT: deregistering now, without waiting --drain');
      expect(log.indexOf('deregistered; stopping the backend')).toBeGreaterThan(log.indexOf('a second SIGINT'));
      expect(await exists(reader, '/services/user/zk-twice')).toBeNull();
      expect(stillRunning(backend())).toEqual([]);
    } finally {
      reader.close();
    }
  });

  it('drains on SIGTERM after a --fall deregistration the registry did not confirm (the entry may still be there)', async () => {
    const paused = await startEtcd();
    cleanup.push(() => paused.close());
    const member = paused.members[0]!;
    const reader = new Etcd3({ hosts: paused.endpoints });
    cleanup.push(async () => reader.close());
    const port = await freePort();
    const agent = await startAgent([
      '--registry', `etcd://${paused.endpoints[0]!.replace('http://', '')}/services`, '--service', 'user', '--port', String(port), '--id', 'etcd-unconfirmed',
      '--ttl', `${TTL_MS}ms`, '--drain', `${DRAIN_MS}ms`, '--health', 'http:/healthz', '--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '1',
      '--', ...backendCommand(port, 'etcd-unconfirmed'),
    ]);
    cleanup.push(() => agent.kill());
    await waitFor(() => reader.get('/services/user/etcd-unconfirmed').string(), { timeoutMs: 10_000, message: 'the key to appear' });

    // etcd stops answering, then the backend fails its probe: the lease revoke cannot be confirmed.
    member.pause();
    cleanup.unshift(async () => member.resume());
    const failed = await fetch(`http://127.0.0.1:${port}/health/fail`, { method: 'POST' });
    await failed.arrayBuffer();
    await waitFor(async () => (await logOf(agent)).includes('deregistration failed'), { timeoutMs: 15_000, message: 'the deregistration to give up' });

    // SIGTERM while etcd still answers nothing (the removal is being retried): bounded as ever.
    const exit = await agent.stop(EXIT_BOUND_MS + 2_000);
    const log = await logOf(agent);
    expect(exit, log).toMatchObject({ signal: null, code: 0 });
    // The old agent read its state (unregistered) as "no entry" and stopped the backend without waiting --drain.
    expect(log).not.toContain('no entry registered, nothing to drain');
    expect(log).toContain('the last deregistration was not confirmed');
    expect(log).toContain('drained; deregistering');
  });

  it('counts --drain from the retried deletion once it is confirmed, after a deregistration the registry did not confirm', async () => {
    // --ttl leaves half of itself (3 s) to wait for the deletion; the outage outlasts --drain (1 s).
    const ttlMs = 6_000;
    const drainMs = 1_000;
    const paused = await startEtcd();
    cleanup.push(() => paused.close());
    const member = paused.members[0]!;
    const reader = new Etcd3({ hosts: paused.endpoints });
    cleanup.push(async () => reader.close());
    const port = await freePort();
    const key = '/services/user/etcd-late-deletion';
    const agent = await startAgent([
      '--registry', `etcd://${paused.endpoints[0]!.replace('http://', '')}/services`, '--service', 'user', '--port', String(port), '--id', 'etcd-late-deletion',
      '--ttl', `${ttlMs}ms`, '--drain', `${drainMs}ms`, '--health', 'http:/healthz', '--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '1',
      '--', ...backendCommand(port, 'etcd-late-deletion'),
    ]);
    cleanup.push(() => agent.kill());
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: 'the key to appear' });

    member.pause();
    cleanup.unshift(async () => member.resume());
    const failed = await fetch(`http://127.0.0.1:${port}/health/fail`, { method: 'POST' });
    await failed.arrayBuffer();
    await waitFor(async () => (await logOf(agent)).includes('deregistration failed'), { timeoutMs: ttlMs + 10_000, message: 'the deregistration to give up' });

    // SIGTERM while etcd is still frozen: gateways keep sending to the key they last read until its deletion lands.
    process.kill(agent.pid!, 'SIGTERM');
    await waitFor(async () => (await logOf(agent)).includes('the last deregistration was not confirmed'), { timeoutMs: 5_000, message: 'the agent to take the signal' });
    // The outage's length, not a synchronisation: etcd comes back only after --drain has passed since the signal.
    await new Promise((resolve) => setTimeout(resolve, drainMs + 500));
    member.resume();
    let exitedAt: number | undefined;
    const exited = agent.waitForExit(ttlMs + drainMs + 10_000).then((exit) => {
      exitedAt = Date.now();
      return exit;
    });
    const goneAt = await waitFor(async () => ((await reader.get(key).string()) === null ? Date.now() : undefined), { timeoutMs: ttlMs, intervalMs: 20, message: 'the key to go once etcd answers' });
    const exit = await exited;
    const log = await logOf(agent);
    expect(exit, log).toMatchObject({ signal: null, code: 0 });
    expect(log).toContain('the retried deletion was confirmed');
    // The old agent counted --drain from the signal and stopped the backend as the deletion landed (about 50 ms later).
    expect(exitedAt! - goneAt, log).toBeGreaterThanOrEqual(drainMs - 100);
  });

  it('bounds marking and deleting by the lease etcd was asked for, a --ttl rounded up to whole seconds, when etcd stops answering', async () => {
    const paused = await startEtcd();
    cleanup.push(() => paused.close());
    const member = paused.members[0]!;
    const reader = new Etcd3({ hosts: paused.endpoints });
    cleanup.push(async () => reader.close());
    const registry = `etcd://${paused.endpoints[0]!.replace('http://', '')}/services`;
    // --ttl 1400ms is a 2 s lease: the key outlives a silent agent by up to 2 s, so shutdown may wait that long for etcd.
    const start = async (id: string, drain: string) => {
      const port = await freePort();
      const agent = await startAgent(['--registry', registry, '--service', 'user', '--port', String(port), '--id', id, '--ttl', '1400ms', '--drain', drain, ...PROBES, '--', ...backendCommand(port, id)]);
      cleanup.push(async () => {
        await agent.kill();
        killStillRunning(children);
      });
      return agent;
    };
    let children: ProcessRecord[] = [];
    const [draining, immediate] = [await start('etcd-lease-drain', '200ms'), await start('etcd-lease-now', '0s')];
    await waitFor(async () => (await reader.get('/services/user/etcd-lease-drain').string()) && (await reader.get('/services/user/etcd-lease-now').string()), { timeoutMs: 10_000, message: 'both keys to appear' });
    children = [draining, immediate].flatMap((agent) => (agent.pid === undefined ? [] : descendantsOf(agent.pid)));

    member.pause();
    cleanup.unshift(async () => member.resume());
    const [drained, stopped] = await Promise.all([draining.stop(EXIT_BOUND_MS + 2_000), immediate.stop(EXIT_BOUND_MS + 2_000)]);
    const [drainLog, immediateLog] = [await logOf(draining), await logOf(immediate)];
    expect(drained, drainLog).toMatchObject({ signal: null, code: 0 });
    expect(stopped, immediateLog).toMatchObject({ signal: null, code: 0 });
    // Half of the 2 s lease for the mark (700 ms, half of --ttl, before) ...
    expect(drainLog).toMatch(/"boundMs":1000,"waitedMs":\d+\b.*did not confirm the draining mark/);
    // It waited that bound, not --drain (200 ms) nor --ttl.
    expect(Number(/"waitedMs":(\d+)/.exec(drainLog)![1])).toBeGreaterThanOrEqual(990);
    // ... and the whole lease for a deletion without a drain (1400 ms before).
    expect(immediateLog).toMatch(/"timeoutMs":2000\b.*deregistration failed/);
  });

  it('bounds marking and deleting by the session ZooKeeper granted, a --ttl its minSessionTimeout raised, when ZooKeeper stops answering', async () => {
    // A 3 s minSessionTimeout turns the 1 s asked for into a 3 s session: the znode outlives a silent agent by up to 3 s.
    const clamped = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 3_000 });
    cleanup.push(() => clamped.close());
    const reader = await connectZooKeeperClient(clamped.connectString);
    cleanup.push(async () => reader.close());
    let children: ProcessRecord[] = [];
    const start = async (id: string, drain: string) => {
      const port = await freePort();
      const agent = await startAgent(['--registry', `zk://${clamped.connectString}/services`, '--service', 'user', '--port', String(port), '--id', id, '--ttl', '1s', '--drain', drain, ...PROBES, '--', ...backendCommand(port, id)]);
      cleanup.push(async () => {
        await agent.kill();
        killStillRunning(children);
      });
      return agent;
    };
    const [draining, immediate] = [await start('zk-granted-drain', '200ms'), await start('zk-granted-now', '0s')];
    await waitFor(async () => (await exists(reader, '/services/user/zk-granted-drain')) && exists(reader, '/services/user/zk-granted-now'), { timeoutMs: 10_000, message: 'both nodes to appear' });
    children = [draining, immediate].flatMap((agent) => (agent.pid === undefined ? [] : descendantsOf(agent.pid)));

    const node = clamped.nodes[0]!;
    node.pause();
    cleanup.unshift(async () => node.resume());
    const [drained, stopped] = await Promise.all([draining.stop(3_000 + EXIT_BOUND_MS), immediate.stop(3_000 + EXIT_BOUND_MS)]);
    const [drainLog, immediateLog] = [await logOf(draining), await logOf(immediate)];
    expect(drained, drainLog).toMatchObject({ signal: null, code: 0 });
    expect(stopped, immediateLog).toMatchObject({ signal: null, code: 0 });
    // Half of the granted 3 s for the mark (500 ms, half of --ttl, before) ...
    expect(drainLog).toMatch(/"boundMs":1500,"waitedMs":\d+\b.*did not confirm the draining mark/);
    // ... and the whole granted session for a deletion without a drain (1000 ms before).
    expect(immediateLog).toMatch(/"timeoutMs":3000\b.*deregistration failed/);
  });

  it('exits within the stated bound and stops its backend when etcd was killed', async () => {
    etcd = await startEtcd();
    const reader = new Etcd3({ hosts: etcd.endpoints });
    const endpoint = etcd.endpoints[0]!.replace('http://', '');
    const { agent, backend } = await agentWithOwnBackend(`etcd://${endpoint}/services`, 'etcd-down', cleanup);
    try {
      await waitFor(() => reader.get('/services/user/etcd-down').string(), { timeoutMs: 10_000, message: 'the key to appear' });
    } finally {
      reader.close();
    }
    expect(backend().map((child) => child.command).join('\n')).toMatch(/backend/);

    await etcd.members[0]!.kill();
    const exit = await terminate(agent);
    expect(exit, await logOf(agent)).toMatchObject({ signal: null, code: 0 });
    expect(exit.elapsedMs).toBeLessThan(EXIT_BOUND_MS);
    expect(stillRunning(backend())).toEqual([]);
  });

  it('deregisters when its terminal hangs up (SIGHUP with a terminal for output), rather than leave its entry to expire', async () => {
    // A ZooKeeper of its own: the file's shared one was killed by a test before.
    const live = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    cleanup.push(() => live.close());
    // A backend that reloads on SIGHUP, as nginx does: the agent must stop it with SIGTERM, not pass the hangup on.
    const port = await freePort();
    const script = join(await makeTempDir('sb-tty-agent-'), 'backend.mjs');
    await writeFile(script, `import { createServer } from 'node:http';\nprocess.on('SIGHUP', () => {});\nprocess.on('SIGTERM', () => process.exit(0));\ncreateServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1');\n`);
    // A --ttl far longer than the bound below: an agent that just dies leaves its node there until the session expires.
    const args = ['--registry', `zk://${live.connectString}/services`, '--service', 'user', '--port', String(port), '--id', 'tty', '--ttl', '30s', '--drain', '0ms', ...PROBES, '--', process.execPath, script];
    // `script` runs the agent on a pseudo-terminal of its own, as a shell would: its output is a terminal.
    const agent = await startOnTerminal('bin/switchboard-agent.js', args, 'agent started');
    cleanup.push(async () => agent.kill());
    const reader = await connectZooKeeperClient(live.connectString);
    try {
      await waitFor(() => exists(reader, '/services/user/tty'), { timeoutMs: 10_000, message: 'the node to appear' });
      // The terminal goes away (its ssh session ended): the kernel sends the agent, which `script` made the
      // terminal's controlling process, a SIGHUP, and its writes to that terminal fail from then on.
      const backendPids = descendantsOf(agent.pid);
      cleanup.push(async () => killStillRunning(backendPids));
      agent.hangUp();
      // Well under the 10 s after which the agent kills a backend that did not stop.
      await waitFor(() => !agent.running(), { timeoutMs: 8_000, message: "the agent to end on its terminal's hangup" });
      expect(stillRunning(backendPids)).toEqual([]);
      // Gone at once, not 30 s later when ZooKeeper expires the session of an agent that died without a word.
      await waitFor(async () => !(await exists(reader, '/services/user/tty')), { timeoutMs: 5_000, message: `the node to be deleted\n${agent.output().slice(-2_000)}` });
    } finally {
      reader.close();
    }
  });
});
