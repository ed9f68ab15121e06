import { Etcd3 } from 'etcd3';
import type { Client } from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getData } from '../../src/zookeeper/index.ts';
import { ENTRY_REPAIR_BACKOFF } from '../../src/registration/registration-entry-repair.ts';
import { setData } from '../../src/zookeeper/zookeeper-writes.ts';
import { connectZooKeeperClient, logOf, startAgent, startBackend, startEtcd, startZooKeeper, waitFor, type EtcdCluster, type ManagedProcess, type ZooKeeperCluster } from '../harness/index.ts';

const FAST = ['--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '2', '--drain', '0s', '--ttl', '2s', '--weight', '5'];
const REPAIRED = 'registry entry holds a value gateways cannot read (another client wrote it); writing ours back';
const FIGHT = 'another agent or tool writes the same entry';

/** How a test reads and writes one registry's entry by hand, as an operator would (`zkCli.sh set`, `etcdctl put --ignore-lease`). */
interface HandEdits {
  readonly url: string;
  read(key: string): Promise<string | undefined>;
  /** Writes `value` in the entry, keeping its owner (the agent's ephemeral node, or its lease). */
  write(key: string, value: string): Promise<void>;
}

/** Polls `check` for `ms`: it must hold throughout (what the agent must not do has no event to wait for). */
async function holdsFor(ms: number, check: () => Promise<boolean>, message: string): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    expect(await check(), message).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The same cases against each registry the agent writes. */
function entryRepairCases(edits: () => HandEdits): void {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function registered(): Promise<{ agent: ManagedProcess; key: string; own: string }> {
    const backend = await startBackend();
    cleanup.push(() => backend.process.kill());
    const agent = await startAgent(['--registry', edits().url, '--service', 'user', '--port', String(backend.port), '--id', `user-${backend.port}`, ...FAST]);
    cleanup.push(() => agent.kill());
    const key = `/services/user/user-${backend.port}`;
    const own = await waitFor(() => edits().read(key), { timeoutMs: 10_000, message: `${key} to appear` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    return { agent, key, own };
  }
  const repairsIn = async (agent: ManagedProcess) => (await logOf(agent)).split('\n').filter((line) => line.includes('"msg":"registry entry'));

  it('leaves a hand edit gateways can read (a weight of 0, as the registry contract documents), and writes its own entry back over a value they cannot read, saying what it found', async () => {
    const { agent, key, own } = await registered();
    const drained = JSON.stringify({ ...JSON.parse(own), weight: 0 });
    await edits().write(key, drained);
    await holdsFor(1_500, async () => (await edits().read(key)) === drained, `${key} keeps the weight of 0 written by hand`);
    expect(await repairsIn(agent)).toEqual([]);
    for (const bad of ['{"id":', JSON.stringify({ ...JSON.parse(own), port: 'eighty' })]) {
      await edits().write(key, bad);
      await waitFor(async () => (await edits().read(key)) === own || undefined, { timeoutMs: 5_000, message: `${key} written back after ${bad}` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await logOf(agent)}`);
      });
      await waitFor(async () => (await repairsIn(agent)).some((line) => line.includes(REPAIRED) && JSON.parse(line).found === bad && JSON.parse(line).key === key) || undefined, { timeoutMs: 5_000, message: 'the warning naming the entry and what it held' });
    }
  });

  it('repairs at a bounded rate, and calls it a fight, when another writer keeps making the entry unreadable', async () => {
    const { agent, key, own } = await registered();
    const findings = async () => (await repairsIn(agent)).filter((line) => line.includes(REPAIRED) || line.includes(FIGHT)).map((line) => JSON.parse(line) as { time: number; delayMs: number; msg: string });
    // A misconfigured second writer: whenever the agent's own value is back, it writes its own over
    // it, until the agent found it four times (the fourth after the third repair's wait: at once,
    // then 0.5-1 s, then 1-2 s, 3 s at worst; the deadline leaves a loaded machine room).
    let rewrites = 0;
    const deadline = performance.now() + 15_000;
    while ((await findings()).length < 4) {
      if (performance.now() > deadline) throw new Error(`fewer than 4 findings within 15 s\n${await logOf(agent)}`);
      if ((await edits().read(key)) === own) {
        await edits().write(key, 'not json');
        rewrites += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const repairs = await findings();
    const summary = repairs.map((line) => `${line.delayMs} ms: ${line.msg}`).join('\n');
    // About one finding per rewrite, each after the repair before it, where an unbounded agent repairs every few ms.
    expect(repairs.length, summary).toBeLessThanOrEqual(5);
    expect(rewrites, summary).toBeLessThanOrEqual(5);
    expect(repairs[0]!.delayMs, summary).toBe(0);
    for (const [index, line] of repairs.slice(1, 4).entries()) {
      const before = repairs[index]!;
      // The backoff (jittered down to half): 0.5 s, 1 s, 2 s at least; and a finding comes only after the repair before it.
      expect(line.delayMs, summary).toBeGreaterThanOrEqual(ENTRY_REPAIR_BACKOFF.initialMs * 2 ** index / 2);
      expect(line.time - before.time, summary).toBeGreaterThanOrEqual(before.delayMs);
    }
    expect(repairs.slice(0, 4).map((line) => line.msg.includes(FIGHT)), summary).toEqual([false, false, true, true]);
    console.info(`a second writer until four findings: ${rewrites} rewrites in ${repairs.at(-1)!.time - repairs[0]!.time} ms, delays ${repairs.map((line) => line.delayMs).join(', ')} ms`);
  });
}

describe('switchboard-agent repairs its ZooKeeper node made unreadable by hand', () => {
  let zk: ZooKeeperCluster;
  let client: Client;
  beforeAll(async () => {
    zk = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    client = await connectZooKeeperClient(zk.connectString);
  });
  afterAll(async () => {
    client?.close();
    await zk?.close();
  });
  entryRepairCases(() => ({
    url: `zk://${zk.connectString}/services`,
    read: async (path) => (await getData(client, path).catch(() => undefined))?.data?.toString(),
    write: async (path, value) => void (await setData(client, path, Buffer.from(value), -1)),
  }));
});

describe('switchboard-agent repairs its etcd key made unreadable by hand', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
  });
  afterAll(async () => {
    client?.close();
    await etcd?.close();
  });
  entryRepairCases(() => ({
    url: `etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`,
    read: async (key) => (await client.get(key).string()) ?? undefined,
    write: async (key, value) => void (await client.put(key).value(value).ignoreLease().exec()),
  }));
});
