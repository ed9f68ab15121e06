import { Etcd3 } from 'etcd3';
import type { Counter } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdClient } from '../../src/discovery/etcd/etcd-client.ts';
import { openPrefixWatch, type WatchEndReason } from '../../src/discovery/etcd/etcd-watch.ts';
import { createEtcdProvider, type EtcdProviderOptions } from '../../src/discovery/etcd/index.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from '../../src/discovery/provider.ts';
import { invalidInstancesTotal, providerResyncsTotal } from '../../src/metrics.ts';
import { startEtcd, startEtcdCluster, startStreamSilencingRelay, startTcpProxy, waitFor, type EtcdCluster, type TcpProxy } from '../harness/index.ts';

const STALL_TIMEOUT_MS = 1_500;
const CONVERGENCE_MS = 5_000;
const OUTAGE_MS = 3_000;
const TEST_OPTIONS = { stallTimeoutMs: STALL_TIMEOUT_MS, requestTimeoutMs: 1_000, backoff: { initialMs: 50, maxMs: 500 } };

/** Everything a provider emitted, in order, so that assertions can look at the whole history. */
interface Recording {
  readonly provider: DiscoveryProvider;
  readonly snapshots: ProviderSnapshot[];
  readonly statuses: ProviderStatus[];
  emitted(service: string): ProviderSnapshot[];
  latest(service: string): ProviderSnapshot | undefined;
  /** `id=host:port` of the latest snapshot of `service`, sorted; undefined before its first snapshot. */
  members(service: string): string[] | undefined;
  status(): ProviderStatus | undefined;
}

let etcd: EtcdCluster;
let writer: Etcd3;
let prefixCount = 0;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  writer = new Etcd3({ hosts: etcd.endpoints });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

afterAll(async () => {
  writer?.close();
  await etcd?.close();
});

/** A prefix no other test uses, so that every test starts from an empty registry. */
function freshPrefix(): string {
  prefixCount += 1;
  return `/sb-test-${process.pid}-${prefixCount}`;
}

function record(options: EtcdProviderOptions): Recording {
  const provider = createEtcdProvider({ ...TEST_OPTIONS, ...options });
  cleanups.push(() => provider.close());
  const snapshots: ProviderSnapshot[] = [];
  const statuses: ProviderStatus[] = [];
  provider.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
  provider.status$.subscribe((status) => statuses.push(status));
  provider.start();
  const emitted = (service: string): ProviderSnapshot[] => snapshots.filter((snapshot) => snapshot.service === service);
  const latest = (service: string): ProviderSnapshot | undefined => emitted(service).at(-1);
  return {
    provider,
    snapshots,
    statuses,
    emitted,
    latest,
    members: (service) => latest(service)?.instances.map((instance) => `${instance.id}=${instance.host}:${instance.port}`),
    status: () => statuses.at(-1),
  };
}

