import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { connectZooKeeperClient, logOf, startEtcdCluster, startGateway, startTcpProxy, startZooKeeperEnsemble, waitFor, type EtcdCluster, type GatewayProcess, type ZooKeeperCluster } from '../harness/index.ts';
import { parsePrometheusText, sampleValue } from '../harness/prometheus-text.ts';
import type { Client as ZooKeeperClient } from 'node-zookeeper-client';

// Short enough that a killed gateway leaves the list within the test, long enough that a loaded
// 2-core machine does not miss a keepalive (etcd renews at a third of the TTL; ZooKeeper pings at a third).
const TTL_MS = 3_000;
// A long TTL for the SIGTERM case: leaving within a few seconds proves the entry was removed, not expired.
const LONG_TTL_MS = 30_000;
// Short, so that a test sees (or sees the absence of) lag within seconds.
const LAG_AFTER_MS = 1_000;

interface PeersAnswer {
  self: string;
  count: number;
  peers: { id: string; admin: string | null; pid: number; self: boolean; lagging: boolean; behindSince: string | null; revision: string | null }[];
}

interface StartedGateway {
  readonly id: string;
  readonly admin: number;
  readonly gateway: GatewayProcess;
}

const running: StartedGateway[] = [];

// SIGTERM (SIGKILL after 5 s): a stopped gateway removes its entry, so the next test starts with an empty list.
afterEach(async () => {
  await Promise.all(running.splice(0).map(({ gateway }) => gateway.process.stop()));
});

async function startPeer(id: string, store: string, ttlMs: number, options: { extra?: string; lagAfterMs?: number } = {}): Promise<StartedGateway> {
  const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
configStore: ${store}
peers: { id: ${id}, ttl: ${ttlMs}${options.lagAfterMs === undefined ? '' : `, lagAfter: ${options.lagAfterMs}`} }
routes: []
${options.extra ?? ''}
`);
  const started = { id, admin: gateway.adminPort, gateway };
  running.push(started);
  return started;
}

async function peersOf(peer: StartedGateway): Promise<PeersAnswer> {
  const response = await fetch(`http://127.0.0.1:${peer.admin}/api/peers`, { signal: AbortSignal.timeout(2_000) });
  if (response.status !== 200) throw new Error(`GET /api/peers answered ${response.status}`);
  return (await response.json()) as PeersAnswer;
}

/** The list as `id:pid`, so that an entry left by an earlier process under the same id does not pass for this one's. */
const listed = (answer: PeersAnswer) => answer.peers.map((peer) => `${peer.id}:${peer.pid}`).join();
const expected = (...peers: StartedGateway[]) => peers.map((peer) => `${peer.id}:${peer.gateway.process.pid}`).join();
let run = 0;

