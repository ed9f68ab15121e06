import type { Client } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, mkdirp } from '../../src/zookeeper/zookeeper-writes.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { connectZooKeeperClient, logOf, startBackend, startGateway, startZooKeeper, waitFor, type BackendProcess, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';

const WINDOW_MS = 4_000;
/** Requests in flight at once: enough for a few hundred picks a second on a shared 2-core machine. */
const CONCURRENCY = 6;

describe('slow start through a real gateway: a new instance ramps its share over the window', () => {
  let zk: ZooKeeperCluster;
  let writer: Client;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  const backends: BackendProcess[] = [];

  /** Starts a backend named `id` and registers it as an ephemeral znode with the native payload. */
  async function instance(id: string): Promise<void> {
    const backend = await startBackend({ name: id });
    backends.push(backend);
    const payload = { id, service: 'user', host: '127.0.0.1', port: backend.port, weight: 1 };
    await create(writer, `/services/user/${id}`, Buffer.from(JSON.stringify(payload)), zookeeper.CreateMode.EPHEMERAL);
  }

  /** Sends requests with `CONCURRENCY` loops until `untilMs` (epoch), and returns when each started and who answered. */
  async function load(untilMs: number): Promise<Array<{ at: number; name: string }>> {
    const answers: Array<{ at: number; name: string }> = [];
    const loop = async () => {
      while (Date.now() < untilMs) {
        const at = Date.now();
        const response = await fetch(`${gateway.url}/api/user/who`);
        const body = await response.text();
        answers.push({ at, name: response.status === 200 ? (JSON.parse(body) as { name: string }).name : `status ${response.status}` });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, loop));
    return answers;
  }

  beforeAll(async () => {
    zk = await startZooKeeper();
    writer = await connectZooKeeperClient(zk.connectString);
    await mkdirp(writer, '/services/user');
    await Promise.all([instance('a'), instance('b')]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
registries: [zk://${zk.connectString}/services]
services:
  user: { balancer: weighted-round-robin, slowStart: { window: ${WINDOW_MS}ms } }
routes:
  - { path: /api/user, service: user, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'user')?.instances.length === 2, {
      timeoutMs: 20_000,
      message: 'both instances behind the gateway',
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await Promise.all(backends.map((backend) => backend.process.stop()));
    await zk?.close();
  });

  it('sends the new instance a small share in its first second, a rising one after, and an equal share after the window', async () => {
    // Instances listed when the gateway started are warm: no ramp, full weight.
    expect(await admin.instance('user', 'a')).toMatchObject({ effectiveWeight: 1, slowStartUntil: null });
    await instance('c');
    const joined = await waitFor(async () => {
      const view = await admin.instance('user', 'c');
      return view?.slowStartUntil ? view : undefined;
    }, { timeoutMs: 10_000, intervalMs: 20, message: 'c in slow start in the admin API' });
    expect(joined.effectiveWeight).toBeLessThan(0.5);
    // The ramp began at the gateway when c was first listed: slowStartUntil minus the window.
    const rampStart = Date.parse(joined.slowStartUntil!) - WINDOW_MS;

    const answers = await load(rampStart + WINDOW_MS + 2_000);
    expect(answers.filter((answer) => answer.name.startsWith('status'))).toEqual([]);

    const seconds = new Map<number, { total: number; c: number }>();
    for (const answer of answers) {
      const second = Math.floor((answer.at - rampStart) / 1_000);
      const bucket = seconds.get(second) ?? { total: 0, c: 0 };
      bucket.total += 1;
      if (answer.name === 'c') bucket.c += 1;
      seconds.set(second, bucket);
    }
    const share = (second: number) => {
      const bucket = seconds.get(second);
      return bucket && bucket.total > 0 ? bucket.c / bucket.total : NaN;
    };
    const table = [...seconds.keys()].sort((x, y) => x - y).map((second) => `  second ${second}: ${seconds.get(second)!.total} requests, c ${(share(second) * 100).toFixed(1)} %`);
    console.log(`share of the new instance c per second since its ramp began (window ${WINDOW_MS} ms, minWeightPercent 10, aggression 1):\n${table.join('\n')}`);

    // Linear ramp from 10 %: c's weight averages about 0.13 in second 0 (share ≈ 6 %), 0.88 in second 3 (≈ 30 %), then 1 (33 %).
    expect(seconds.get(0)?.total ?? 0).toBeGreaterThan(20);
    expect(share(0)).toBeLessThan(0.15);
    expect(share(3)).toBeGreaterThan(0.22);
    expect(share(3)).toBeGreaterThan(share(0) + 0.1);
    expect(share(1)).toBeLessThan(share(3));
    const after = answers.filter((answer) => answer.at >= rampStart + WINDOW_MS + 300);
    const afterShare = after.filter((answer) => answer.name === 'c').length / after.length;
    expect(after.length).toBeGreaterThan(50);
    expect(afterShare).toBeGreaterThan(0.28);
    expect(afterShare).toBeLessThan(0.39);
    expect(await admin.instance('user', 'c')).toMatchObject({ effectiveWeight: 1, slowStartUntil: null });
  });
});
