import zookeeper from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../src/discovery/instance.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderState } from '../../src/discovery/provider.ts';
import { createProvider } from '../../src/discovery/index.ts';
import { createZooKeeperProvider } from '../../src/discovery/zookeeper/index.ts';
import { rootLogger } from '../../src/logger.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { ZooKeeperSessionSupervisor, createGuardedClient, type GuardedClient, type ZooKeeperSession } from '../../src/zookeeper/index.ts';
import { startTcpProxy, startZooKeeper, startZooKeeperEnsemble, waitFor, type TcpProxy, type ZooKeeperCluster } from '../harness/index.ts';
import { fourLetterWord } from '../harness/zookeeper-four-letter-word.ts';

// Fast expiry: the server grants sessions from 2 ticks (400 ms) to 20 ticks (4 s).
const ZOOKEEPER_OPTIONS = { tickTimeMs: 200 };
const SESSION_TIMEOUT_MS = 1_500;
const CONVERGENCE_MS = 5_000;
const OUTAGE_MS = 10_000;
const EPHEMERAL = zookeeper.CreateMode.EPHEMERAL;
const PERSISTENT = zookeeper.CreateMode.PERSISTENT;

/** Everything a provider emitted, in order, so that assertions can look at the whole history. */
interface Recording {
  readonly snapshots: ProviderSnapshot[];
  readonly states: ProviderState[];
  latest(service: string): ProviderSnapshot | undefined;
  /** `id=host:port` of the latest snapshot of `service`, sorted; undefined before its first snapshot. */
  members(service: string): string[] | undefined;
  emitted(service: string): ProviderSnapshot[];
  state(): ProviderState | undefined;
  /** Why the provider is in its latest state, as `/api/registries` shows it. */
  reason(): string | undefined;
}

const providers: DiscoveryProvider[] = [];
const writers: GuardedClient[] = [];
const proxies: TcpProxy[] = [];

/** The two ways the provider follows the tree: one recursive watch on the root (ZooKeeper 3.6+), or a one-shot watch per znode. */
const WATCH_MODES = [
  { watches: 'recursive', recursiveWatch: true },
  { watches: 'one-shot', recursiveWatch: false },
] as const;

interface ProviderOptions {
  readonly sessionTimeoutMs?: number;
  readonly root?: string;
  readonly recursiveWatch?: boolean;
  /** Build it from this registry URL as the gateway does (`createProvider`), with its defaults, instead of from the options above. */
  readonly url?: string;
}

function startProvider(connectString: string, options: ProviderOptions = {}): { provider: DiscoveryProvider; recording: Recording } {
  const { url, ...rest } = options;
  const provider = url ? createProvider(url) : createZooKeeperProvider({ connectString, sessionTimeoutMs: SESSION_TIMEOUT_MS, backoff: { initialMs: 50, maxMs: 500 }, ...rest });
  providers.push(provider);
  const snapshots: ProviderSnapshot[] = [];
  const states: ProviderState[] = [];
  let reason: string | undefined;
  provider.snapshots$.subscribe((snapshot) => snapshots.push(snapshot));
  provider.status$.subscribe((status) => {
    states.push(status.state);
    reason = status.reason;
  });
  provider.start();
  const emitted = (service: string) => snapshots.filter((snapshot) => snapshot.service === service);
  const latest = (service: string) => emitted(service).at(-1);
  const recording: Recording = {
    snapshots,
    states,
    latest,
    emitted,
    members: (service) => latest(service)?.instances.map((instance) => `${instance.id}=${instance.host}:${instance.port}`),
    state: () => states.at(-1),
    reason: () => reason,
  };
  return { provider, recording };
}

/** A second, independent client (node-zookeeper-client with the same crash guards as production). */
async function connectWriter(connectString: string, sessionTimeoutMs = 10_000): Promise<GuardedClient> {
  const writer = createGuardedClient(connectString, { sessionTimeoutMs, spinDelayMs: 100 }, rootLogger);
  writers.push(writer);
  writer.connect();
  await waitFor(() => writer.client.getState() === zookeeper.State.SYNC_CONNECTED, { message: `a writer connected to ${connectString}` });
  return writer;
}