/** The same behaviour on both stores: each gateway lists both, a killed one leaves within its TTL, a stopped one at once. */
function peerScenarios(store: () => string, readRaw: (key: string) => Promise<string | undefined>): void {
  it('lists both gateways on each of them, with their admin address, and counts them in switchboard_config_peers', async () => {
    run += 1;
    const [a, b] = await Promise.all([startPeer(`gw-a${run}`, store(), TTL_MS), startPeer(`gw-b${run}`, store(), TTL_MS)]);
    for (const peer of [a, b]) {
      const answer = await waitFor(async () => {
        const seen = await peersOf(peer);
        return listed(seen) === expected(a, b) ? seen : undefined;
      }, { timeoutMs: 15_000, message: `${peer.id} to list both peers` });
      expect(answer.self).toBe(peer.id);
      expect(answer.count).toBe(2);
      expect(answer.peers.find((entry) => entry.self)?.id).toBe(peer.id);
      expect(answer.peers.map((entry) => entry.admin)).toEqual([`127.0.0.1:${a.admin}`, `127.0.0.1:${b.admin}`]);
      expect(answer.peers.map((entry) => entry.pid)).toEqual([a.gateway.process.pid, b.gateway.process.pid]);
    }
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${a.admin}/metrics`)).text());
    expect(sampleValue(metrics, 'switchboard_config_peers')).toBe(2);
    // The entry is in the store itself, where the layout says, as JSON.
    expect(JSON.parse((await readRaw(`/sb/peers/${b.id}`)) ?? 'null')).toMatchObject({ id: b.id, pid: b.gateway.process.pid, admin: `127.0.0.1:${b.admin}` });
  });

  it('drops a gateway killed with SIGKILL once its lease or session runs out', async () => {
    run += 1;
    const [a, b] = await Promise.all([startPeer(`gw-a${run}`, store(), TTL_MS), startPeer(`gw-b${run}`, store(), TTL_MS)]);
    await waitFor(async () => listed(await peersOf(a)) === expected(a, b), { timeoutMs: 15_000, message: 'gw-a to list both peers' });
    const killedAt = Date.now();
    await b.gateway.process.kill();
    // Nobody removed it: the store drops it when its TTL ends (plus ZooKeeper's tick granularity and the watch).
    await waitFor(async () => listed(await peersOf(a)) === expected(a), { timeoutMs: TTL_MS + 15_000, message: `gw-a to drop the killed gw-b\n${await logOf(a.gateway.process)}` });
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(TTL_MS / 2);
    expect(await readRaw(`/sb/peers/${b.id}`)).toBeUndefined();
    expect((await peersOf(a)).count).toBe(1);
  });

  it('removes its own entry on SIGTERM, long before its TTL would', async () => {
    run += 1;
    const [a, b] = await Promise.all([startPeer(`gw-a${run}`, store(), LONG_TTL_MS), startPeer(`gw-b${run}`, store(), LONG_TTL_MS)]);
    await waitFor(async () => listed(await peersOf(a)) === expected(a, b), { timeoutMs: 15_000, message: 'gw-a to list both peers' });
    const stoppedAt = Date.now();
    process.kill(b.gateway.process.pid!, 'SIGTERM');
    await waitFor(async () => listed(await peersOf(a)) === expected(a), { timeoutMs: 10_000, message: 'gw-a to see gw-b leave' });
    expect(Date.now() - stoppedAt).toBeLessThan(LONG_TTL_MS / 2);
    expect((await b.gateway.process.waitForExit(15_000)).code).toBe(0);
  });
}

describe('gateways as peers on a 3-member etcd cluster', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcdCluster(3);
    client = new Etcd3({ hosts: etcd.endpoints });
  });
  afterAll(async () => {
    client?.close();
    await etcd?.close();
  });

  const storeAt = (root: string) => `etcd://${etcd.endpoints.map((url) => url.replace('http://', '')).join(',')}${root}`;
  const store = () => storeAt('/sb');
  peerScenarios(store, async (key) => (await client.get(key).string()) ?? undefined);

  it('shows no lag between gateways that applied the same store content, one listed after the other', async () => {
    // A root of its own without objects: nothing below changes the content, only peer entries are written.
    const root = '/same-content';
    const a = await startPeer('gw-first', storeAt(root), TTL_MS, { lagAfterMs: LAG_AFTER_MS });
    await waitFor(async () => (await peersOf(a)).peers.find((peer) => peer.self)?.revision ?? undefined, { timeoutMs: 15_000, message: 'gw-first to publish its applied revision' });
    const b = await startPeer('gw-second', storeAt(root), TTL_MS, { lagAfterMs: LAG_AFTER_MS });
    // gw-second listed after gw-first's entry was written, so it reports a higher etcd revision for
    // the same content: the case that used to show gw-first lagging after lagAfter.
    const revisions = await waitFor(async () => {
      const answer = await peersOf(a);
      const [first, second] = answer.peers.map((peer) => peer.revision);
      return listed(answer) === expected(a, b) && first && second ? { first, second } : undefined;
    }, { timeoutMs: 15_000, message: 'gw-first to list both peers with their applied revisions' });
    expect(BigInt(revisions.second)).toBeGreaterThan(BigInt(revisions.first));
    // A negative check, so a fixed observation window: three times lagAfter, polling both gateways.
    const until = Date.now() + 3 * LAG_AFTER_MS;
    while (Date.now() < until) {
      for (const peer of [a, b]) {
        const answer = await peersOf(peer);
        expect(answer.peers.map((entry) => [entry.id, entry.lagging, entry.behindSince])).toEqual([[a.id, false, null], [b.id, false, null]]);
      }
      await delay(100);
    }
  });

  it('still shows a gateway cut off from the store as lagging once the content changes', async () => {
    const root = '/cut-off';
    const member = new URL(etcd.endpoints[0]!);
    const proxy = await startTcpProxy({ host: member.hostname, port: Number(member.port) });
    try {
      // Started together (neither needs the other); afterEach stops each that started.
      const [a, b] = await Promise.all([
        startPeer('gw-connected', storeAt(root), TTL_MS, { lagAfterMs: LAG_AFTER_MS }),
        // A long TTL: the cut-off gateway's entry outlives the test instead of expiring with its lease.
        startPeer('gw-cut-off', `etcd://${proxy.address}${root}`, LONG_TTL_MS, { lagAfterMs: LAG_AFTER_MS }),
      ]);
      await waitFor(async () => {
        const answer = await peersOf(a);
        return listed(answer) === expected(a, b) && answer.peers.every((peer) => peer.revision !== null && !peer.lagging);
      }, { timeoutMs: 15_000, message: 'gw-connected to list both peers in step' });
      proxy.cut();
      await client.put(`${root}/services/orders`).value(JSON.stringify({ instances: ['127.0.0.1:1'] }));
      const answer = await waitFor(async () => {
        const seen = await peersOf(a);
        return seen.peers.find((peer) => peer.id === b.id)?.lagging ? seen : undefined;
      }, { timeoutMs: LAG_AFTER_MS + 15_000, message: 'gw-connected to show gw-cut-off lagging' });
      expect(answer.peers.find((peer) => peer.id === a.id)).toMatchObject({ lagging: false, behindSince: null });
    } finally {
      await proxy.close();
    }
  });

  it('registers a gateway with workers once, as its primary', async () => {
    const primary = await startPeer('gw-workers', store(), TTL_MS, { extra: 'workers: 2' });
    const answer = await waitFor(async () => {
      const seen = await peersOf(primary);
      return seen.count > 0 ? seen : undefined;
    }, { timeoutMs: 15_000, message: 'the gateway with workers to list itself' });
    expect(listed(answer)).toBe(expected(primary));
    // Still one entry once the workers run (they would each add one if they registered).
    expect(listed(await peersOf(primary))).toBe(expected(primary));
  });
});

describe('gateways as peers on a 3-node ZooKeeper ensemble', () => {
  let zk: ZooKeeperCluster;
  let client: ZooKeeperClient;
  beforeAll(async () => {
    // Sessions of 3 s need a server minimum below it (ticks of 500 ms allow 1 s).
    zk = await startZooKeeperEnsemble(3, { tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    client = await connectZooKeeperClient(zk.connectString);
  });
  afterAll(async () => {
    client?.close();
    await zk?.close();
  });

  peerScenarios(
    () => `zk://${zk.connectString}/sb`,
    (key) =>
      new Promise((resolve, reject) =>
        client.getData(key, (error, data) => {
          if (!error) return resolve(data?.toString());
          if ((error as { name?: string }).name === 'NO_NODE') return resolve(undefined);
          reject(error);
        }),
      ),
  );
});
