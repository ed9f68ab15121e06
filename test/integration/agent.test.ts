import { setTimeout as delay } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../../registry-agent/index.ts';
import { EtcdRegistration } from '../../src/registration/registration-etcd.ts';
import { exists, getData } from '../../src/zookeeper/index.ts';
import { create, ephemeralOwnerOf, mkdirp, remove } from '../../src/zookeeper/zookeeper-writes.ts';
import {
  connectZooKeeperClient,
  acceptsConnections,
  backendCommand,
  freePort,
  holdBundle,
  logOf,
  startAgent,
  startBackend,
  startEtcd,
  startTcpProxy,
  startZooKeeper,
  startZooKeeperEnsemble,
  waitFor,
  type BackendProcess,
  type EtcdCluster,
  type ManagedProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

const SESSION_TIMEOUT_MS = 2_000;
/** The data of a persistent node written by hand at an agent's path. */
const BY_HAND = '{"written":"by hand"}';
const FAST = ['--interval', '200ms', '--timeout', '500ms', '--rise', '1', '--fall', '2', '--drain', '0s'];

const connect = connectZooKeeperClient;

async function zkPayload(client: Client, path: string): Promise<Record<string, unknown> | undefined> {
  if (!(await exists(client, path))) return undefined;
  const { data } = await getData(client, path).catch(() => ({ data: null }));
  return data ? JSON.parse(data.toString()) : undefined;
}

/**
 * Waits for `agent`, started with `--drain <drainMs>ms`, to report another writer's entry at its key
 * (`blocked`), sends it SIGTERM and checks that it stopped without waiting --drain, for the reason it
 * gives; returns its log. The old agent took its refused write for an entry of its own: it waited the
 * whole --drain, warning that the registry did not confirm its mark.
 */
async function stopsBlockedWithoutDrain(agent: ManagedProcess, drainMs: number): Promise<string> {
  await waitFor(async () => (await logOf(agent)).includes('registry entry held for good by another writer'), { timeoutMs: 15_000, message: 'the agent to report the entry held' });
  await agent.stop(drainMs + 5_000);
  expect(agent.exitInfo?.code).toBe(0);
  const log = await logOf(agent);
  expect(log).toContain('another writer holds its key for good');
  expect(log).not.toContain('draining mark');
  return log;
}

describe('switchboard-agent with ZooKeeper', () => {
  let zk: ZooKeeperCluster;
  let reader: Client;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    zk = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
    reader = await connect(zk.connectString);
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });
  afterAll(async () => {
    reader?.close();
    await zk?.close();
  });

  async function agentBeside(backend: BackendProcess, extra: string[] = [], connectString = zk.connectString): Promise<ManagedProcess> {
    const agent = await startAgent([
      '--registry', `zk://${connectString}/services`, '--service', 'user', '--port', String(backend.port),
      '--id', `user-${backend.port}`, '--ttl', `${SESSION_TIMEOUT_MS}ms`, ...FAST, ...extra,
    ]);
    cleanup.push(() => agent.kill());
    return agent;
  }

  async function backend(): Promise<BackendProcess> {
    const started = await startBackend();
    cleanup.push(() => started.process.kill());
    return started;
  }

  it('registers the backend with its payload once healthy, keeps it through a SIGHUP, and deregisters it on SIGTERM', async () => {
    const user = await backend();
    const agent = await agentBeside(user, ['--weight', '7', '--metadata', 'version=v2', '--health', 'http:/healthz']);
    const path = `/services/user/user-${user.port}`;
    const payload = await waitFor(() => zkPayload(reader, path), { timeoutMs: 10_000, message: `${path} to appear` }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    // No `protocol`: the agent was not told one, so the gateway applies the service's configured protocol.
    expect(payload).toEqual({ id: `user-${user.port}`, service: 'user', host: '127.0.0.1', port: user.port, weight: 7, metadata: { version: 'v2' } });

    // Node's default would end the agent on SIGHUP, its node left for the session to expire.
    process.kill(agent.pid!, 'SIGHUP');
    await waitFor(async () => (await logOf(agent)).includes('"msg":"SIGHUP ignored"'), { timeoutMs: 10_000, message: 'the agent to log the SIGHUP' });
    expect(agent.running).toBe(true);
    expect(await exists(reader, path)).not.toBeNull();

    await agent.stop();
    expect(agent.exitInfo?.code).toBe(0);
    expect(await exists(reader, path)).toBeNull();
  });

  it('refuses at start a --metadata that would make an entry past what gateways take, naming the flag, the size and the limit', async () => {
    const user = await backend();
    // Under the 128 KiB one argument may be, past the 64 KiB an entry may hold.
    const agent = await agentBeside(user, ['--metadata', `blob=${'x'.repeat(70_000)}`]);
    const exit = await agent.waitForExit(15_000);
    expect(exit.code).toBe(2);
    expect(await logOf(agent)).toMatch(/switchboard-agent: --metadata: 70011 bytes of metadata make an entry of \d+ bytes, more than the 65536 a registry entry may hold/);
    expect(await exists(reader, `/services/user/user-${user.port}`)).toBeNull();
  });

  it('survives a SIGHUP that comes while it is still loading its code, then registers the backend', async () => {
    const user = await backend();
    // The agent's bundle is held from loading (test/fixtures/hold-bundle.mjs) until the signal is sent: the moment does not depend on timing.
    const hold = await holdBundle('switchboard-agent.js');
    const agent = await startAgent([
      '--registry', `zk://${zk.connectString}/services`, '--service', 'user', '--port', String(user.port),
      '--id', `user-${user.port}`, '--ttl', `${SESSION_TIMEOUT_MS}ms`, ...FAST,
    ], hold.env);
    cleanup.push(() => agent.kill());
    process.kill(await hold.held(), 'SIGHUP');
    await hold.release();
    const path = `/services/user/user-${user.port}`;
    // An agent the signal ended stops the wait at once.
    const state = await waitFor(async () => (agent.exitInfo !== undefined ? 'exited' : (await zkPayload(reader, path)) && 'registered'), { timeoutMs: 30_000, message: `${path} to appear` }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    expect(state).toBe('registered');
    expect(agent.running).toBe(true);
  });

  it('marks the node draining, removes it after --drain, and only then stops the backend it started', async () => {
    const port = await freePort();
    const agent = await startAgent([
      '--registry', `zk://${zk.connectString}/services`, '--service', 'user', '--port', String(port), '--id', 'drained',
      ...FAST.slice(0, -2), '--drain', '500ms', '--', ...backendCommand(port),
    ]);
    cleanup.push(() => agent.kill());
    const path = '/services/user/drained';
    await waitFor(() => exists(reader, path), { timeoutMs: 10_000, message: 'the node to appear' });

    // The removal is seen by a watch, which ZooKeeper pushes as it happens; a poll of the node
    // beside a poll of the port could miss a removal that the backend's stop follows within one
    // round of the poll (it did, once in a CI run).
    let deletedAt: number | undefined;
    let changedAt: number | undefined;
    const watchDeletion = async (): Promise<void> => {
      // A data watch fires once, on the draining mark too (the node's only data change here): it is
      // armed again until the node goes.
      const stat = await exists(reader, path, (event) => {
        if (event.getType() === zookeeper.Event.NODE_DELETED) deletedAt ??= Date.now();
        else {
          if (event.getType() === zookeeper.Event.NODE_DATA_CHANGED) changedAt ??= Date.now();
          void watchDeletion().catch(() => undefined);
        }
      });
      if (stat === null) deletedAt ??= Date.now();
    };
    await watchDeletion();

    let markedAt: number | undefined;
    let portClosedAt: number | undefined;
    let nodeAtPortClose: unknown = 'not read';
    const watching = (async () => {
      while (portClosedAt === undefined) {
        const now = Date.now();
        const node = await getData(reader, path).catch(() => undefined);
        if (markedAt === undefined && node && (JSON.parse(String(node.data)) as { draining?: boolean }).draining === true) markedAt = now;
        if (!(await acceptsConnections(port))) {
          portClosedAt = Date.now();
          // The node must already be gone once the backend no longer accepts: removed first, then stopped.
          nodeAtPortClose = await exists(reader, path);
        }
      }
    })();
    await agent.stop();
    await watching;
    expect(agent.exitInfo?.code).toBe(0);
    expect(markedAt).toBeDefined();
    expect(nodeAtPortClose).toBeNull();
    await waitFor(() => deletedAt !== undefined, { timeoutMs: 5_000, message: 'the removal to be notified' });
    // The drain (500 ms) separates the mark from the removal: timed by the watch's events, which
    // ZooKeeper pushes as they happen (the poll may see the mark late on a busy machine).
    expect(deletedAt! - Math.min(markedAt!, changedAt ?? markedAt!)).toBeGreaterThanOrEqual(400);
  });

  it('marks the node draining on a SIGTERM that comes as the node appears, its first registration pass still running', async () => {
    const port = await freePort();
    const path = '/services/user/drained-early';
    // The node's first data change or deletion, seen by a data watch armed as the node appears,
    // before the SIGTERM is sent; a mark that landed before it armed is in what it read.
    let first: string | undefined;
    const appeared = new Promise<void>((resolve) => {
      void exists(reader, path, (event) => {
        if (event.getType() !== zookeeper.Event.NODE_CREATED) return;
        const read = getData(reader, path, (change) => (first ??= change.getType() === zookeeper.Event.NODE_DATA_CHANGED ? 'marked' : 'deleted'));
        void read.then(({ data }) => data && (JSON.parse(String(data)) as { draining?: boolean }).draining === true && (first ??= 'marked')).catch(() => undefined);
        resolve();
      });
    });
    const agent = await startAgent([
      '--registry', `zk://${zk.connectString}/services`, '--service', 'user', '--port', String(port), '--id', 'drained-early',
      ...FAST.slice(0, -2), '--drain', '500ms', '--', ...backendCommand(port),
    ]);
    cleanup.push(() => agent.kill());
    await appeared;
    // At once: the agent may not have taken the answer to its create yet. It used to refuse the mark
    // then ('registering', not 'registered') and drain an entry gateways kept routing to.
    await agent.stop();
    expect(agent.exitInfo?.code).toBe(0);
    const log = await logOf(agent);
    expect(log, log).toContain('marked draining; waiting --drain');
    await waitFor(() => first, { timeoutMs: 5_000, message: 'the mark or the deletion to be notified' });
    expect(first).toBe('marked');
  });

  it('exits on SIGTERM without waiting --drain when no entry is registered, its backend never having passed its probe', async () => {
    const user = await backend();
    await fetch(`http://127.0.0.1:${user.port}/health/fail`, { method: 'POST' });
    const drainMs = 20_000;
    const agent = await agentBeside(user, ['--health', 'http:/healthz', '--drain', `${drainMs}ms`]);
    // Connected and probing (from its start): the failing probes keep the backend out of the registry.
    await waitFor(async () => (await logOf(agent)).includes('ZooKeeper session established'), { timeoutMs: 10_000, message: 'the agent to connect' });
    const sentAt = Date.now();
    await agent.stop(drainMs + 5_000);
    // The old agent waited the whole --drain for an entry that never was, warning that the registry did not confirm its mark.
    expect(Date.now() - sentAt, await logOf(agent)).toBeLessThan(5_000);
    expect(agent.exitInfo?.code).toBe(0);
    const log = await logOf(agent);
    expect(log).toContain('no entry registered, nothing to drain');
    expect(log).not.toContain('draining mark');
    expect(await exists(reader, `/services/user/user-${user.port}`)).toBeNull();
  });

  it('loses the node within the session timeout when the agent is killed with SIGKILL', async () => {
    const user = await backend();
    const agent = await agentBeside(user);
    const path = `/services/user/user-${user.port}`;
    await waitFor(() => exists(reader, path), { timeoutMs: 10_000, message: 'the node to appear' });
    const killedAt = Date.now();
    await agent.kill();
    await waitFor(async () => (await exists(reader, path)) === null, { timeoutMs: SESSION_TIMEOUT_MS * 2 + 1_000, message: 'the node to go' });
    expect(Date.now() - killedAt).toBeLessThan(SESSION_TIMEOUT_MS * 2 + 1_000);
  });

  /** A persistent node (written by hand) at `path`, removed after the test. */
  async function persistentNode(path: string): Promise<void> {
    await mkdirp(reader, path.slice(0, path.lastIndexOf('/')));
    await create(reader, path, Buffer.from(BY_HAND), zookeeper.CreateMode.PERSISTENT);
    cleanup.push(async () => {
      const stat = await exists(reader, path);
      if (stat) await remove(reader, path, -1);
    });
  }

  /**
   * Waits for the agent's error that a persistent node holds `path`; checks that the node stands as
   * it was written, then deletes it and waits for the agent's own ephemeral node in its place.
   */
  async function blockedUntilDeleted(agent: ManagedProcess, path: string, id: string): Promise<void> {
    const line = await waitFor(async () => (await logOf(agent)).split('\n').find((text) => text.includes('registry entry held for good by another writer')), { timeoutMs: 15_000, message: 'the agent to report the persistent node' }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    const logged = JSON.parse(line) as { level: number; key: string; to: string; err: string };
    expect(logged).toMatchObject({ level: 50, key: path, to: 'blocked' });
    expect(logged.err).toContain(`${path} is a persistent node (no session owns it: written by hand or by another tool): it never expires, and is not ours to delete`);
    // Not deleted, not overwritten: the node is its writer's.
    const { data, stat } = await getData(reader, path);
    expect([data?.toString(), ephemeralOwnerOf(stat)]).toEqual([BY_HAND, '0000000000000000']);
    expect(agent.running).toBe(true);
    await remove(reader, path, -1);
    await waitFor(async () => (await zkPayload(reader, path))?.id === id, { timeoutMs: 10_000, message: `${path} to hold the agent's entry once the persistent node is deleted` }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    expect(ephemeralOwnerOf((await exists(reader, path))!)).not.toBe('0000000000000000');
  }

  it('leaves a persistent node at its path as it starts, says so as an error, and registers once the node is deleted', async () => {
    const user = await backend();
    const path = `/services/user/user-${user.port}`;
    await persistentNode(path);
    const agent = await agentBeside(user);
    await blockedUntilDeleted(agent, path, `user-${user.port}`);
    expect(await logOf(agent)).not.toContain('written by another session');
  });

  it('exits on SIGTERM without waiting --drain while a persistent node holds its path from its start, and leaves the node', async () => {
    const user = await backend();
    const path = `/services/user/user-${user.port}`;
    await persistentNode(path);
    const drainMs = 20_000;
    await stopsBlockedWithoutDrain(await agentBeside(user, ['--drain', `${drainMs}ms`]), drainMs);
    const { data, stat } = await getData(reader, path);
    expect([data?.toString(), ephemeralOwnerOf(stat)]).toEqual([BY_HAND, '0000000000000000']);
  });

  it('leaves a persistent node written at its path while its session expired, says so as an error, and registers once the node is deleted', async () => {
    const user = await backend();
    const [host, port] = zk.nodes[0]!.connectString.split(':');
    const proxy = await startTcpProxy({ host: host!, port: Number(port) });
    cleanup.push(() => proxy.close());
    const agent = await agentBeside(user, [], proxy.address);
    const path = `/services/user/user-${user.port}`;
    await waitFor(() => exists(reader, path), { timeoutMs: 10_000, message: 'the node to appear' });
    proxy.blackhole();
    // The server expires the silent session and deletes its ephemeral node; an operator writes a persistent one in its place.
    await waitFor(async () => (await exists(reader, path)) === null, { timeoutMs: SESSION_TIMEOUT_MS * 3, message: 'the old session to expire' });
    await persistentNode(path);
    proxy.restore();
    await blockedUntilDeleted(agent, path, `user-${user.port}`);
    expect(await logOf(agent)).not.toContain('leaving it until it goes');
  });

  it('deregisters a backend that fails its health path and registers it again once it recovers', async () => {
    const user = await backend();
    const agent = await agentBeside(user, ['--health', 'http:/healthz']);
    const path = `/services/user/user-${user.port}`;
    await waitFor(() => exists(reader, path), { timeoutMs: 10_000, message: 'the node to appear' });

    await fetch(`http://127.0.0.1:${user.port}/health/fail`, { method: 'POST' });
    const failedAt = Date.now();
    // fall (2) × interval (200 ms), one more interval and the probe timeout (500 ms), then 2 s for a
    // loaded 2-core machine (another file's JVMs beside this one): 3.1 s. An agent that ignored
    // --interval and --fall (2 s and 3 by default) would take about 6 s, one that never deregistered forever.
    const deregisteredWithinMs = 3 * 200 + 500 + 2_000;
    await waitFor(async () => (await exists(reader, path)) === null, { timeoutMs: deregisteredWithinMs, message: 'the node to go' });
    expect(Date.now() - failedAt).toBeLessThan(deregisteredWithinMs);

    await fetch(`http://127.0.0.1:${user.port}/health/ok`, { method: 'POST' });
    await waitFor(() => exists(reader, path), { timeoutMs: 3_000, message: 'the node to come back' });
    expect(agent.running).toBe(true);
  });

  it('re-creates the node on a new session after its session expired behind a partition', async () => {
    const user = await backend();
    const [host, port] = zk.nodes[0]!.connectString.split(':');
    const proxy = await startTcpProxy({ host: host!, port: Number(port) });
    cleanup.push(() => proxy.close());
    const agent = await agentBeside(user, [], proxy.address);
    const path = `/services/user/user-${user.port}`;
    const first = await waitFor(() => exists(reader, path), { timeoutMs: 10_000, message: 'the node to appear' });

    proxy.blackhole();
    // The server expires the silent session and deletes its ephemeral node.
    await waitFor(async () => (await exists(reader, path)) === null, { timeoutMs: SESSION_TIMEOUT_MS * 3, message: 'the old session to expire' });
    proxy.restore();
    const second = await waitFor(() => exists(reader, path), { timeoutMs: 15_000, message: 'the node to come back' }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    expect(Buffer.from(second.ephemeralOwner).equals(Buffer.from(first.ephemeralOwner))).toBe(false);
    expect(agent.running).toBe(true);
  });

  it('registers within one backoff step once ZooKeeper comes up after the agent started', async () => {
    const user = await backend();
    await zk.nodes[0]!.stop();
    try {
      const agent = await agentBeside(user);
      const path = `/services/user/user-${user.port}`;
      // Ten seconds without a registry; the agent keeps retrying.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      expect(agent.running).toBe(true);
      await zk.nodes[0]!.restart();
      const upAt = Date.now();
      reader.close();
      reader = await connect(zk.connectString);
      await waitFor(() => exists(reader, path), { timeoutMs: 8_000, message: 'the node after the registry came up' });
      // An agent's reconnect backoff is at most 1 s and the library's spin delay 0.5 s; the rest is slack for a loaded machine.
      expect(Date.now() - upAt).toBeLessThan(3_000);
      const log = await logOf(agent);
      // Logged once per state change, not on every attempt.
      expect(log.split('\n').filter((line) => line.includes('registry unreachable')).length).toBeLessThanOrEqual(2);
    } finally {
      if (!zk.nodes[0]!.running) await zk.nodes[0]!.restart();
    }
  });
});

describe('switchboard-agent with a ZooKeeper server that bounds session timeouts', () => {
  it("warns when the server grants another session timeout than --ttl, naming both", async () => {
    const zk = await startZooKeeper({ tickTimeMs: 500, minSessionTimeoutMs: 1_000, maxSessionTimeoutMs: 3_000 });
    const user = await startBackend();
    const agent = await startAgent(['--registry', `zk://${zk.connectString}/services`, '--service', 'user', '--port', String(user.port), '--id', 'bounded', '--ttl', '8s', ...FAST]);
    try {
      const reader = await connect(zk.connectString);
      try {
        await waitFor(() => exists(reader, '/services/user/bounded'), { timeoutMs: 10_000, message: 'the node to appear' });
      } finally {
        reader.close();
      }
      const log = await waitFor(async () => {
        const text = await logOf(agent);
        return text.includes('granted a session timeout') ? text : undefined;
      }, { timeoutMs: 5_000, message: 'the warning about the granted session timeout' });
      expect(log).toContain('granted a session timeout of 3000 ms, not the 8000 ms asked for');
    } finally {
      await agent.kill();
      await user.process.kill();
      await zk.close();
    }
  });
});

describe('switchboard-agent with etcd', () => {
  let etcd: EtcdCluster;
  let reader: Etcd3;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    reader = new Etcd3({ hosts: etcd.endpoints });
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  });
  afterAll(async () => {
    reader?.close();
    await etcd?.close();
  });

  async function agentFor(port: number, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ManagedProcess> {
    const endpoint = etcd.endpoints[0]!.replace('http://', '');
    const agent = await startAgent(['--registry', `etcd://${endpoint}/services`, '--service', 'order', '--port', String(port), '--id', `order-${port}`, '--ttl', '2s', ...FAST, ...extra], env);
    cleanup.push(() => agent.kill());
    return agent;
  }

  it('registers under a prefix of / at /<service>/<id>, where the gateway lists it', async () => {
    const registration = new EtcdRegistration({ endpoints: etcd.endpoints, prefix: '/', ttlMs: 5_000 });
    cleanup.push(() => registration.close());
    registration.register({ id: 'root-1', service: 'rooted', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {} });
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the registration under / to be confirmed' });
    // The gateway's etcd provider lists the prefix / as keys starting with "/" (never "//").
    expect((await reader.getAll().prefix('/').keys()).filter((key) => key.includes('rooted'))).toEqual(['/rooted/root-1']);
    await registration.deregister();
    expect(await reader.get('/rooted/root-1').string()).toBeNull();
  });

  it('puts a leased key with the payload and deletes it on SIGTERM, warning of a misspelt SWITCHBOARD_* variable it ignored', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port, ['--metadata', 'zone=eu'], { SWITCHBOARD_WIEGHT: '5' });
    const key = `/services/order/order-${order.port}`;
    const value = await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    expect(JSON.parse(value)).toMatchObject({ id: `order-${order.port}`, service: 'order', port: order.port, weight: 1, metadata: { zone: 'eu' } });
    const warning = (await logOf(agent)).split('\n').find((line) => line.includes('SWITCHBOARD_WIEGHT'));
    expect(warning, 'a warning naming SWITCHBOARD_WIEGHT').toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ level: 40, variable: 'SWITCHBOARD_WIEGHT', meant: 'SWITCHBOARD_WEIGHT' });
    const { kvs } = await reader.get(key).exec();
    expect(kvs[0]?.lease).not.toBe('0');

    await agent.stop();
    expect(agent.exitInfo?.code).toBe(0);
    expect(await reader.get(key).string()).toBeNull();
  });

  it('marks the key draining on SIGTERM as a value update on the same lease, then deletes it after --drain', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    // Flags after FAST win, so --drain 1s replaces FAST's 0s.
    const agent = await agentFor(order.port, ['--drain', '1s']);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    const [before] = (await reader.get(key).exec()).kvs;

    const stopped = agent.stop();
    const marked = await waitFor(async () => {
      const [kv] = (await reader.get(key).exec()).kvs;
      return kv && (JSON.parse(kv.value.toString()) as { draining?: boolean }).draining === true ? kv : undefined;
    }, { timeoutMs: 5_000, intervalMs: 10, message: `${key} marked draining` });
    // The same key on the same lease, created once: gateways never see it vanish and come back.
    expect(marked.lease).toBe(before!.lease);
    expect(marked.create_revision).toBe(before!.create_revision);
    await stopped;
    expect(agent.exitInfo?.code).toBe(0);
    expect(await reader.get(key).string()).toBeNull();
  });

  it('loses the key within the lease TTL when the agent is killed with SIGKILL', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    await agent.kill();
    // TTL 2 s; etcd may keep a lease up to one more election timeout and keep-alive interval.
    await waitFor(async () => (await reader.get(key).string()) === null, { timeoutMs: 4_000, message: 'the key to go' });
  });

  it('puts the key within about a second once etcd comes up after the agent started', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const member = etcd.members[0]!;
    await member.stop();
    try {
      const agent = await agentFor(order.port);
      const key = `/services/order/order-${order.port}`;
      // Ten seconds without a registry (the outage, not synchronisation): long enough for any
      // backoff or breaker to reach its longest wait.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      expect(agent.running).toBe(true);
      await member.restart();
      const upAt = Date.now();
      await waitFor(() => reader.get(key).string(), { timeoutMs: 15_000, message: `${key} after etcd came up` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await logOf(agent)}`);
      });
      // The agent's backoff is at most 1 s (jittered); the rest is slack for a loaded machine. A
      // 5 s backoff cap or etcd3's 5 s breaker would miss it.
      expect(Date.now() - upAt).toBeLessThan(3_500);
    } finally {
      if (!member.running) await member.restart();
    }
  });

  it('rounds a --ttl that is not whole seconds up to the next whole second of lease, and says so', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port, ['--ttl', '1400ms']);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    const lease = (await reader.get(key).exec()).kvs[0]!.lease;
    // Rounded to the nearest second, 1400 ms was a 1 s lease: shorter than asked.
    expect((await reader.leaseClient.leaseTimeToLive({ ID: lease })).grantedTTL).toBe('2');
    expect(await logOf(agent)).toContain('an etcd lease TTL is whole seconds; rounded up');
  });

  /** An agent for a backend of its own, once its key is there: the key and the lease it is on. */
  async function registeredAgent(): Promise<{ agent: ManagedProcess; key: string; lease: string }> {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    return { agent, key, lease: (await reader.get(key).exec()).kvs[0]!.lease };
  }

  /** Waits for `key` on another lease than `before`; the agent's log tells why not. */
  function onNewLease(agent: ManagedProcess, key: string, before: string, timeoutMs: number): Promise<string> {
    return waitFor(async () => {
      const lease = (await reader.get(key).exec()).kvs[0]?.lease;
      return lease && lease !== before ? lease : undefined;
    }, { timeoutMs, message: 'the key on a new lease' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
  }

  it('puts the key again on a new lease when its lease is revoked from another client', async () => {
    const { agent, key, lease: before } = await registeredAgent();
    await reader.leaseClient.leaseRevoke({ ID: before });
    expect(await onNewLease(agent, key, before, 5_000)).not.toBe(before);
  });

  /**
   * Stops `agent` (SIGSTOP: a paused container, a stalled VM) for 5 s, past the 2 s lease, which etcd
   * expires with `key`, and past twice the TTL, after which etcd3 declares the lease lost as the agent
   * resumes; leaves it stopped (`agent.resume()` or `agent.stop()` next).
   */
  async function stopPastLease(agent: ManagedProcess, key: string): Promise<void> {
    agent.pause();
    const pausedAt = Date.now();
    try {
      await waitFor(async () => (await reader.get(key).exec()).kvs.length === 0, { timeoutMs: 10_000, message: `${key} to expire with its lease` });
      // A stretch of time the agent must spend stopped, not a wait for something to happen.
      await delay(Math.max(0, pausedAt + 5_000 - Date.now()));
    } catch (error) {
      agent.resume();
      throw error;
    }
  }

  it('puts the key on a new lease once resumed after its lease expired while the agent was stopped, without calling etcd unreachable', async () => {
    const { agent, key, lease: before } = await registeredAgent();
    await stopPastLease(agent, key);
    agent.resume();
    await onNewLease(agent, key, before, 10_000);
    // The lease's 'lost' event came while the pass put the key on it: that pass failed as if etcd were down.
    const log = await logOf(agent);
    expect(log).toContain('lease lost; granting a new one');
    expect(log).not.toContain('registry unreachable');
    // etcd reports the key going with the expired lease as a deletion: no other client deleted it.
    expect(log).not.toContain('deleted by another client');
  });

  it('says in plain words why its lease was lost when etcd was down past the lease TTL, and puts the key again', async () => {
    const { agent, key } = await registeredAgent();
    const member = etcd.members[0]!;
    await member.stop();
    try {
      const lost = await waitFor(async () => (await logOf(agent)).split('\n').find((line) => line.includes('"msg":"lease lost; granting a new one"')), { timeoutMs: 10_000, message: 'the lease to be lost' });
      // etcd3's own sentence stands where its error expects a lease id: "Lease We lost connection … is expired or revoked".
      expect((JSON.parse(lost) as { err: string }).err).toBe('We lost connection to etcd and our lease has expired.');
    } finally {
      await member.restart();
    }
    await waitFor(() => reader.get(key).string(), { timeoutMs: 15_000, message: `${key} to be put again after the restart` });
  });

  it('leaves no lease behind when a SIGTERM comes as it resumes after its lease expired while it was stopped', async () => {
    const { agent, key } = await registeredAgent();
    await stopPastLease(agent, key);
    const before = new Set((await reader.leaseClient.leaseLeases({})).leases.map((lease) => lease.ID));
    // SIGTERM, then SIGCONT: it resumes with the key's deletion, its lease's loss and the signal all pending.
    await agent.stop();
    // The pass that put the key back on a new lease granted one after the deregistration, which found no
    // lease to revoke: it outlived the agent by its TTL.
    const left = (await reader.leaseClient.leaseLeases({})).leases.map((lease) => lease.ID).filter((id) => !before.has(id));
    expect(left, await logOf(agent)).toEqual([]);
    expect((await reader.get(key).exec()).kvs).toEqual([]);
  });

  /**
   * Waits for the agent's error that a key on no lease holds `key`; checks that the key stands as it
   * was put, then deletes it and waits for the agent's own key, on a lease, in its place.
   */
  async function blockedUntilDeleted(agent: ManagedProcess, key: string, id: string): Promise<void> {
    const line = await waitFor(async () => (await logOf(agent)).split('\n').find((text) => text.includes('registry entry held for good by another writer')), { timeoutMs: 15_000, message: 'the agent to report the key on no lease' }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    const logged = JSON.parse(line) as { level: number; key: string; to: string; err: string };
    expect(logged).toMatchObject({ level: 50, key, to: 'blocked' });
    expect(logged.err).toContain(`${key} is on no lease (put by hand or by another tool: etcdctl put without --lease): it never expires, and is not ours to overwrite`);
    const [held] = (await reader.get(key).exec()).kvs;
    expect([held?.value.toString(), held?.lease]).toEqual([BY_HAND, '0']);
    expect(agent.running).toBe(true);
    await reader.delete().key(key).exec();
    const back = await waitFor(async () => (await reader.get(key).exec()).kvs.find((kv) => kv.lease !== '0'), { timeoutMs: 10_000, message: `${key} to be put by the agent once the key on no lease is deleted` }).catch(async (error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    expect(JSON.parse(back.value.toString())).toMatchObject({ id });
  }

  /** A backend, and a key on no lease (put by hand) at its agent's key, deleted after the test. */
  async function backendBehindKeyOnNoLease(): Promise<{ order: BackendProcess; key: string }> {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const key = `/services/order/order-${order.port}`;
    await reader.put(key).value(BY_HAND).exec();
    cleanup.push(() => reader.delete().key(key).exec());
    return { order, key };
  }

  it('leaves a key on no lease at its key as it starts, says so as an error, and puts its own once the key is deleted', async () => {
    const { order, key } = await backendBehindKeyOnNoLease();
    const agent = await agentFor(order.port);
    await blockedUntilDeleted(agent, key, `order-${order.port}`);
  });

  it('exits on SIGTERM without waiting --drain while a key on no lease holds its key from its start, leaving the key and no lease', async () => {
    const { order, key } = await backendBehindKeyOnNoLease();
    const before = new Set((await reader.leaseClient.leaseLeases({})).leases.map((lease) => lease.ID));
    const drainMs = 20_000;
    const log = await stopsBlockedWithoutDrain(await agentFor(order.port, ['--drain', `${drainMs}ms`]), drainMs);
    const [held] = (await reader.get(key).exec()).kvs;
    expect([held?.value.toString(), held?.lease]).toEqual([BY_HAND, '0']);
    // The lease it kept to watch the key is revoked on the way out, not left to expire.
    const left = (await reader.leaseClient.leaseLeases({})).leases.map((lease) => lease.ID).filter((id) => !before.has(id));
    expect(left, log).toEqual([]);
  });

  it('leaves a key on no lease put at its key while its lease was lost, says so as an error, and puts its own once the key is deleted', async () => {
    const { agent, key, lease } = await registeredAgent();
    cleanup.push(() => reader.delete().key(key).exec());
    // Stopped, so that the key on no lease is in place before the agent hears of its lease's loss.
    agent.pause();
    try {
      await reader.leaseClient.leaseRevoke({ ID: lease });
      await reader.put(key).value(BY_HAND).exec();
    } finally {
      agent.resume();
    }
    await blockedUntilDeleted(agent, key, key.slice(key.lastIndexOf('/') + 1));
    expect(await logOf(agent)).not.toContain('leaving it until it goes');
  });

  it('leaves the key to another lease that put it before its own lease was revoked, and puts its own once that one goes', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    const agentLease = (await reader.get(key).exec()).kvs[0]!.lease;

    // A second holder of the id (a replacement instance, a copied configuration) puts the key on its own lease.
    const other = reader.lease(30);
    cleanup.push(() => other.revoke());
    const otherValue = JSON.stringify({ id: `order-${order.port}`, service: 'order', host: '127.0.0.2', port: 9, weight: 1, protocol: 'http', metadata: {} });
    await other.put(key).value(otherValue).exec();
    const otherLease = await other.grant();
    await waitFor(async () => (await logOf(agent)).includes('registry entry put on another lease'), { timeoutMs: 5_000, message: 'the agent to see the key on another lease' });

    // The agent's lease is revoked (as if it expired behind a partition): its new lease must not take the key.
    await reader.leaseClient.leaseRevoke({ ID: agentLease });
    const left = 'registry entry held by another lease after our lease was lost; leaving it';
    await waitFor(async () => (await logOf(agent)).includes(left) || (await reader.get(key).exec()).kvs[0]?.lease !== otherLease, { timeoutMs: 10_000, message: 'the agent to decide on a new lease' });
    const [held] = (await reader.get(key).exec()).kvs;
    expect(held?.lease).toBe(otherLease);
    expect(held?.value.toString()).toBe(otherValue);

    // The other holder goes: the agent, watching, puts its own key on its new lease.
    await other.revoke();
    const back = await waitFor(async () => (await reader.get(key).exec()).kvs[0], { timeoutMs: 5_000, message: `${key} to be put again by the agent` }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(agent)}`);
    });
    expect([agentLease, otherLease]).not.toContain(back.lease);
    expect(JSON.parse(back.value.toString())).toMatchObject({ id: `order-${order.port}`, port: order.port });
    expect((await logOf(agent)).split(left).length - 1).toBe(1);
  });

  it('puts the key again on the same lease when another client deletes it, and keeps watching it', async () => {
    const order = await startBackend();
    cleanup.push(() => order.process.kill());
    const agent = await agentFor(order.port);
    const key = `/services/order/order-${order.port}`;
    await waitFor(() => reader.get(key).string(), { timeoutMs: 10_000, message: `${key} to appear` });
    const [before] = (await reader.get(key).exec()).kvs;

    // An operator's `etcdctl del`: the lease lives on, so only a watch on the key can tell.
    for (const round of [1, 2]) {
      await reader.delete().key(key).exec();
      const back = await waitFor(async () => (await reader.get(key).exec()).kvs[0], { timeoutMs: 5_000, message: `${key} to be put again (deletion ${round})` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await logOf(agent)}`);
      });
      expect(back.lease).toBe(before!.lease);
      expect(JSON.parse(back.value.toString())).toMatchObject({ id: `order-${order.port}`, port: order.port });
    }
    expect(await logOf(agent)).toContain('registry entry deleted by another client; putting it again');

    // Its own deletion (the revoke at SIGTERM) is not undone.
    await agent.stop();
    expect(agent.exitInfo?.code).toBe(0);
    expect(await reader.get(key).string()).toBeNull();
  });

  it('watches its key again after etcd restarts, so a deletion after the outage is still undone', async () => {
    const key = '/services/restart/restart-1';
    const registration = new EtcdRegistration({ endpoints: etcd.endpoints, prefix: '/services', ttlMs: 10_000 });
    cleanup.push(() => registration.close());
    registration.register({ id: 'restart-1', service: 'restart', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {} });
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the key to be put' });
    const lease = (await reader.get(key).exec()).kvs[0]!.lease;

    // The restart breaks the watch stream; the lease (10 s) outlives it.
    const member = etcd.members[0]!;
    await member.stop();
    await member.restart();
    await reader.delete().key(key).exec();
    const back = await waitFor(async () => (await reader.get(key).exec()).kvs[0], { timeoutMs: 15_000, message: `${key} to be put again after the restart` });
    expect(back.lease).toBe(lease);
  });

  /** An instance of service `twin` whose id two registrations share (a copied configuration). */
  const twin = (id: string) => ({ id, service: 'twin', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http' as const, metadata: {} });

  /** A registration of `instance` (closed after the test), once it has put its key. */
  async function registered(instance: ReturnType<typeof twin>, which: string): Promise<EtcdRegistration> {
    const registration = new EtcdRegistration({ endpoints: etcd.endpoints, prefix: '/services', ttlMs: 5_000 });
    cleanup.push(() => registration.close());
    registration.register(instance);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: `the ${which} registration to put the key` });
    return registration;
  }

  it('leaves its key to a second registration of the same id, and puts it back once that one deregisters', async () => {
    const instance = twin('twin-1');
    const key = '/services/twin/twin-1';
    const first = await registered(instance, 'first');
    const firstLease = (await reader.get(key).exec()).kvs[0]!.lease;

    // A second agent with the same id (a copied configuration) puts the key on its own lease.
    const second = await registered(instance, 'second');
    const [replaced] = (await reader.get(key).exec()).kvs;
    expect(replaced!.lease).not.toBe(firstLease);

    // Its revoke deletes the key: the first, still registered, puts its own back on its lease.
    await second.deregister();
    const back = await waitFor(async () => (await reader.get(key).exec()).kvs[0], { timeoutMs: 5_000, message: 'the first registration to put its key back' });
    expect(back.lease).toBe(firstLease);
    await waitFor(() => first.currentState() === 'registered', { timeoutMs: 5_000, message: 'the first registration to confirm its put' });

    // Both registered again, an operator deletes the key: both put it again, but only where it is
    // absent, so one writes it and the other leaves it (two puts would make it version 2).
    second.register(instance);
    await waitFor(async () => (await reader.get(key).exec()).kvs[0]?.lease !== firstLease, { timeoutMs: 5_000, message: 'the second registration to put the key again' });
    const passes = [first, second].map((registration) => {
      const states: string[] = [];
      registration.state$.subscribe((state) => states.push(state));
      return states;
    });
    await reader.delete().key(key).exec();
    await waitFor(() => passes.every((states) => states.includes('registering') && states.at(-1) === 'registered'), { timeoutMs: 5_000, message: 'both registrations to put the key again' });
    expect((await reader.get(key).exec()).kvs[0]?.version).toBe('1');
    await Promise.all([first.deregister(), second.deregister()]);
    expect(await reader.get(key).string()).toBeNull();
  });

  it('leaves a key a second registration of the same id put when its own drain mark is written', async () => {
    const instance = twin('twin-2');
    const key = '/services/twin/twin-2';
    const first = await registered(instance, 'first');
    const second = await registered(instance, 'second');
    const secondLease = (await reader.get(key).exec()).kvs[0]!.lease;

    // The first agent's SIGTERM: its drain mark is a data update of its own entry, which is not
    // there any more; writing it would take the key from the second agent (marked draining too).
    expect(await first.markDraining(5_000)).toBe(true);
    const [held] = (await reader.get(key).exec()).kvs;
    expect(held?.lease).toBe(secondLease);
    expect(JSON.parse(held!.value.toString()).draining).toBeUndefined();
    // Its revoke then deletes nothing of the second's: the key stays.
    await first.deregister();
    expect((await reader.get(key).exec()).kvs[0]?.lease).toBe(secondLease);
    await second.deregister();
  });
});

describe('switchboard-agent with a ZooKeeper ensemble', () => {
  let zk: ZooKeeperCluster;

  beforeAll(async () => {
    zk = await startZooKeeperEnsemble(3, { tickTimeMs: 500 });
  });
  afterAll(async () => {
    await zk?.close();
  });

  it('keeps the node when the leader is killed, because the session moves to a follower', async () => {
    const user = await startBackend();
    const agent = await startAgent(['--registry', `zk://${zk.connectString}/services`, '--service', 'user', '--port', String(user.port), '--id', 'stays', '--ttl', '6s', ...FAST]);
    const leader = await zk.leader();
    // Read through a follower, so that the observer itself is not cut off by the kill.
    const follower = zk.nodes.find((node) => node !== leader)!;
    const reader = await connect(follower.connectString);
    try {
      await waitFor(() => exists(reader, '/services/user/stays'), { timeoutMs: 15_000, message: 'the node to appear' });
      let deleted = false;
      // Only the watch matters; the read itself may fail with CONNECTION_LOSS when the reader closes.
      getData(reader, '/services/user/stays', (event) => {
        if (event.getType() === zookeeper.Event.NODE_DELETED) deleted = true;
      }).catch(() => undefined);
      await leader.kill();
      const newLeader = await zk.leader();
      expect(newLeader).not.toBe(leader);
      // Watch for longer than the session timeout: an expired session would have removed the node by then.
      const until = Date.now() + 7_000;
      await waitFor(() => deleted || Date.now() > until, { timeoutMs: 10_000, intervalMs: 100 });
      expect(deleted).toBe(false);
      expect(await exists(reader, '/services/user/stays')).not.toBeNull();
      expect(agent.running).toBe(true);
    } finally {
      reader.close();
      await agent.kill();
      await user.process.kill();
    }
  });
});

describe('register(), the in-process API', () => {
  it('registers the calling process and removes the node on close()', async () => {
    const zk = await startZooKeeper();
    const reader = await connect(zk.connectString);
    try {
      const handle = register({ registry: `zk://${zk.connectString}/services`, service: 'inproc', port: 4321, weight: 3 });
      const payload = await waitFor(() => zkPayload(reader, '/services/inproc/inproc-127.0.0.1-4321'), { message: 'the node to appear' });
      expect(payload).toMatchObject({ service: 'inproc', port: 4321, weight: 3 });
      await handle.close();
      expect(await exists(reader, '/services/inproc/inproc-127.0.0.1-4321')).toBeNull();
      expect(handle.registration.currentState()).toBe('closed');
    } finally {
      reader.close();
      await zk.close();
    }
  });
});
