// A short end-to-end run of the shipped programs, which CI also runs on Node 24 (vitest itself run by
// that Node, so its workers and every process the harness starts with process.execPath use it too):
// ZooKeeper, a backend beside its switchboard-agent, and the gateway routing to it by discovery.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, startAgentBackend, startGateway, startZooKeeper, waitFor, type AgentBackend, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

describe(`smoke on Node ${process.version}: ZooKeeper, an agent with its backend, the gateway`, () => {
  let zk: ZooKeeperCluster;
  let member: AgentBackend;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    // CI sets SWITCHBOARD_EXPECT_NODE when it runs this on another Node: fail loudly if vitest did not use it.
    const expected = process.env.SWITCHBOARD_EXPECT_NODE;
    if (expected) expect(process.version.startsWith(`v${expected}.`), `running on ${process.version}`).toBe(true);
    zk = await startZooKeeper();
    member = await startAgentBackend({
      registry: `zk://${zk.connectString}/services`, service: 'user', id: 'smoke-1', weight: 1,
      flags: ['--health', 'http:/healthz', '--interval', '200ms', '--rise', '1', '--fall', '5', '--drain', '0s', '--ttl', '4s'],
    });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
registries: [zk://${zk.connectString}/services]
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await member?.agent.stop();
    await zk?.close();
  });

  it('routes to the backend its agent registered, and stops when the agent deregisters it', async () => {
    const answer = async () => {
      const response = await fetch(`${gateway.url}/api/user/who`);
      const body = await response.text();
      return response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`;
    };
    await waitFor(async () => (await answer()) === 'smoke-1', { timeoutMs: 30_000, message: 'the gateway to route to smoke-1' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}\n${await logOf(member.agent)}`);
    });
    await member.agent.stop();
    await waitFor(async () => (await answer()).startsWith('status 5'), { timeoutMs: 30_000, message: 'the gateway to stop routing to the deregistered backend' });
  });
});