/** Attaches a second client to `session` and closes it, which ends the session on the server (Curator's KillSession). */
async function killSession(connectString: string, session: ZooKeeperSession): Promise<void> {
  const impostor = createGuardedClient(
    connectString,
    { sessionTimeoutMs: session.timeoutMs, session: { id: session.client.getSessionId(), password: session.client.getSessionPassword() } },
    rootLogger,
  );
  impostor.connect();
  await waitFor(() => impostor.client.getState() === zookeeper.State.SYNC_CONNECTED, { timeoutMs: 1_000 }).catch(() => undefined);
  await impostor.retire(1_000);
}

function call(start: (done: (error: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => start((error) => (error ? reject(error) : resolve())));
}

const payload = (port: number, host = '10.0.0.1') => Buffer.from(JSON.stringify({ host, port }));
const create = (writer: GuardedClient, path: string, data: Buffer | undefined, mode: number) =>
  call((done) => (data ? writer.client.create(path, data, mode, done) : writer.client.create(path, mode, done)));
const remove = (writer: GuardedClient, path: string) => call((done) => writer.client.remove(path, done));
const setData = (writer: GuardedClient, path: string, data: Buffer) => call((done) => writer.client.setData(path, data, done));
const mkdirp = (writer: GuardedClient, path: string) => call((done) => writer.client.mkdirp(path, done));

/** Sum of a counter's values over the series whose labels include `labels`. */
async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = metricsRegistry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

afterEach(async () => {
  await Promise.all(providers.splice(0).map((provider) => provider.close()));
  await Promise.all(writers.splice(0).map((writer) => writer.retire(1_000)));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

describe('the ZooKeeper provider against a standalone server', () => {
  let zk: ZooKeeperCluster;
  beforeAll(async () => {
    zk = await startZooKeeper(ZOOKEEPER_OPTIONS);
  });
  afterAll(async () => {
    await zk?.close();
  });

  describe.each(WATCH_MODES)('with $watches watches', (mode) => {
    it('streams an ephemeral znode created by a second client, its deletion, and its removal when that client closes its session', async () => {
      const setup = await connectWriter(zk.connectString);
      await mkdirp(setup, '/services/web');
      const { recording } = startProvider(zk.connectString, mode);
      await waitFor(() => recording.state() === 'connected' && recording.members('web')?.length === 0, { message: 'an empty web service' });

      const second = await connectWriter(zk.connectString);
      await create(second, '/services/web/i1', payload(8001), EPHEMERAL);
      await create(second, '/services/web/i2', payload(8002, '10.0.0.2'), EPHEMERAL);
      await waitFor(() => recording.latest('web')?.instances.length === 2, { timeoutMs: CONVERGENCE_MS, message: 'two instances of web' });
      expect(recording.latest('web')!.instances).toEqual<Instance[]>([
        { id: 'i1', service: 'web', host: '10.0.0.1', port: 8001, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
        { id: 'i2', service: 'web', host: '10.0.0.2', port: 8002, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} },
      ]);

      await remove(second, '/services/web/i1');
      await waitFor(() => recording.members('web')?.join() === 'i2=10.0.0.2:8002', { timeoutMs: CONVERGENCE_MS, message: 'i1 deleted' });

      await second.retire(1_000);
      await waitFor(() => recording.members('web')?.length === 0, { timeoutMs: CONVERGENCE_MS, message: 'i2 gone with its session' });
    });

    it('waits for a root that does not exist yet, and publishes an empty set when a service znode is deleted', async () => {
      const { recording } = startProvider(zk.connectString, { ...mode, root: `/late-${mode.watches}` });
      await waitFor(() => recording.state() === 'connected', { message: 'connected without a root' });
      expect(recording.snapshots).toEqual([]);

      const writer = await connectWriter(zk.connectString);
      await mkdirp(writer, `/late-${mode.watches}/svc`);
      await create(writer, `/late-${mode.watches}/svc/s1`, payload(3001), EPHEMERAL);
      await waitFor(() => recording.members('svc')?.join() === 's1=10.0.0.1:3001', { timeoutMs: CONVERGENCE_MS, message: 's1 under the new root' });

      await remove(writer, `/late-${mode.watches}/svc/s1`);
      await remove(writer, `/late-${mode.watches}/svc`);
      await waitFor(() => recording.latest('svc')?.instances.length === 0, { timeoutMs: CONVERGENCE_MS, message: 'svc emptied by its deletion' });
      await create(writer, `/late-${mode.watches}/svc`, undefined, PERSISTENT);
      await create(writer, `/late-${mode.watches}/svc/s2`, payload(3002), EPHEMERAL);
      await waitFor(() => recording.members('svc')?.join() === 's2=10.0.0.1:3002', { timeoutMs: CONVERGENCE_MS, message: 'svc re-created' });
    });

    it('serves the siblings of a malformed payload and counts the bad entry', async () => {
      const { provider, recording } = startProvider(zk.connectString, mode);
      await waitFor(() => recording.state() === 'connected');
      const labels = { provider: provider.name, service: 'pay' };
      const invalidBefore = await counter('switchboard_registry_invalid_entries_total', labels);

      const writer = await connectWriter(zk.connectString);
      await mkdirp(writer, '/services/pay');
      await Promise.all([
        create(writer, '/services/pay/p1', payload(9001), EPHEMERAL),
        create(writer, '/services/pay/p2', Buffer.from('{"host": "10.0.0.9", "port": '), EPHEMERAL),
        create(writer, '/services/pay/p3', payload(9003), EPHEMERAL),
      ]);
      await waitFor(() => recording.members('pay')?.join() === 'p1=10.0.0.1:9001,p3=10.0.0.1:9003', { timeoutMs: CONVERGENCE_MS });
      expect(recording.latest('pay')!.invalid).toBe(1);
      expect(await counter('switchboard_registry_invalid_entries_total', labels)).toBe(invalidBefore + 1);
    });

    it('settles a burst of 500 pipelined registrations on the exact set in far fewer than 500 snapshots', async () => {
      const writer = await connectWriter(zk.connectString);
      await mkdirp(writer, '/services/burst');
      const { recording } = startProvider(zk.connectString, mode);
      await waitFor(() => recording.state() === 'connected' && recording.members('burst')?.length === 0);
      const before = recording.emitted('burst').length;

      const expected = Array.from({ length: 500 }, (_, i) => `b${String(i).padStart(3, '0')}=10.0.1.1:${10_000 + i}`);
      await Promise.all(Array.from({ length: 500 }, (_, i) => create(writer, `/services/burst/b${String(i).padStart(3, '0')}`, payload(10_000 + i, '10.0.1.1'), EPHEMERAL)));
      await waitFor(() => recording.latest('burst')?.instances.length === 500, { timeoutMs: 15_000, message: '500 instances of burst' });

      expect(recording.members('burst')).toEqual(expected);
      const emissions = recording.emitted('burst').length - before;
      expect(emissions).toBeGreaterThanOrEqual(1);
      expect(emissions).toBeLessThan(50);
    });

    it('follows a same-session reconnect: re-reads what changed while it was away, and later changes too', async () => {
      const setup = await connectWriter(zk.connectString);
      const service = `again-${mode.watches}`;
      await mkdirp(setup, `/services/${service}`);
      await create(setup, `/services/${service}/r1`, payload(6101), PERSISTENT);
      await create(setup, `/services/${service}/r2`, payload(6102), PERSISTENT);
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: zk.nodes[0]!.clientPort });
      proxies.push(proxy);
      // The server's longest session (20 ticks): the reconnect below comes well within it.
      const { provider, recording } = startProvider(proxy.address, { ...mode, sessionTimeoutMs: 4_000 });
      await waitFor(() => recording.state() === 'connected' && recording.members(service)?.join() === 'r1=10.0.0.1:6101,r2=10.0.0.1:6102');
      const labels = { provider: provider.name };
      const reconnects = await counter('switchboard_provider_resyncs_total', { ...labels, reason: 'reconnect' });
      const newSessions = await counter('switchboard_provider_resyncs_total', { ...labels, reason: 'new-session' });

      proxy.cut();
      await waitFor(() => recording.state() === 'stale', { message: 'stale once the connection is cut' });
      await create(setup, `/services/${service}/r3`, payload(6103), PERSISTENT);
      await remove(setup, `/services/${service}/r1`);
      await setData(setup, `/services/${service}/r2`, payload(6112));
      proxy.restore();
      await waitFor(() => recording.state() === 'connected' && recording.members(service)?.join() === 'r2=10.0.0.1:6112,r3=10.0.0.1:6103', {
        timeoutMs: CONVERGENCE_MS,
        message: 'the changes made while it was away',
      });
      expect(await counter('switchboard_provider_resyncs_total', { ...labels, reason: 'reconnect' })).toBe(reconnects + 1);
      expect(await counter('switchboard_provider_resyncs_total', { ...labels, reason: 'new-session' })).toBe(newSessions);

      // Watches armed again on the new connection: a creation, a data change and a deletion.
      await create(setup, `/services/${service}/r4`, payload(6104), PERSISTENT);
      await setData(setup, `/services/${service}/r3`, payload(6113));
      await remove(setup, `/services/${service}/r2`);
      await waitFor(() => recording.members(service)?.join() === 'r3=10.0.0.1:6113,r4=10.0.0.1:6104', {
        timeoutMs: CONVERGENCE_MS,
        message: 'changes after the reconnect',
      });
    });

    it(`holds ${mode.recursiveWatch ? 'one watch on the server, however many znodes it follows' : 'a watch per znode it follows'}`, async () => {
      const writer = await connectWriter(zk.connectString);
      const services = [`count-${mode.watches}-a`, `count-${mode.watches}-b`];
      for (const service of services) {
        await mkdirp(writer, `/services/${service}`);
        await Promise.all(Array.from({ length: 10 }, (_, i) => create(writer, `/services/${service}/n${i}`, payload(7100 + i), EPHEMERAL)));
      }
      // Through the registry URL, as the gateway builds it: `watch=` must reach the provider.
      const { recording } = startProvider(zk.connectString, { url: `zk://${zk.connectString}/services?watch=${mode.watches}` });
      await waitFor(() => recording.state() === 'connected' && services.every((service) => recording.members(service)?.length === 10));
      // Only the provider watches: the writers and the providers of earlier tests (closed) hold none.
      const watches = await waitFor(async () => {
        const total = /Total watches:(\d+)/.exec(await fourLetterWord('127.0.0.1', zk.nodes[0]!.clientPort, 'wchs'))?.[1];
        return total === undefined ? undefined : Number(total);
      });
      // `wchs` sums the server's data watch table, where a recursive watch counts once; one-shot
      // watches put a data watch there per instance (the child watches are in another table).
      if (mode.recursiveWatch) expect(watches).toBe(1);
      else expect(watches).toBeGreaterThanOrEqual(20);
    });
  });

  it('recovers from a partition longer than the session timeout on a new session, with the right set and live watches', async () => {
    const writer = await connectWriter(zk.connectString);
    await mkdirp(writer, '/services/cart');
    await create(writer, '/services/cart/c1', payload(7001), PERSISTENT);
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: zk.nodes[0]!.clientPort });
    proxies.push(proxy);
    const { provider, recording } = startProvider(proxy.address);
    await waitFor(() => recording.state() === 'connected' && recording.members('cart')?.join() === 'c1=10.0.0.1:7001');
    const newSessions = await counter('switchboard_provider_resyncs_total', { provider: provider.name, reason: 'new-session' });
    const expiries = await counter('switchboard_zookeeper_session_events_total', { client: provider.name, event: 'expired' });

    // A silent partition: the client hears nothing and the library itself would never notice.
    proxy.blackhole();
    await waitFor(() => recording.state() === 'stale', { message: 'stale while partitioned' });
    await waitFor(async () => (await counter('switchboard_zookeeper_session_events_total', { client: provider.name, event: 'expired' })) > expiries, {
      message: 'the supervisor gave the session up',
    });
    // Stale since the partition began, and now for the expired session, however many new sessions it tries meanwhile.
    await waitFor(() => recording.reason() === 'ZooKeeper session expired', { message: 'the reason says the session expired' });
    expect(recording.state()).toBe('stale');
    await create(writer, '/services/cart/c2', payload(7002), PERSISTENT);
    proxy.restore();

    await waitFor(() => recording.state() === 'connected' && recording.members('cart')?.join() === 'c1=10.0.0.1:7001,c2=10.0.0.1:7002', {
      timeoutMs: CONVERGENCE_MS,
      message: 'resynced on a new session',
    });
    expect(await counter('switchboard_provider_resyncs_total', { provider: provider.name, reason: 'new-session' })).toBe(newSessions + 1);

    await create(writer, '/services/cart/c3', payload(7003), PERSISTENT);
    await waitFor(() => recording.members('cart')?.includes('c3=10.0.0.1:7003'), { timeoutMs: CONVERGENCE_MS, message: 'c3 through re-armed watches' });
    expect(recording.emitted('cart').every((snapshot) => snapshot.instances.length > 0)).toBe(true);
  });

  it('says why it has no session before its first one, against a server that accepts connections and answers nothing, and connects once it answers', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: zk.nodes[0]!.clientPort });
    proxies.push(proxy);
    proxy.blackhole();
    const { recording } = startProvider(proxy.address);
    await waitFor(() => recording.reason() === `no ZooKeeper session from ${proxy.address} within ${SESSION_TIMEOUT_MS} ms`, {
      timeoutMs: CONVERGENCE_MS,
      message: 'the reason names the connect deadline',
    });
    expect(recording.state()).toBe('connecting');
    proxy.restore();
    await waitFor(() => recording.state() === 'connected', { timeoutMs: CONVERGENCE_MS, message: 'connected once the server answers' });
    expect(recording.reason()).toBeUndefined();
  });

  it('notices a frozen server that keeps its sockets open, reports stale with the last set, and recovers when it resumes', async () => {
    const writer = await connectWriter(zk.connectString);
    await mkdirp(writer, '/services/frozen');
    await create(writer, '/services/frozen/f1', payload(4001), PERSISTENT);
    const { recording } = startProvider(zk.connectString);
    await waitFor(() => recording.state() === 'connected' && recording.members('frozen')?.join() === 'f1=10.0.0.1:4001');

    // No FIN, no RST: only the read timeout can tell (the library alone keeps pinging forever).
    zk.nodes[0]!.pause();
    try {
      await waitFor(() => recording.state() === 'stale', { timeoutMs: SESSION_TIMEOUT_MS * 2, message: 'stale while the server is frozen' });
      expect(recording.members('frozen')?.join()).toBe('f1=10.0.0.1:4001');
    } finally {
      zk.nodes[0]!.resume();
    }
    await waitFor(() => recording.state() === 'connected', { timeoutMs: 10_000, message: 'connected after the server resumed' });
    expect(recording.members('frozen')?.join()).toBe('f1=10.0.0.1:4001');
    expect(recording.emitted('frozen').filter((snapshot) => snapshot.instances.length === 0)).toEqual([]);
  });

  it('replaces a session that another client closed with its id and password', async () => {
    const supervisor = new ZooKeeperSessionSupervisor({ connectString: zk.connectString, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    const sessions: ZooKeeperSession[] = [];
    supervisor.session$.subscribe((session) => sessions.push(session));
    supervisor.start();
    try {
      const first = await waitFor(() => sessions[0]);
      // The supervised client reconnects at once and can take the session back before the
      // impostor's close lands, so the kill is repeated until a new session shows up.
      const second = await waitFor(
        async () => {
          if (!sessions[1]) await killSession(zk.connectString, first);
          return sessions[1];
        },
        { timeoutMs: 10_000, intervalMs: 100, message: 'a new session after the forced expiry' },
      );
      expect(second.id).not.toBe(first.id);
      await waitFor(() => supervisor.currentState() === 'connected');
      await call((done) => second.client.exists('/', done));
    } finally {
      await supervisor.close();
    }
  });

  it('keeps every set through a 10 s outage, reports stale, and resyncs exactly to the changes made while it was away', async () => {
    const setup = await connectWriter(zk.connectString);
    await mkdirp(setup, '/services/api');
    await create(setup, '/services/api/a1', payload(6001), PERSISTENT);
    await create(setup, '/services/api/a2', payload(6002), PERSISTENT);
    await setup.retire(1_000);
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: zk.nodes[0]!.clientPort });
    proxies.push(proxy);
    const { recording } = startProvider(proxy.address);
    await waitFor(() => recording.state() === 'connected' && recording.members('api')?.join() === 'a1=10.0.0.1:6001,a2=10.0.0.1:6002');

    const outageStart = Date.now();
    await zk.nodes[0]!.stop();
    await waitFor(() => recording.state() === 'stale', { message: 'stale once ZooKeeper is down' });
    // Keep the provider away from the registry until the changes below are made.
    proxy.cut();
    // The scenario is "down for 10 s": this timer is its length, not a synchronisation point.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - outageStart))));
    expect(recording.state()).toBe('stale');
    await zk.nodes[0]!.restart();

    const writer = await connectWriter(zk.connectString);
    await create(writer, '/services/api/a3', payload(6003), PERSISTENT);
    await remove(writer, '/services/api/a1');
    await setData(writer, '/services/api/a2', payload(6012));
    expect(recording.members('api')?.join()).toBe('a1=10.0.0.1:6001,a2=10.0.0.1:6002');
    proxy.restore();

    await waitFor(() => recording.state() === 'connected' && recording.members('api')?.join() === 'a2=10.0.0.1:6012,a3=10.0.0.1:6003', {
      timeoutMs: 10_000,
      message: 'exact resync after the outage',
    });
    expect(recording.emitted('api').filter((snapshot) => snapshot.instances.length === 0)).toEqual([]);
    expect(recording.states).toContain('stale');
  });
});

