import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, mkdirp } from '../../src/zookeeper/zookeeper-writes.ts';
import { adminClient } from '../harness/admin-client.ts';
import { makeTempDir } from '../harness/temp-dirs.ts';
import { connectZooKeeperClient, logOf, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

// A gateway started while its ZooKeeper registry is down serves the last instance sets it saw (its
// registry snapshot file) instead of 503 for every service, until the registry's first listing replaces them.
describe('a gateway restarted while its ZooKeeper registry is down', () => {
  let zk: ZooKeeperCluster;
  let writer: Client | undefined;
  let gateway: GatewayProcess | undefined;
  const backends: BackendProcess[] = [];
  let config: string;
  let snapshotPath: string;

  async function register(name: string): Promise<void> {
    const backend = await startBackend({ name });
    backends.push(backend);
    writer ??= await connectZooKeeperClient(zk.connectString);
    await mkdirp(writer, '/services/user');
    await create(writer, `/services/user/${name}`, Buffer.from(JSON.stringify({ host: '127.0.0.1', port: backend.port })), zookeeper.CreateMode.PERSISTENT);
  }

  /** The backend that answered one request through the gateway, or the failure. */
  async function hit(): Promise<string> {
    try {
      const response = await fetch(`${gateway!.url}/api/user/who`);
      const body = await response.text();
      return response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}`;
    } catch (error) {
      return `error: ${(error as Error).message}`;
    }
  }

  const userProvider = async () => (await adminClient(`http://127.0.0.1:${gateway!.adminPort}`).services()).find((service) => service.name === 'user')?.providers[0];

  beforeAll(async () => {
    zk = await startZooKeeper();
    snapshotPath = join(await makeTempDir('sb-registry-snapshot-'), 'registry.json');
    config = `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
registries:
  - { url: zk://${zk.connectString}/services, snapshot: ${snapshotPath} }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`;
    await register('a');
  });

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await Promise.all(backends.map((backend) => backend.process.stop()));
    await zk?.close();
  });

  it('serves the snapshot file\'s instances, says so in the admin API, and takes the registry\'s listing once it answers', async () => {
    gateway = await startGateway(config);
    await waitFor(async () => (await hit()) === 'a', { timeoutMs: 20_000, message: 'a behind the first gateway' });
    // The file is written within a second of the listing (coalesced), and on close.
    await waitFor(async () => (await readFile(snapshotPath, 'utf8').catch(() => '')).includes('"user"'), { timeoutMs: 10_000, message: 'the registry snapshot file to hold user' });
    await gateway.process.stop();

    writer?.close();
    writer = undefined;
    await zk.nodes[0]!.stop();
    gateway = await startGateway(config);
    await waitFor(async () => (await hit()) === 'a', { timeoutMs: 30_000, message: 'a behind the gateway started with ZooKeeper down' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!.process)}`);
    });
    const served = await userProvider();
    expect(served?.fromSnapshot).not.toBeNull();
    expect(Date.parse(served!.fromSnapshot!.savedAt)).toBeGreaterThan(0);
    expect(served?.state).toBe('stale');
    expect(served?.reason).toContain(snapshotPath);

    await zk.nodes[0]!.restart();
    await register('b');
    const listed = await waitFor(
      async () => {
        const provider = await userProvider();
        return provider?.fromSnapshot === null && provider.instances === 2 ? provider : undefined;
      },
      { timeoutMs: 30_000, message: 'the registry\'s listing (a and b) to replace the snapshot\'s set' },
    );
    expect(listed.state).toBe('connected');
    await waitFor(async () => (await hit()) === 'b', { timeoutMs: 10_000, message: 'b behind the gateway' });
  });
});