async function proxyTo(clientUrl: string): Promise<TcpProxy> {
  const url = new URL(clientUrl);
  const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function connected(recording: Recording): Promise<void> {
  await waitFor(() => recording.status()?.state === 'connected', { timeoutMs: CONVERGENCE_MS, message: `${recording.provider.name} connected` });
}

async function membersBecome(recording: Recording, service: string, expected: string[], timeoutMs = CONVERGENCE_MS): Promise<void> {
  const wanted = JSON.stringify(expected);
  await waitFor(() => JSON.stringify(recording.members(service)) === wanted, {
    timeoutMs,
    message: `${service} = ${wanted} (last: ${JSON.stringify(recording.members(service))})`,
  });
}

async function counterValue(counter: Counter<string>, labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

const payload = (port: number, extra: Record<string, unknown> = {}): string => JSON.stringify({ host: '10.0.0.1', port, ...extra });

describe('etcd provider against a real etcd', () => {
  it('delivers a leased key put by another client, and removes it on delete and on lease revoke', async () => {
    const prefix = freshPrefix();
    const recording = record({ endpoints: etcd.endpoints, prefix });
    await connected(recording);
    const lease = writer.lease(30);
    cleanups.push(() => lease.revoke());

    await lease.put(`${prefix}/orders/i-1`).value(payload(8080, { weight: 3, metadata: { zone: 'a' } }));
    await waitFor(() => recording.latest('orders')?.instances.length === 1, { timeoutMs: CONVERGENCE_MS, message: 'orders/i-1 delivered' });
    expect(recording.latest('orders')?.instances).toEqual([
      { id: 'i-1', service: 'orders', host: '10.0.0.1', port: 8080, weight: 3, protocol: 'http', protocolDefaulted: true, metadata: { zone: 'a' } },
    ]);

    await writer.delete().key(`${prefix}/orders/i-1`);
    await membersBecome(recording, 'orders', []);

    await lease.put(`${prefix}/orders/i-2`).value(payload(8081));
    await membersBecome(recording, 'orders', ['i-2=10.0.0.1:8081']);
    await lease.revoke();
    await membersBecome(recording, 'orders', []);
  });

  it('re-lists after a compaction past its watch revision while it was cut off, and keeps watching', async () => {
    const prefix = freshPrefix();
    const proxy = await proxyTo(etcd.endpoints[0]!);
    const resyncsBefore = await counterValue(providerResyncsTotal, {});
    const recording = record({ endpoints: [`http://${proxy.address}`], prefix });
    await writer.put(`${prefix}/inventory/i-1`).value(payload(9001));
    await writer.put(`${prefix}/inventory/i-2`).value(payload(9002));
    await connected(recording);
    await membersBecome(recording, 'inventory', ['i-1=10.0.0.1:9001', 'i-2=10.0.0.1:9002']);
    const name = recording.provider.name;

    proxy.cut();
    await waitFor(() => recording.status()?.state === 'stale', { timeoutMs: CONVERGENCE_MS, message: 'stale after the cut' });
    await writer.delete().key(`${prefix}/inventory/i-1`);
    await writer.put(`${prefix}/inventory/i-2`).value(payload(9012));
    await writer.put(`${prefix}/inventory/i-3`).value(payload(9003));
    const latest = await writer.put(`${prefix}/inventory/i-3`).value(payload(9013)).exec();
    await writer.kv.compact({ revision: latest.header.revision, physical: true });
    proxy.restore();

    await membersBecome(recording, 'inventory', ['i-2=10.0.0.1:9012', 'i-3=10.0.0.1:9013']);
    await connected(recording);
    await writer.put(`${prefix}/inventory/i-4`).value(payload(9004));
    await membersBecome(recording, 'inventory', ['i-2=10.0.0.1:9012', 'i-3=10.0.0.1:9013', 'i-4=10.0.0.1:9004']);
    expect(recording.emitted('inventory').every((snapshot) => snapshot.instances.length > 0)).toBe(true);
    // A cut drops the stream, and a dropped stream is rebuilt by a full re-list: the compacted
    // revision is never asked for again, so the resync counts as `broken`, not `compacted`.
    expect(await counterValue(providerResyncsTotal, { provider: name, reason: 'broken' })).toBe(1);
    expect(await counterValue(providerResyncsTotal, {})).toBe(resyncsBefore + 1);
  });

  it('reports a watch that starts below the compaction revision as compacted', async () => {
    const prefix = freshPrefix();
    const first = await writer.put(`${prefix}/inventory/i-1`).value(payload(9001)).exec();
    const latest = await writer.put(`${prefix}/inventory/i-1`).value(payload(9002)).exec();
    await writer.kv.compact({ revision: latest.header.revision, physical: true });
    const client = createEtcdClient({ endpoint: etcd.endpoints[0]!, requestTimeoutMs: 1_000 });
    let ended: WatchEndReason | undefined;
    const watch = openPrefixWatch(client, `${prefix}/`, first.header.revision, {
      onCreated: () => undefined,
      onResponse: () => undefined,
      onEnd: (reason) => (ended = reason),
    });
    cleanups.push(async () => {
      await watch.cancel(1_000);
      client.close();
    });
    await waitFor(() => ended, { timeoutMs: CONVERGENCE_MS, message: 'the watch ended' });
    expect(ended).toBe('compacted');
  });

  it('keeps serving the last set while etcd is down and resyncs exactly after a restart, including a change made meanwhile', async () => {
    const prefix = freshPrefix();
    const member = etcd.members[0]!;
    const proxy = await proxyTo(member.clientUrl);
    for (const id of ['i-1', 'i-2', 'i-3']) await writer.put(`${prefix}/billing/${id}`).value(payload(7000 + Number(id.slice(2))));
    const recording = record({ endpoints: [`http://${proxy.address}`], prefix });
    await membersBecome(recording, 'billing', ['i-1=10.0.0.1:7001', 'i-2=10.0.0.1:7002', 'i-3=10.0.0.1:7003']);
    await connected(recording);

    const outageStart = Date.now();
    await member.stop();
    await waitFor(() => recording.status()?.state === 'stale', { timeoutMs: CONVERGENCE_MS, message: 'stale while etcd is down' });
    // Keep the provider away from etcd until the changes below are made.
    proxy.cut();
    // The scenario is "down for a few seconds": this timer is its length, not a synchronisation point.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - outageStart))));
    expect(recording.status()?.state).toBe('stale');
    expect(recording.members('billing')).toEqual(['i-1=10.0.0.1:7001', 'i-2=10.0.0.1:7002', 'i-3=10.0.0.1:7003']);
    await member.restart();
    // etcd3's default breaker may still remember the outage; a fresh client writes at once.
    const after = new Etcd3({ hosts: member.clientUrl });
    cleanups.push(async () => after.close());
    await after.delete().key(`${prefix}/billing/i-2`);
    await after.put(`${prefix}/billing/i-4`).value(payload(7004));
    expect(recording.status()?.state).toBe('stale');
    proxy.restore();

    await membersBecome(recording, 'billing', ['i-1=10.0.0.1:7001', 'i-3=10.0.0.1:7003', 'i-4=10.0.0.1:7004']);
    await connected(recording);
    expect(recording.emitted('billing').every((snapshot) => snapshot.instances.length > 0)).toBe(true);
    expect(await counterValue(providerResyncsTotal, { provider: recording.provider.name, reason: 'broken' })).toBe(1);
  });

  it('serves the valid siblings of a malformed payload and counts the bad entry', async () => {
    const prefix = freshPrefix();
    const recording = record({ endpoints: etcd.endpoints, prefix });
    await connected(recording);
    const name = recording.provider.name;
    await writer.put(`${prefix}/payments/a`).value(payload(6001));
    await writer.put(`${prefix}/payments/b`).value('{"host": "10.0.0.2", "port": "not a port"');
    await writer.put(`${prefix}/payments/c`).value(payload(6003));

    await membersBecome(recording, 'payments', ['a=10.0.0.1:6001', 'c=10.0.0.1:6003']);
    expect(recording.latest('payments')?.invalid).toBe(1);
    expect(await counterValue(invalidInstancesTotal, { provider: name, service: 'payments' })).toBe(1);
  });

  it('counts a key written below an instance key once as an invalid entry of its service, however often it is written, and serves the rest', async () => {
    const prefix = freshPrefix();
    const recording = record({ endpoints: etcd.endpoints, prefix });
    await connected(recording);
    const name = recording.provider.name;
    await writer.put(`${prefix}/orders/i-1`).value(payload(6101));
    for (let i = 0; i < 5; i += 1) await writer.put(`${prefix}/orders/i-1/extra`).value(payload(6102 + i));
    // Written after the flood: once it is served, every event of the flood has been applied.
    await writer.put(`${prefix}/orders/i-2`).value(payload(6111));

    await membersBecome(recording, 'orders', ['i-1=10.0.0.1:6101', 'i-2=10.0.0.1:6111']);
    expect(await counterValue(invalidInstancesTotal, { provider: name, service: 'orders' })).toBe(1);
  });

  it('lists a prefix larger than one page completely and ignores keys that are not <prefix>/<service>/<instanceId>', async () => {
    const prefix = freshPrefix();
    for (let i = 1; i <= 5; i += 1) await writer.put(`${prefix}/paged/i-${i}`).value(payload(5000 + i));
    await writer.put(`${prefix}/paged`).value(payload(5999));
    await writer.put(`${prefix}/paged/i-9/deeper`).value(payload(5998));
    const recording = record({ endpoints: etcd.endpoints, prefix, listPageSize: 2 });
    await connected(recording);
    expect(recording.members('paged')).toEqual([1, 2, 3, 4, 5].map((i) => `i-${i}=10.0.0.1:${5000 + i}`));
    expect(recording.emitted('paged')).toHaveLength(1);
    // The key directly under the prefix may be another tool's; the one below an instance key is a malformed registration.
    expect(await counterValue(invalidInstancesTotal, { provider: recording.provider.name, service: 'paged' })).toBe(1);
  });

  it('turns a burst of 500 leased registrations into the exact set and few snapshots', async () => {
    const prefix = freshPrefix();
    const recording = record({ endpoints: etcd.endpoints, prefix });
    await connected(recording);
    const lease = writer.lease(30);
    cleanups.push(() => lease.revoke());
    const ids = Array.from({ length: 500 }, (_, i) => `i-${String(i).padStart(3, '0')}`);

    await Promise.all(ids.map((id, i) => lease.put(`${prefix}/burst/${id}`).value(payload(10_000 + i))));
    await waitFor(() => recording.latest('burst')?.instances.length === 500, { timeoutMs: CONVERGENCE_MS, message: '500 burst instances' });
    expect(recording.latest('burst')?.instances.map((instance) => instance.id)).toEqual(ids);
    expect(recording.emitted('burst').length).toBeLessThan(50);
  });

  it('moves to another member when the member it reads from dies, and never empties the set', async () => {
    const cluster = await startEtcdCluster(3);
    cleanups.push(() => cluster.close());
    const prefix = freshPrefix();
    const seed = new Etcd3({ hosts: cluster.endpoints });
    cleanups.push(async () => seed.close());
    await seed.put(`${prefix}/ledger/i-0`).value(payload(3000));
    const recording = record({ endpoints: cluster.endpoints, prefix });
    await membersBecome(recording, 'ledger', ['i-0=10.0.0.1:3000']);
    const expected = ['i-0=10.0.0.1:3000'];

    // The provider reads from one member; killing each in turn is sure to hit it once.
    for (const [index, member] of cluster.members.entries()) {
      await member.kill();
      // A member restarted just before may still be catching up: writes get a deadline and are retried.
      const survivors = new Etcd3({
        hosts: cluster.members.filter((other) => other !== member).map((other) => other.clientUrl),
        defaultCallOptions: () => ({ deadline: Date.now() + 1_000 }),
      });
      cleanups.push(async () => survivors.close());
      await waitFor(() => survivors.put(`${prefix}/ledger/i-${index + 1}`).value(payload(3001 + index)).then(() => true), {
        timeoutMs: 10_000,
        message: `a write with ${member.name} down`,
      });
      expected.push(`i-${index + 1}=10.0.0.1:${3001 + index}`);
      await membersBecome(recording, 'ledger', expected);
      await member.restart();
    }
    expect(recording.emitted('ledger').every((snapshot) => snapshot.instances.length > 0)).toBe(true);
    expect(await counterValue(providerResyncsTotal, { provider: recording.provider.name })).toBeGreaterThanOrEqual(1);
  });

  it('notices a silent stream within the stall timeout, goes stale, and picks up a change made during the stall', async () => {
    const prefix = freshPrefix();
    const proxy = await proxyTo(etcd.endpoints[0]!);
    await writer.put(`${prefix}/search/i-1`).value(payload(4001));
    const recording = record({ endpoints: [`http://${proxy.address}`], prefix });
    await membersBecome(recording, 'search', ['i-1=10.0.0.1:4001']);
    await connected(recording);
    // 'connected' follows the listing; the watch is created right after. A change seen through it
    // shows the stream is up, so that the blackhole silences a live stream (a watch still being
    // created would end sooner, as "did not create the watch", which is another contract).
    await writer.put(`${prefix}/probe/i-1`).value(payload(4000));
    await membersBecome(recording, 'probe', ['i-1=10.0.0.1:4000']);

    proxy.blackhole();
    const stalledAt = Date.now();
    // Detection takes up to 1.25 × the timeout; the margin covers scheduling on a loaded machine.
    await waitFor(() => recording.status()?.state === 'stale', { timeoutMs: STALL_TIMEOUT_MS * 1.25 + 1_000, message: 'stale after the blackhole' });
    // Silence counts from the last sign of life (a probe answer, every quarter of the timeout), which
    // can precede the blackhole by a probe interval and a round trip: the contract is on that silence.
    const reason = recording.status()?.reason ?? '';
    expect(reason).toMatch(/^stalled: .* silent for \d+ ms$/);
    expect(Number(/silent for (\d+) ms/.exec(reason)![1])).toBeGreaterThanOrEqual(STALL_TIMEOUT_MS);
    expect(Date.now() - stalledAt).toBeGreaterThanOrEqual(STALL_TIMEOUT_MS / 2);
    await writer.put(`${prefix}/search/i-2`).value(payload(4002));
    proxy.restore();

    await membersBecome(recording, 'search', ['i-1=10.0.0.1:4001', 'i-2=10.0.0.1:4002']);
    await connected(recording);
    expect(recording.emitted('search').every((snapshot) => snapshot.instances.length > 0)).toBe(true);
    expect(await counterValue(providerResyncsTotal, { provider: recording.provider.name, reason: 'stalled' })).toBe(1);
  });

  it('notices a watch stream that stopped delivering while reads still work, and picks up a delete or a changed value made meanwhile', async () => {
    const prefix = freshPrefix();
    const relay = await startStreamSilencingRelay(Number(new URL(etcd.endpoints[0]!).port));
    cleanups.push(() => relay.close());
    await writer.put(`${prefix}/search/i-1`).value(payload(4001));
    await writer.put(`${prefix}/search/i-2`).value(payload(4002));
    const recording = record({ endpoints: [`http://${relay.address}`], prefix });
    await connected(recording);
    // A change seen through the watch shows its stream is open, so that it is the one silenced.
    await writer.put(`${prefix}/probe/i-1`).value(payload(4000));
    await membersBecome(recording, 'probe', ['i-1=10.0.0.1:4000']);

    relay.silenceOpenStreams();
    // Only a delete: it moves no key's revision, so only the key count shows the watch missed it.
    await writer.delete().key(`${prefix}/search/i-2`);
    // Probes still answer on the same connection: the change must arrive by the stall bound anyway.
    await membersBecome(recording, 'search', ['i-1=10.0.0.1:4001'], STALL_TIMEOUT_MS * 1.25 + CONVERGENCE_MS);
    expect(recording.statuses.some((status) => status.state === 'stale' && /^stalled: /.test(status.reason ?? ''))).toBe(true);
    expect(await counterValue(providerResyncsTotal, { provider: recording.provider.name, reason: 'stalled' })).toBe(1);

    // The new session watches on a new connection, which the relay leaves alone until told again.
    await writer.put(`${prefix}/search/i-3`).value(payload(4003));
    await membersBecome(recording, 'search', ['i-1=10.0.0.1:4001', 'i-3=10.0.0.1:4003']);
    await connected(recording);

    relay.silenceOpenStreams();
    // Only a changed value: the key count stays, so only the newest revision shows the watch missed it.
    await writer.put(`${prefix}/search/i-1`).value(payload(4011));
    await membersBecome(recording, 'search', ['i-1=10.0.0.1:4011', 'i-3=10.0.0.1:4003'], STALL_TIMEOUT_MS * 1.25 + CONVERGENCE_MS);
    expect(await counterValue(providerResyncsTotal, { provider: recording.provider.name, reason: 'stalled' })).toBe(2);
  });
});
