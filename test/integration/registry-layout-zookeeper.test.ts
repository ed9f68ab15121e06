import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProvider, type ProviderSnapshot, type ProviderState } from '../../src/discovery/index.ts';
import { logOf, startBackend, startGateway, startKazooWriter, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type KazooWriter, type ZooKeeperCluster } from '../harness/index.ts';

const CONVERGENCE_MS = 20_000;

/**
 * The brief's own layout (issue 16, must show 0): a Python service registers each backend with
 * kazoo as an ephemeral znode named `ip:port` with empty data directly under `/real_server`.
 */
describe('the single-service layout: kazoo writes /real_server/<ip:port>', () => {
  let zk: ZooKeeperCluster;
  let gateway: GatewayProcess;
  let first: KazooWriter;
  let second: KazooWriter;
  const backends: BackendProcess[] = [];
  const node = (backend: BackendProcess) => `/real_server/127.0.0.1:${backend.port}`;

  /** The backend names that answered `requests` requests to `path` through the gateway; failures by status. */
  async function answered(path: string, requests = 12): Promise<string[]> {
    const names = new Set<string>();
    for (let index = 0; index < requests; index += 1) {
      const response = await fetch(`${gateway.url}${path}`);
      const body = await response.text();
      names.add(response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`);
    }
    return [...names].sort();
  }

  async function converge(paths: readonly string[], expected: readonly string[], message: string): Promise<void> {
    await waitFor(
      async () => {
        for (const path of paths) if ((await answered(path)).join() !== expected.join()) return false;
        return true;
      },
      { timeoutMs: CONVERGENCE_MS, intervalMs: 100, message },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}; last answers ${JSON.stringify(await answered(paths[0]!))}\n${await logOf(gateway.process)}`);
    });
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    backends.push(...(await Promise.all(['b1', 'b2', 'b3', 'r1'].map((name) => startBackend({ name })))));
    [first, second] = await Promise.all([startKazooWriter(zk.connectString), startKazooWriter(zk.connectString)]);
    await first!.run('ensure /real_server');
    await first!.run(`ephemeral ${node(backends[0]!)}`);
    await first!.run(`ephemeral ${node(backends[1]!)}`);
    // Registrator-style: the value is ip:port, the name an id.
    await first!.run(`persistent /backends/api/api-1 127.0.0.1:${backends[3]!.port}`);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
registries: ["zk://${zk.connectString}/real_server?layout=single", "zk://${zk.connectString}/backends?layout=registrator"]
routes:
  - { path: /declared, service: real_server, stripPrefix: true }
  - { namespace: true }
`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([first?.close(), second?.close()]);
    await Promise.all(backends.map((backend) => backend.process.stop()));
    await zk?.close();
  });

  it('routes the namespace route and a declared route to both backends kazoo registered', async () => {
    await converge(['/real_server/who', '/declared/who'], ['b1', 'b2'], 'both kazoo-registered backends behind /real_server and /declared');
    const echoed = (await (await fetch(`${gateway.url}/real_server/say/hello`)).json()) as { url: string };
    expect(echoed.url).toBe('/say/hello');
  });

  it('follows a node appearing, a node deleted and a session closed', async () => {
    await second.run(`ephemeral ${node(backends[2]!)}`);
    await converge(['/real_server/who', '/declared/who'], ['b1', 'b2', 'b3'], 'the third node routed');
    await first.run(`delete ${node(backends[0]!)}`);
    await converge(['/real_server/who', '/declared/who'], ['b2', 'b3'], 'the deleted node no longer routed');
    // Closing the session removes its ephemeral node at once, as when a registering service stops.
    await second.close();
    await converge(['/real_server/who', '/declared/who'], ['b2'], 'the node of the closed session no longer routed');
  });

  it('routes a registrator-style entry whose value is ip:port', async () => {
    await converge(['/api/who'], ['r1'], 'the registrator entry behind /api');
  });

  it('reads the ZooKeeper root itself from a URL whose path is /, leaving out ZooKeeper\'s own /zookeeper node', async () => {
    const provider = createProvider(`zk://${zk.connectString}/`);
    const snapshots: ProviderSnapshot[] = [];
    let state: ProviderState | undefined;
    provider.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
    provider.status$.subscribe((status) => (state = status.state));
    provider.start();
    try {
      await waitFor(() => state === 'connected' && snapshots.some((snapshot) => snapshot.service === 'real_server'), {
        timeoutMs: CONVERGENCE_MS,
        message: 'the root provider connected with real_server listed',
      });
      const latest = snapshots.filter((snapshot) => snapshot.service === 'real_server').at(-1)!;
      expect(latest.instances.length).toBeGreaterThan(0);
      expect(latest.instances.every((instance) => backends.slice(0, 3).some((backend) => backend.port === instance.port))).toBe(true);
      expect(snapshots.map((snapshot) => snapshot.service)).not.toContain('zookeeper');
    } finally {
      await provider.close();
    }
  });
});