describe('the ZooKeeper provider against a 3-node ensemble', () => {
  let ensemble: ZooKeeperCluster;
  beforeAll(async () => {
    ensemble = await startZooKeeperEnsemble(3, ZOOKEEPER_OPTIONS);
  });
  afterAll(async () => {
    await ensemble?.close();
  });

  it('never emits an empty set when the leader is killed, and updates resume', async () => {
    const writer = await connectWriter(ensemble.connectString);
    await mkdirp(writer, '/services/orders');
    await create(writer, '/services/orders/o1', payload(5001), PERSISTENT);
    await create(writer, '/services/orders/o2', payload(5002), PERSISTENT);
    const { recording } = startProvider(ensemble.connectString, { sessionTimeoutMs: 4_000 });
    await waitFor(() => recording.state() === 'connected' && recording.members('orders')?.join() === 'o1=10.0.0.1:5001,o2=10.0.0.1:5002');

    const leader = await ensemble.leader();
    await leader.kill();
    await ensemble.leader();
    // The writer may be reconnecting too: retry until the create lands (NODE_EXISTS means an earlier try did).
    await waitFor(
      () =>
        create(writer, '/services/orders/o3', payload(5003), PERSISTENT).then(
          () => true,
          (error: { code?: number }) => error.code === zookeeper.Exception.NODE_EXISTS,
        ),
      { timeoutMs: 15_000, message: 'o3 created after the election' },
    );
    await waitFor(() => recording.members('orders')?.join() === 'o1=10.0.0.1:5001,o2=10.0.0.1:5002,o3=10.0.0.1:5003', {
      timeoutMs: 15_000,
      message: 'updates after the leader died',
    });
    expect(recording.emitted('orders').filter((snapshot) => snapshot.instances.length === 0)).toEqual([]);
    // Followers drop their clients when the leader goes, so the provider did lose its connection.
    expect(recording.states).toContain('stale');
    await waitFor(() => recording.state() === 'connected', { message: 'connected again after the election' });
  });
});
