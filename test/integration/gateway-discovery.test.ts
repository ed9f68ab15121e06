import { readFile } from 'node:fs/promises';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, getData } from '../../src/zookeeper/index.ts';
import { startAgentBackend, connectZooKeeperClient, logOf, startGateway, startZooKeeper, waitFor, type GatewayProcess, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

// --fall 5: the weight test failed about once in twenty CI runs with a pick or two moved between
// backends (b 202, c 298) and no retry in the gateway's log; the likeliest cause is two slow health
// probes in a row on a loaded machine deregistering a backend for a moment. Five in a row means the
// backend really is gone; the weight test also checks that no node was re-created meanwhile.
const AGENT_FLAGS = ['--interval', '200ms', '--rise', '1', '--fall', '5', '--drain', '0s', '--ttl', '4s'];

interface Member {
  name: string;
  port: number;
  agent: ManagedProcess;
}

describe('end to end: ZooKeeper, backends beside agents, and the gateway', () => {
  let zk: ZooKeeperCluster;
  let reader: Client;
  let gateway: GatewayProcess;
  const members: Member[] = [];

  async function member(name: string, weight: number, extra: string[] = []): Promise<Member> {
    const { agent, port } = await startAgentBackend({ registry: `zk://${zk.connectString}/services`, service: 'user', id: name, weight, flags: ['--health', 'http:/healthz', ...AGENT_FLAGS, ...extra] });
    const started = { name, port, agent };
    members.push(started);
    return started;
  }

  /** The backend name that answered one request through the gateway, or the failure. */
  async function hit(): Promise<string> {
    try {
      const response = await fetch(`${gateway.url}/api/user/who`);
      const body = await response.text();
      return response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}: ${body}`;
    } catch (error) {
      return `error: ${(error as Error).message}`;
    }
  }

  async function tally(requests: number): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (let index = 0; index < requests; index += 1) {
      const name = await hit();
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return counts;
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    reader = await connectZooKeeperClient(zk.connectString);
    // b drains for 30 s after deregistering, so it still answers while the gateway must already avoid it.
    await Promise.all([member('a', 1), member('b', 2, ['--drain', '30s']), member('c', 3)]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
registries: [zk://${zk.connectString}/services]
services:
  user: { balancer: weighted-round-robin }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`);
    await waitFor(async () => (await tally(12)).size === 3, { timeoutMs: 20_000, message: 'all three backends behind the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    // Backends first: an agent that is killed leaves its child behind.
    for (const started of members) {
      if (!started.agent.running) continue;
      const backend = await childPidOf(started.agent.pid!).catch(() => undefined);
      if (backend) process.kill(backend, 'SIGKILL');
    }
    await Promise.all(members.map((started) => started.agent.kill()));
    reader?.close();
    await zk?.close();
  });

  it('splits traffic by the weights the agents registered', async () => {
    // Each node's creation and data version: a re-registration (or a rewrite) during the tally changes the set.
    const registrations = () => Promise.all(['a', 'b', 'c'].map(async (name) => {
      const stat = await exists(reader, `/services/user/${name}`);
      return stat ? `${name}:${stat.czxid.toString('hex')}/${stat.version}` : `${name}:absent`;
    }));
    // On a mismatch the agents' logs tell why (a failed probe, an expired session).
    const agentLogs = async () => (await Promise.all(members.map(async (started) => `--- agent ${started.name}\n${(await logOf(started.agent)).slice(-3_000)}`))).join('\n');
    // All three nodes, read until each is seen: in two CI runs under load a read here answered
    // "absent" for nodes the agents had registered (and never removed, by their logs) and the
    // gateway was routing to. A read that misses a node is retried; a re-registration still shows
    // as a new creation zxid.
    const settled = async () => {
      let seen: string[] = [];
      await waitFor(async () => (seen = await registrations()).every((entry) => !entry.endsWith(':absent')), { timeoutMs: 10_000, message: 'all three nodes read' }).catch(async (error: Error) => {
        throw new Error(`${error.message}: ${seen.join(', ')}\n${await agentLogs()}`);
      });
      return seen;
    };
    const before = await settled();
    const accessLines = async () => (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((line) => line.includes('"path":"/api/user/who"')).length;
    const linesBefore = await accessLines();
    const counts = await tally(600);
    // The instance set must have stayed put; otherwise the premise of the count below is gone.
    expect(await settled(), await agentLogs()).toEqual(before);
    // Smooth weighted round-robin is exact over whole cycles of 1 + 2 + 3 picks, as long as nothing
    // else picks in between. On a mismatch, say why: requests the gateway served beside the tally's
    // (its access lines), and every line of its log that is not an access line (a retry, a set or
    // health change); the access lines alone would push those out of any tail.
    const why = async () => {
      const log = (await readFile(gateway.process.logFile, 'utf8')).split('\n');
      const other = log.filter((line) => line !== '' && !line.includes('"path":"/api/user/who"'));
      return `${(await accessLines()) - linesBefore} access lines for the 600 requests; other gateway lines:\n${other.slice(-60).join('\n')}\n${await agentLogs()}`;
    };
    const expected = { a: 100, b: 200, c: 300 };
    const got = Object.fromEntries(counts);
    const exact = counts.size === 3 && Object.entries(expected).every(([name, count]) => counts.get(name) === count);
    expect(got, exact ? '' : await why()).toEqual(expected);
  });

  it('sends traffic to a fourth backend within one second of its registration', async () => {
    const d = await member('d', 3);
    await waitFor(() => exists(reader, '/services/user/d'), { timeoutMs: 15_000, message: 'd registered' });
    const registeredAt = Date.now();
    await waitFor(async () => (await hit()) === 'd', { timeoutMs: 1_000, intervalMs: 1, message: 'a request reaching d' });
    expect(Date.now() - registeredAt).toBeLessThan(1_000);
    expect(d.agent.running).toBe(true);
  });

  it('sends nothing to a backend once its agent has marked it draining, though it still answers', async () => {
    const b = members.find((started) => started.name === 'b')!;
    process.kill(b.agent.pid!, 'SIGTERM');
    // The drain handshake: the entry stays (for --drain, 30 s here) with "draining": true.
    await waitFor(async () => (JSON.parse(String((await getData(reader, '/services/user/b')).data)) as { draining?: boolean }).draining === true, {
      timeoutMs: 5_000,
      message: 'b marked draining',
    });
    const markedAt = Date.now();
    // The change reaches the balancer through the watch, the provider and the throttle window.
    await waitFor(async () => !(await tally(20)).has('b'), { timeoutMs: 1_000, intervalMs: 1, message: 'the gateway to stop picking b' });
    expect(Date.now() - markedAt).toBeLessThan(1_000);
    const counts = await tally(300);
    expect(counts.get('b')).toBeUndefined();
    expect([...counts.keys()].sort()).toEqual(['a', 'c', 'd']);
    // b is draining, not gone: had the gateway picked it, it would have answered.
    expect(await exists(reader, '/services/user/b')).not.toBeNull();
    expect(b.agent.running).toBe(true);
    expect((await fetch(`http://127.0.0.1:${b.port}/x`)).status).toBe(200);
  });

  it('loses no request under steady load when a backend is killed with SIGKILL', async () => {
    const c = members.find((started) => started.name === 'c')!;
    const failures: string[] = [];
    let served = 0;
    let running = true;
    const worker = async () => {
      while (running) {
        const name = await hit();
        if (name.startsWith('status') || name.startsWith('error')) failures.push(name);
        else served += 1;
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await waitFor(() => served > 200, { timeoutMs: 10_000, message: 'steady load' });
    // The backend dies; its agent is left running so only the gateway's retries and ejection protect clients.
    const backendPid = await childPidOf(c.agent.pid!);
    process.kill(backendPid, 'SIGKILL');
    const servedAtKill = served;
    await waitFor(() => served > servedAtKill + 1_000, { timeoutMs: 30_000, message: '1,000 more requests after the kill' });
    running = false;
    await Promise.all(workers);
    expect(failures).toEqual([]);
  });
});

/** The pid of the backend an agent started (its only child). */
async function childPidOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
  if (children.length !== 1) throw new Error(`expected one child of ${pid}, found ${children.join(',') || 'none'}`);
  return Number(children[0]);
}
