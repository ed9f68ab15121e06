import { Etcd3 } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { exists } from '../../src/zookeeper/index.ts';
import { connectZooKeeperClient, freePort, logOf, startEtcd, startZooKeeper, waitFor, type ManagedProcess } from '../harness/index.ts';
import { agentWithBackend } from '../harness/agent-with-backend.ts';
import { cleanupsAfterEach } from '../harness/cleanups.ts';
import { stillRunning } from '../harness/process-tree.ts';

const PROBES = ['--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '2'];
/** A --drain far past the exit deadline below: an agent that waits it misses the deadline and is killed. */
const LONG_DRAIN = '30s';
const EXIT_DEADLINE_MS = 10_000;

describe('switchboard-agent SIGTERM and the registry it never reached', () => {
  const cleanup = cleanupsAfterEach();

  it.each([
    ['zk', (port: number) => `zk://127.0.0.1:${port}/services`],
    ['etcd', (port: number) => `etcd://127.0.0.1:${port}/services`],
  ])('exits at once, without waiting --drain, when no %s registry ever answered (nothing was written)', async (kind, registryAt) => {
    // A port nothing listens on: every connect is refused, so no write of the entry is ever sent.
    const { agent, backend } = await agentWithBackend(registryAt(await freePort()), `${kind}-unreached`, ['--ttl', '4s', '--drain', LONG_DRAIN, ...PROBES], cleanup);
    // The backend passed its probe: the agent wants its entry and keeps trying the registry.
    await waitFor(async () => (await logOf(agent)).includes('registration registering'), { timeoutMs: 15_000, message: 'the agent to try to register its healthy backend' });
    expect(backend()).toHaveLength(1);

    // The old agent waited half of --ttl for a mark, then --drain (30 s) and the deletion's bound.
    const exit = await agent.stop(EXIT_DEADLINE_MS);
    const log = await logOf(agent);
    expect(exit, log).toMatchObject({ signal: null, code: 0 });
    expect(log).toContain('the registry was never reached, so nothing was written');
    expect(log).not.toContain('draining mark');
    expect(log).not.toContain('deregistration failed');
    expect(stillRunning(backend())).toEqual([]);
  });

  it('still drains when ZooKeeper took the entry and then went away', async () => {
    const zk = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    cleanup.push(() => zk.close());
    const reader = await connectZooKeeperClient(zk.connectString);
    const { agent } = await agentWithBackend(`zk://${zk.connectString}/services`, 'zk-gone', ['--ttl', '2s', '--drain', '1s', ...PROBES], cleanup);
    try {
      await waitFor(() => exists(reader, '/services/user/zk-gone'), { timeoutMs: 15_000, message: 'the node to appear' });
    } finally {
      reader.close();
    }
    await zk.nodes[0]!.kill();
    await expectDrainedWithoutRegistry(agent);
  });

  it('still drains when etcd took the entry and then went away', async () => {
    const etcd = await startEtcd();
    cleanup.push(() => etcd.close());
    const reader = new Etcd3({ hosts: etcd.endpoints });
    const { agent } = await agentWithBackend(`etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`, 'etcd-gone', ['--ttl', '2s', '--drain', '1s', ...PROBES], cleanup);
    try {
      await waitFor(() => reader.get('/services/user/etcd-gone').string(), { timeoutMs: 15_000, message: 'the key to appear' });
    } finally {
      reader.close();
    }
    await etcd.members[0]!.kill();
    await expectDrainedWithoutRegistry(agent);
  });
});

/** SIGTERM to an agent whose registry held its entry and is gone: it waits --drain for the requests gateways may still send, then exits. */
async function expectDrainedWithoutRegistry(agent: ManagedProcess): Promise<void> {
  const exit = await agent.stop(EXIT_DEADLINE_MS);
  const log = await logOf(agent);
  expect(exit, log).toMatchObject({ signal: null, code: 0 });
  expect(log).toContain('the registry did not confirm the draining mark; waiting --drain for requests in flight anyway');
  expect(log).toContain('drained; deregistering');
  expect(log).not.toContain('no entry registered');
}
