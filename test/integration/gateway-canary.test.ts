import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, startAgentBackend, startEtcd, startGateway, waitFor, type AgentBackend, type EtcdCluster, type GatewayProcess } from '../harness/index.ts';

// The agent drains 4 s after deregistering, so a v2 backend still answers what the gateway sent it
// before the registry told it v2 had left: any failure during the removal is the gateway's own.
const AGENT_FLAGS = ['--health', 'http:/healthz', '--interval', '200ms', '--rise', '1', '--fall', '2', '--drain', '4s', '--ttl', '4s'];
const REQUESTS = 10_000;
const CONCURRENCY = 8;

interface Answer {
  readonly status: number;
  /** The backend's name for a 200, else the gateway's error class. */
  readonly by: string;
}

describe('canary and subsets by registry metadata: etcd, agents with --metadata, and the gateway', () => {
  let etcd: EtcdCluster;
  let gateway: GatewayProcess;
  let pool: Pool;
  const agents = new Map<string, AgentBackend>();
  const versionOf = (name: string) => (name.startsWith('v1') ? 'v1' : name.startsWith('v2') ? 'v2' : name);

  async function member(id: string, version: string): Promise<void> {
    const registry = `etcd://${etcd.endpoints[0]!.replace('http://', '')}/services`;
    agents.set(id, await startAgentBackend({ registry, service: 'shop', id, weight: 1, flags: [...AGENT_FLAGS, '--metadata', `version=${version}`, '--metadata', 'zone=a'] }));
  }

  async function send(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    try {
      const { statusCode, body } = await pool.request({ method: 'GET', path, headers });
      const json = (await body.json()) as { name?: string; error?: string };
      return { status: statusCode, by: statusCode === 200 ? json.name! : (json.error ?? 'unknown') };
    } catch (error) {
      return { status: 0, by: `client error: ${(error as Error).message}` };
    }
  }

  /** `total` requests to `path`, `CONCURRENCY` at a time over keep-alive connections; answers tallied by version (or failure). */
  async function tally(path: string, total: number, headers: Record<string, string> = {}): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    let sent = 0;
    const worker = async () => {
      while (sent < total) {
        sent += 1;
        const answer = await send(path, headers);
        const key = answer.status === 200 ? versionOf(answer.by) : `${answer.status} ${answer.by}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return counts;
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    await Promise.all([member('v1-a', 'v1'), member('v1-b', 'v1'), member('v2-a', 'v2'), member('v2-b', 'v2')]);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: false
registries: [etcd://${etcd.endpoints[0]!.replace('http://', '')}/services]
services:
  shop: { balancer: round-robin }
routes:
  - name: canary
    path: /canary
    service: shop
    canary:
      by: version
      split: { v1: 90, v2: 10 }
      lanes: [{ header: x-canary, value: "on", to: v2 }]
  - { name: zone-b, path: /zone-b, service: shop, subset: { match: { zone: b } } }
  - { name: zone-b-v1, path: /zone-b-v1, service: shop, subset: { match: { zone: b }, fallback: { version: v1 } } }
  - { name: zone-b-none, path: /zone-b-none, service: shop, subset: { match: { zone: b }, fallback: none } }
  - { name: all, path: /, service: shop }
`);
    pool = new Pool(gateway.url, { connections: CONCURRENCY, pipelining: 1 });
    const everyone = new Set<string>();
    await waitFor(
      async () => {
        everyone.add((await send('/who')).by);
        return ['v1-a', 'v1-b', 'v2-a', 'v2-b'].every((name) => everyone.has(name));
      },
      { timeoutMs: 30_000, intervalMs: 20, message: 'all four backends behind the gateway' },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message} (seen ${[...everyone].join(', ')})\n${await logOf(gateway.process)}`);
    });
  }, 60_000);

  afterAll(async () => {
    await pool?.close();
    await gateway?.process.stop();
    await Promise.all([...agents.values()].map((started) => started.agent.stop()));
    await etcd?.close();
  });

  it('splits 10,000 requests 90/10 between versions v1 and v2 within one percentage point', async () => {
    const startedAt = performance.now();
    const counts = await tally('/canary/who', REQUESTS);
    const seconds = (performance.now() - startedAt) / 1000;
    console.log(`canary split of ${REQUESTS} requests in ${seconds.toFixed(1)} s: ${JSON.stringify(counts)}`);
    expect(counts.v1! + counts.v2!, JSON.stringify(counts)).toBe(REQUESTS);
    // The smooth split is exact over every cycle of 100 picks: whatever the cycle's phase, at most a handful off.
    expect(Math.abs(counts.v2! - REQUESTS / 10), JSON.stringify(counts)).toBeLessThanOrEqual(REQUESTS / 100);
  }, 90_000);

  it('sends every request on the header lane to v2 while unmarked ones keep the split', async () => {
    const [marked, unmarked, otherValue] = await Promise.all([tally('/canary/who', 300, { 'x-canary': 'on' }), tally('/canary/who', 1_000), tally('/canary/who', 100, { 'x-canary': 'off' })]);
    expect(marked).toEqual({ v2: 300 });
    const plain = { v1: unmarked.v1! + otherValue.v1!, v2: unmarked.v2! + otherValue.v2! };
    expect(plain.v1 + plain.v2, JSON.stringify({ unmarked, otherValue })).toBe(1_100);
    expect(Math.abs(plain.v2 - 110), JSON.stringify({ unmarked, otherValue })).toBeLessThanOrEqual(11);
  }, 60_000);

  it('gives an empty selection its fallback: the whole service, another subset, or 503 no-instances', async () => {
    expect(Object.keys(await tally('/zone-b/who', 40)).sort()).toEqual(['v1', 'v2']);
    expect(await tally('/zone-b-v1/who', 20)).toEqual({ v1: 20 });
    expect(await tally('/zone-b-none/who', 10)).toEqual({ '503 no-instances': 10 });
  }, 30_000);

  it('falls back to v1 with no failed request while every v2 instance leaves the registry, and after', async () => {
    const during: Record<string, number> = {};
    let running = true;
    const load = (async () => {
      while (running) {
        for (const [key, count] of Object.entries(await tally('/canary/who', 200))) during[key] = (during[key] ?? 0) + count;
      }
    })();
    // Traffic flows to both versions before the removal starts.
    await waitFor(() => (during.v2 ?? 0) > 20, { timeoutMs: 20_000, message: 'v2 answering under load' });
    const stopping = Promise.all([agents.get('v2-a')!.agent.stop(15_000), agents.get('v2-b')!.agent.stop(15_000)]);
    // Once the gateway has seen v2 leave, marked requests too find only v1.
    await waitFor(async () => (await send('/canary/who', { 'x-canary': 'on' })).by.startsWith('v1'), { timeoutMs: 15_000, intervalMs: 20, message: 'the gateway to drop v2' });
    const afterRemoval = await tally('/canary/who', 500);
    running = false;
    await load;
    await stopping;
    // The v2 backends have exited: nothing can still answer for v2.
    const afterExit = await tally('/canary/who', 500);
    const failures = Object.keys(during).filter((key) => key !== 'v1' && key !== 'v2');
    expect(failures, `${JSON.stringify(during)}\n${await logOf(gateway.process)}`).toEqual([]);
    expect(afterRemoval).toEqual({ v1: 500 });
    expect(afterExit).toEqual({ v1: 500 });
    expect(await tally('/canary/who', 50, { 'x-canary': 'on' })).toEqual({ v1: 50 });
  }, 60_000);
});
