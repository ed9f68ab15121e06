import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../src/discovery/instance.ts';
import { ZooKeeperRegistration } from '../../src/registration/registration-zookeeper.ts';
import { ephemeralOwnerOf } from '../../src/zookeeper/zookeeper-writes.ts';
import { exists, getData } from '../../src/zookeeper/index.ts';
import { cleanupsAfterEach } from '../harness/cleanups.ts';
import { startTcpProxy, waitFor, type TcpProxy } from '../harness/index.ts';
import { zooKeeperWithReader } from '../harness/zookeeper-fixture.ts';

/** Long enough that a session outlives a cut of a few seconds on a loaded machine; the server grants up to 10 s. */
const SESSION_TIMEOUT_MS = 6_000;
const INSTANCE: Instance = { id: 'user-1', service: 'user', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {} };
const PATH = '/services/user/user-1';

describe('ZooKeeperRegistration against a real ZooKeeper', () => {
  const registry = zooKeeperWithReader({ tickTimeMs: 500, minSessionTimeoutMs: 1_000 });
  const cleanup = cleanupsAfterEach();

  /** A proxy in front of the only server, so that the registration alone can be cut off. */
  async function proxyToZooKeeper(): Promise<TcpProxy> {
    const [host, port] = registry.zk.nodes[0]!.connectString.split(':');
    const proxy = await startTcpProxy({ host: host!, port: Number(port) });
    cleanup.push(() => proxy.close());
    return proxy;
  }

  function registrationAt(connectString: string, root = '/services'): ZooKeeperRegistration {
    const registration = new ZooKeeperRegistration({ connectString, root, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    cleanup.push(() => registration.close());
    return registration;
  }

  /**
   * A registration behind a proxy that wrote its node, then was cut off until the server expired its
   * session and deleted the node; the proxy is left blackholed for the test to restore.
   */
  async function registrationWithExpiredSession(): Promise<{ proxy: TcpProxy; registration: ZooKeeperRegistration; expired: string }> {
    const proxy = await proxyToZooKeeper();
    // The server's least (2 × its 500 ms tick): the session expires within seconds of the blackhole.
    const registration = new ZooKeeperRegistration({ connectString: proxy.address, root: '/services', sessionTimeoutMs: 1_000 });
    cleanup.push(() => registration.close());
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the node to be written' });
    const expired = registration.currentSession()!.id;
    expect(await ownerOf(PATH)).toBe(expired);

    proxy.blackhole();
    await waitFor(async () => (await ownerOf(PATH)) === undefined, { timeoutMs: 15_000, message: 'the server to expire the session and delete its node' });
    return { proxy, registration, expired };
  }

  /** Deletes the node at `path` from another session, as an operator would. */
  function removeNode(path: string): Promise<void> {
    return new Promise((resolve, reject) => registry.reader.remove(path, -1, (error) => (error ? reject(error) : resolve())));
  }

  function setNodeData(path: string, data: string): Promise<void> {
    return new Promise((resolve, reject) => registry.reader.setData(path, Buffer.from(data), -1, (error) => (error ? reject(error) : resolve())));
  }

  /** The session that owns the node at `path`, or undefined when there is no node. */
  async function ownerOf(path: string): Promise<string | undefined> {
    const stat = await exists(registry.reader, path);
    return stat ? ephemeralOwnerOf(stat) : undefined;
  }

  /**
   * Two registrations of INSTANCE, the second started once the first is registered (a second agent
   * with the same id, a copied configuration): the second replaces the node, as a restarted agent
   * replaces its previous run's, and the first, seeing its node deleted, makes one pass that leaves it.
   */
  async function twoRegistrationsOfOneId(): Promise<{ first: ZooKeeperRegistration; second: ZooKeeperRegistration }> {
    const first = registrationAt(registry.zk.connectString);
    first.register(INSTANCE);
    await waitFor(() => first.currentState() === 'registered', { timeoutMs: 10_000, message: 'the first registration to write the node' });
    const firstStates: string[] = [];
    first.state$.subscribe((state) => firstStates.push(state));
    const second = registrationAt(registry.zk.connectString);
    second.register(INSTANCE);
    await waitFor(() => second.currentState() === 'registered', { timeoutMs: 10_000, message: 'the second registration to write the node' });
    await waitFor(() => firstStates.filter((state) => state === 'registered').length >= 2, { timeoutMs: 10_000, message: 'the first registration to settle after the deletion' });
    expect(await ownerOf(PATH)).toBe(second.currentSession()?.id);
    return { first, second };
  }

  it('keeps the node when register() follows deregister() while a pass waits for an unreachable registry', async () => {
    const proxy = await proxyToZooKeeper();
    proxy.cut();
    const registration = registrationAt(proxy.address);
    // The backend turns healthy, then unhealthy, then healthy again while the first pass waits for a session.
    registration.register(INSTANCE);
    const deregistering = registration.deregister();
    registration.register(INSTANCE);
    proxy.restore();
    await deregistering;
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 15_000, message: 'the registration to settle as registered' });
    expect(await ownerOf(PATH)).toBe(registration.currentSession()?.id);
    expect(registration.currentState()).toBe('registered');
  });

  it('writes the node again when another client deletes it, and not after its own deregister()', async () => {
    const registration = registrationAt(registry.zk.connectString);
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the node to be written' });
    const session = registration.currentSession()!;

    // An operator's delete (zkCli delete, a clean-up script): the session lives on, so only a watch can tell.
    await removeNode(PATH);
    await waitFor(async () => (await ownerOf(PATH)) === session.id, { timeoutMs: 10_000, message: 'the deleted node to be written again by the same session' });
    // Another client's write fires the watch without deleting the node: the watch is armed again, so a second delete is noticed too.
    await setNodeData(PATH, '{"id":"user-1","service":"user","host":"127.0.0.1","port":8080,"weight":7}');
    await removeNode(PATH);
    await waitFor(async () => (await ownerOf(PATH)) === session.id, { timeoutMs: 10_000, message: 'the node to be written again after a data change' });
    expect(JSON.parse((await getData(registry.reader, PATH)).data?.toString('utf8') ?? 'null')).toMatchObject({ id: 'user-1', weight: 1 });

    await registration.deregister();
    expect(await ownerOf(PATH)).toBeUndefined();
    expect(registration.currentState()).toBe('unregistered');
  });

  it('leaves the node to a second registration of the same id instead of taking turns deleting each other\'s', async () => {
    const { first, second } = await twoRegistrationsOfOneId();
    const settled = (await exists(registry.reader, '/services/user'))!.cversion;
    // Two registrations deleting each other's node would change the children of the service node within milliseconds, for ever.
    await expect(waitFor(async () => (await exists(registry.reader, '/services/user'))!.cversion !== settled, { timeoutMs: 2_000, message: 'the service node to change' })).rejects.toThrow('not met');
    expect(await ownerOf(PATH)).toBe(second.currentSession()?.id);

    // Once the second lets the node go, the first, still wanting it, writes it again.
    await second.deregister();
    await waitFor(async () => (await ownerOf(PATH)) === first.currentSession()?.id, { timeoutMs: 10_000, message: 'the first registration to write the node again' });
  });

  it('leaves the node a second registration of the same id wrote when its own drain mark is written', async () => {
    const { first, second } = await twoRegistrationsOfOneId();
    const secondOwner = second.currentSession()?.id;

    // The first agent's SIGTERM: its drain mark is a data update of its own node, which is not there
    // any more; writing it would delete the second agent's node and put its own, marked draining, in its place.
    expect(await first.markDraining(5_000)).toBe(true);
    expect(await ownerOf(PATH)).toBe(secondOwner);
    expect(JSON.parse((await getData(registry.reader, PATH)).data?.toString('utf8') ?? 'null')).not.toHaveProperty('draining');
    // Its deregistration then deletes nothing of the second's: the node stays.
    await first.deregister();
    expect(await ownerOf(PATH)).toBe(secondOwner);
    await second.deregister();
  });

  it('marks and deletes its own node after its session expired and it wrote the node again on a new session', async () => {
    const { proxy, registration, expired } = await registrationWithExpiredSession();
    proxy.restore();
    await waitFor(async () => (await ownerOf(PATH)) === registration.currentSession()?.id && registration.currentState() === 'registered', { timeoutMs: 15_000, message: 'the node to be written on a new session' });
    expect(registration.currentSession()?.id).not.toBe(expired);

    // The new session wrote this node: it is ours to mark draining and to delete.
    expect(await registration.markDraining(5_000)).toBe(true);
    expect(JSON.parse((await getData(registry.reader, PATH)).data?.toString('utf8') ?? 'null')).toMatchObject({ id: INSTANCE.id, draining: true });
    await registration.deregister();
    expect(await ownerOf(PATH)).toBeUndefined();
  });

  it('leaves a node another session wrote while its own session was expiring, and writes its own once that one goes', async () => {
    const { proxy, registration, expired } = await registrationWithExpiredSession();
    // A second holder of the id (a replacement instance) writes the node on its own session meanwhile.
    const otherData = '{"id":"user-1","service":"user","host":"127.0.0.2","port":9,"weight":1}';
    await new Promise<void>((resolve, reject) => registry.reader.create(PATH, Buffer.from(otherData), zookeeper.CreateMode.EPHEMERAL, (error) => (error ? reject(error) : resolve())));
    cleanup.push(() => removeNode(PATH));
    const other = await ownerOf(PATH);
    const states: string[] = [];
    registration.state$.subscribe((state) => states.push(state));
    proxy.restore();
    await waitFor(() => registration.currentSession()?.id !== expired && states.some((state) => state === 'registering' || state === 'retrying') && states.at(-1) === 'registered', { timeoutMs: 15_000, message: 'a pass on a new session' });
    expect(await ownerOf(PATH)).toBe(other);
    expect((await getData(registry.reader, PATH)).data?.toString('utf8')).toBe(otherData);

    // The other holder goes: the registration, watching the node, writes its own on its new session.
    await removeNode(PATH);
    await waitFor(async () => (await ownerOf(PATH)) === registration.currentSession()?.id, { timeoutMs: 10_000, message: 'the registration to write its node once the other one went' });
  });

  it('registers under a root of / at /<service>/<id>', async () => {
    const registration = registrationAt(registry.zk.connectString, '/');
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the registration under / to be confirmed' });
    expect(await ownerOf('/user/user-1')).toBe(registration.currentSession()?.id);
    await registration.deregister();
    expect(await ownerOf('/user/user-1')).toBeUndefined();
  });

  it('waits out a brief disconnect to delete the node on deregister(), instead of leaving it to the session timeout', async () => {
    const proxy = await proxyToZooKeeper();
    const registration = registrationAt(proxy.address);
    registration.register(INSTANCE);
    await waitFor(() => registration.currentState() === 'registered', { timeoutMs: 10_000, message: 'the node to be written' });
    const session = registration.currentSession()!;
    expect(await ownerOf(PATH)).toBe(session.id);

    proxy.cut();
    await waitFor(() => session.client.getState() === zookeeper.State.DISCONNECTED, { timeoutMs: 5_000, message: 'the client to see the cut' });
    const startedAt = Date.now();
    const deregistering = registration.deregister();
    proxy.restore();
    await deregistering;
    // Deleted by this deregistration on the same session, not by the server expiring the session.
    expect(await ownerOf(PATH)).toBeUndefined();
    expect(registration.currentSession()?.id).toBe(session.id);
    expect(Date.now() - startedAt).toBeLessThan(SESSION_TIMEOUT_MS);
    expect(registration.currentState()).toBe('unregistered');
  });
});
