import { readFile } from 'node:fs/promises';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getData } from '../../src/zookeeper/index.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import {
  backendCommand,
  connectZooKeeperClient,
  freePort,
  logOf,
  startAgent,
  startAgentBackend,
  startGateway,
  startZooKeeper,
  waitFor,
  type GatewayProcess,
  type ManagedProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

const PROBES = ['--health', 'tcp', '--interval', '200ms', '--rise', '1', '--fall', '2', '--ttl', '4s'];
const SLOW_MS = 500;
const DRAIN = '3s';
const CONCURRENCY = 8;
/**
 * How long after the mark's mtime a request may still start at the backend: the ZooKeeper watch
 * fires within milliseconds, the provider re-reads the node, the aggregator's throttle (100 ms,
 * leading edge) passes it on, the balancer swaps its picker synchronously; a request picked just
 * before that still has to cross a loopback connection. That takes well under 300 ms on a quiet
 * machine; 1 s leaves room for a loaded 2-core one with another file's JVMs and gateways beside this
 * one. The drain itself lasts 3 s, so a gateway that kept picking until the entry went would still
 * start requests at the backend 2 s past this bound.
 */
const PROPAGATION_ALLOWANCE_MS = 1_000;

/** Request start times the slow backend printed (`request <epoch ms> …`) into its agent's log. */
async function requestStarts(agent: ManagedProcess): Promise<number[]> {
  const text = await readFile(agent.logFile, 'utf8');
  return [...text.matchAll(/^request (\d+) /gm)].map((match) => Number(match[1]));
}

describe('drain handshake: SIGTERM of an agent under load, real ZooKeeper, agents, backends and gateway', () => {
  let zk: ZooKeeperCluster;
  let reader: Client;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let fast: ManagedProcess;
  let slow: ManagedProcess;

  beforeAll(async () => {
    zk = await startZooKeeper();
    reader = await connectZooKeeperClient(zk.connectString);
    const registry = `zk://${zk.connectString}/services`;
    fast = (await startAgentBackend({ registry, service: 'user', id: 'fast', weight: 1, flags: [...PROBES, '--drain', '0s'] })).agent;
    const slowPort = await freePort();
    slow = await startAgent([
      '--registry', registry, '--service', 'user', '--port', String(slowPort), '--id', 'slow', ...PROBES, '--drain', DRAIN,
      '--', ...backendCommand(slowPort, 'slow'), '--delay-ms', String(SLOW_MS), '--log-requests',
    ]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
registries: [${registry}]
services:
  user: { balancer: weighted-round-robin }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'user')?.instances.filter((instance) => instance.routable).length === 2, {
      timeoutMs: 20_000,
      message: 'both instances routable behind the gateway',
    }).catch(async (error: Error) => {
      // What the gateway saw, and all three programs' logs: a failure here once showed neither the gateway's view nor the fast agent's.
      const seen = JSON.stringify((await admin.services().catch(() => [])).find((service) => service.name === 'user') ?? null);
      throw new Error(`${error.message}\nthe gateway's view: ${seen}\n${await logOf(gateway.process)}\n${await logOf(slow)}\n${await logOf(fast)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([fast?.stop(), slow?.stop()]);
    reader?.close();
    await zk?.close();
  });

  it('fails no request, and the backend gets no new request after the draining mark', async () => {
    const failures: string[] = [];
    const answered: Array<{ at: number; name: string }> = [];
    let running = true;
    const loop = async () => {
      while (running) {
        try {
          const response = await fetch(`${gateway.url}/api/user/who`);
          const body = await response.text();
          if (response.status === 200) answered.push({ at: Date.now(), name: (JSON.parse(body) as { name: string }).name });
          else failures.push(`status ${response.status}: ${body}`);
        } catch (error) {
          failures.push(`error: ${(error as Error).message}`);
        }
      }
    };
    const loops = Promise.all(Array.from({ length: CONCURRENCY }, loop));
    try {
      await waitFor(async () => (await requestStarts(slow)).length >= 10, { timeoutMs: 15_000, message: 'the slow backend serving under load' });

      const exited = slow.stop(30_000);
      // The mark is a data update of the same znode: read its mtime (ZooKeeper's clock, this host's) before the agent deletes it.
      const markedAt = await waitFor(async () => {
        const { data, stat } = await getData(reader, '/services/user/slow');
        return (JSON.parse(String(data)) as { draining?: boolean }).draining === true ? Number(stat.mtime.readBigInt64BE(0)) : undefined;
      }, { timeoutMs: 10_000, intervalMs: 10, message: 'the draining mark on /services/user/slow' });
      // Up to the drain (3 s): then the agent deletes the entry, and no view can show it draining.
      const view = await waitFor(async () => {
        const instance = await admin.instance('user', 'slow');
        return instance?.draining ? instance : undefined;
      }, { timeoutMs: 3_000, intervalMs: 20, message: 'the admin API to show slow draining' });

      const exit = await exited;
      expect(exit?.code).toBe(0);
      // The gateway keeps serving from the other instance after the entry is gone.
      const exitedAt = Date.now();
      await waitFor(() => answered.filter((answer) => answer.at > exitedAt).length >= 50, { timeoutMs: 10_000, message: 'requests answered after the agent exited' });
      running = false;
      await loops;

      const starts = await requestStarts(slow);
      const late = starts.filter((at) => at > markedAt + PROPAGATION_ALLOWANCE_MS);
      console.log(
        `slow backend: ${starts.length} requests, last began ${Math.max(...starts) - markedAt} ms after the mark; ` +
          `${answered.filter((answer) => answer.at > markedAt).length} requests answered after the mark, ${failures.length} failed`,
      );
      expect(failures).toEqual([]);
      expect(late).toEqual([]);
      // Known and healthy while it drains: leaving on purpose is neither a failure nor an ejection.
      expect(view).toMatchObject({ draining: true, effectiveWeight: 0, health: { state: 'healthy' } });
      expect(starts.filter((at) => at <= markedAt).length).toBeGreaterThanOrEqual(10);
      expect(answered.filter((answer) => answer.at > markedAt + 1_000 && answer.name === 'fast').length).toBeGreaterThan(50);
      // The agent deleted the entry only after --drain.
      const log = await logOf(slow);
      expect(log).toMatch(/marked draining/);
      expect(log).toMatch(/closing \d+/);
    } finally {
      running = false;
      await loops;
    }
  });
});
