import { EventEmitter } from 'node:events';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeInstance } from '../discovery/instance-codec.ts';
import type { Instance } from '../discovery/instance.ts';
import { failQueuedRequests, type GuardedClient, type GuardedClientFactory } from '../zookeeper/guarded-client.ts';
import { CLOSE_GRACE_MS } from '../zookeeper/index.ts';
import { ZooKeeperRegistration } from './registration-zookeeper.ts';

const SESSION_TIMEOUT_MS = 2_000;
const INSTANCE: Instance = { id: 'user-1', service: 'user', host: '127.0.0.1', port: 8080, weight: 1, protocol: 'http', metadata: {} };
const PATH = '/services/user/user-1';

type Callback = (error: unknown, ...results: unknown[]) => void;

/** The library's own error for `code` (its `Exception.create` is missing from the type definitions). */
const libraryError = (code: number): Error => (zookeeper.Exception as unknown as { create(code: number): Error }).create(code);

/** One ZooKeeper server's ephemeral nodes, by path: enough of it for a registration. */
class FakeServer {
  readonly nodes = new Map<string, { owner: bigint; version: number }>();
  /** Every path created, in order, including nodes deleted since. */
  readonly created: string[] = [];
  /** The server expires a session: its ephemeral nodes go. */
  expire(session: bigint): void {
    for (const [path, node] of this.nodes) if (node.owner === session) this.nodes.delete(path);
  }
}

/**
 * A scripted node-zookeeper-client: answers at once while healthy; behind a partition requests are
 * sent and never answered; while disconnected they wait in the packet queue. Callbacks behave as
 * the library's do: exists and mkdirp call `getCode()` on the error they get.
 */
class ScriptedClient implements GuardedClient {
  readonly emitter = new EventEmitter();
  readonly client: Client;
  partitioned = false;
  connected = false;
  /** After this many answers, requests reach the server and apply, but their answers are lost on the way back. */
  loseAnswersAfter = Number.POSITIVE_INFINITY;
  /** Blackholes the connection after this many answers, as a partition that starts mid-conversation. */
  partitionAfterAnswers = Number.POSITIVE_INFINITY;
  /** Fails the next exists or getData that arms a watch with this error code (a connection lost as it was sent). */
  failNextWatchWith: number | undefined;
  /** Runs once as the server handles the next setData, before it answers: another client's change that lands just before. */
  beforeNextSetData: (() => void) | undefined;
  /** Answers of getData the test holds (`holdGetData`), to deliver late with `answerHeld`. */
  holdGetData = false;
  private readonly held: Callback[] = [];
  /** Watchers armed by exists, by path: armed only by an answer and fired once, as the library does. */
  private readonly watchers = new Map<string, Set<(event: unknown) => void>>();
  private receivedAt = Date.now();
  private readonly sent: Array<{ callback: Callback }> = [];
  private readonly queue: Array<{ callback: Callback }> = [];

  constructor(
    private readonly server: FakeServer,
    private readonly sessionId: bigint,
  ) {
    const request = (answer: () => unknown[], callback: Callback): void => {
      const packet = { callback: (error: unknown, ...results: unknown[]) => {
        // The library's per-request callbacks read the code of any error (index.js: exists, mkdirp).
        if (error) (error as { getCode(): number }).getCode();
        callback(error, ...results);
      } };
      if (!this.connected) this.queue.push(packet);
      else if (this.partitioned) this.sent.push(packet);
      else if (this.loseAnswersAfter-- <= 0) {
        try {
          answer();
        } catch {
          // The server's refusal is lost with the answer.
        }
        this.sent.push(packet);
      }
      else {
        this.receivedAt = Date.now();
        let results: unknown[];
        try {
          results = answer();
        } catch (error) {
          packet.callback(error);
          return;
        }
        if (--this.partitionAfterAnswers <= 0) this.partitioned = true;
        packet.callback(null, ...results);
      }
    };
    const fail = (code: number): never => {
      throw libraryError(code);
    };
    const nodes = server.nodes;
    this.client = Object.assign(this.emitter, {
      getSessionId: () => {
        const id = Buffer.alloc(8);
        id.writeBigUInt64BE(sessionId);
        return id;
      },
      getSessionTimeout: () => SESSION_TIMEOUT_MS,
      mkdirp: (_path: string, _acls: unknown, _mode: number, callback: Callback) => request(() => [], callback),
      create: (path: string, _data: Buffer, _acls: unknown, _mode: number, callback: Callback) =>
        request(() => (nodes.has(path) ? fail(zookeeper.Exception.NODE_EXISTS) : (nodes.set(path, { owner: sessionId, version: 0 }), server.created.push(path), [path])), callback),
      // With a watcher (the one that arms a watch on the written node) or without.
      exists: (path: string, watcherOrCallback: Callback, callback?: Callback) => {
        const watcher = callback ? (watcherOrCallback as (event: unknown) => void) : undefined;
        const failWith = watcher ? this.failNextWatchWith : undefined;
        if (failWith !== undefined) this.failNextWatchWith = undefined;
        request(() => {
          if (failWith !== undefined) fail(failWith);
          if (watcher) this.watchers.set(path, (this.watchers.get(path) ?? new Set()).add(watcher));
          return [stat(nodes.get(path))];
        }, callback ?? watcherOrCallback);
      },
      setData: (path: string, _data: Buffer, _version: number, callback: Callback) =>
        request(() => {
          const before = this.beforeNextSetData;
          this.beforeNextSetData = undefined;
          before?.();
          return nodes.has(path) ? [stat(nodes.get(path))] : fail(zookeeper.Exception.NO_NODE);
        }, callback),
      // Data of ours (a readable instance, as the registration wrote it), arming a data watch as exists does.
      getData: (path: string, watcher: (event: unknown) => void, callback: Callback) => {
        if (this.holdGetData) return void this.held.push(callback);
        const failWith = this.failNextWatchWith;
        this.failNextWatchWith = undefined;
        request(() => {
          if (failWith !== undefined) fail(failWith);
          if (!nodes.has(path)) fail(zookeeper.Exception.NO_NODE);
          this.watchers.set(path, (this.watchers.get(path) ?? new Set()).add(watcher));
          return [Buffer.from(encodeInstance(INSTANCE)), stat(nodes.get(path))];
        }, callback);
      },
      remove: (path: string, _version: number, callback: Callback) => request(() => (nodes.delete(path) ? [] : fail(zookeeper.Exception.NO_NODE)), callback),
    }) as unknown as Client;
  }

  /** The server's notification of `type` on `path` to the watchers armed on it, which it disarms. */
  notify(path: string, type: number): void {
    const watchers = this.watchers.get(path) ?? new Set();
    this.watchers.delete(path);
    for (const watcher of watchers) watcher({ getPath: () => path, getType: () => type });
  }
  /** Answers the getData requests held so far with the error `code`. */
  answerHeld(code: number): void {
    for (const callback of this.held.splice(0)) callback(libraryError(code));
  }
  connect(): void {}
  lastReceivedAt(): number {
    return this.partitioned ? this.receivedAt : Date.now();
  }
  /** The library's socket close: requests sent on it fail, queued ones wait for a reconnect. */
  dropConnection(): void {
    this.connected = false;
    for (let packet = this.sent.shift(); packet; packet = this.sent.shift()) packet.callback(libraryError(zookeeper.Exception.CONNECTION_LOSS));
    this.emitter.emit('state', zookeeper.State.DISCONNECTED);
  }
  retire(): Promise<void> {
    this.connected = false;
    failQueuedRequests({ cleanupPendingQueue: () => undefined, packetQueue: { queue: this.queue } });
    return Promise.resolve();
  }
  /** The handshake completes on this client's session. */
  establish(): void {
    this.connected = true;
    this.emitter.emit('state', zookeeper.State.SYNC_CONNECTED);
  }
  /** The server answers a reconnect of this client's session: expired. */
  expiredByServer(): void {
    this.connected = false;
    this.emitter.emit('state', zookeeper.State.EXPIRED);
  }
}

function stat(node: { owner: bigint; version: number } | undefined): unknown {
  if (!node) return null;
  const owner = Buffer.alloc(8);
  owner.writeBigUInt64BE(node.owner);
  return { ephemeralOwner: owner, version: node.version };
}

function setup() {
  const server = new FakeServer();
  const clients: ScriptedClient[] = [];
  const factory: GuardedClientFactory = () => {
    const client = new ScriptedClient(server, BigInt(clients.length + 1));
    clients.push(client);
    return client;
  };
  const registration = new ZooKeeperRegistration({ connectString: 'fake:2181', root: '/services', sessionTimeoutMs: SESSION_TIMEOUT_MS, createClient: factory });
  const states: string[] = [];
  registration.state$.subscribe((state) => states.push(state));
  return { server, clients, registration, states, latest: () => clients.at(-1)! };
}

/**
 * Closes `registration` while the fake clock runs: close() may wait for a pass that waits for a
 * session, bounded by the session timeout, then for the client's close grace. Fails past that bound.
 */
async function closeOnFakeClock(registration: ZooKeeperRegistration): Promise<void> {
  let closed = false;
  const closing = registration.close().then(() => (closed = true));
  for (let elapsed = 0; !closed && elapsed <= SESSION_TIMEOUT_MS + CLOSE_GRACE_MS; elapsed += 50) await vi.advanceTimersByTimeAsync(50);
  expect(closed).toBe(true);
  await closing;
}

/** A registration whose first session wrote the node: session 1 owns it. */
async function registeredOnFirstSession() {
  const fixture = setup();
  fixture.registration.register(INSTANCE);
  fixture.latest().establish();
  await vi.advanceTimersByTimeAsync(10);
  expect(fixture.server.nodes.get(PATH)?.owner).toBe(1n);
  return fixture;
}

describe('ZooKeeperRegistration', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes once on the first session and re-creates the node on a new session after a partition outlived the old one', async () => {
    const { server, clients, registration, states, latest } = setup();
    registration.register(INSTANCE);
    // The network goes silent right after the node is written (mkdirp, create, the exists that watches it): a request sent then is never answered.
    latest().partitionAfterAnswers = 3;
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(server.nodes.get(PATH)?.owner).toBe(1n);
    // One pass for the first session, not a second one that repeats the writes right away.
    expect(states).toEqual(['unregistered', 'registering', 'registered']);

    // The read timeout drops the silent connection, and the session expires behind the partition.
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS * 2);
    server.expire(1n);
    expect(clients.length).toBeGreaterThanOrEqual(2);

    // The network heals: the next client gets a new session, and the registration follows.
    await vi.advanceTimersByTimeAsync(2_000);
    latest().establish();
    await vi.advanceTimersByTimeAsync(100);
    expect(server.nodes.get(PATH)?.owner).toBe(BigInt(clients.length));
    expect(registration.currentState()).toBe('registered');
    await closeOnFakeClock(registration);
  });

  it('fails a pass whose request waits on a client retired with its expired session, and retries on the next session', async () => {
    const { server, registration, latest } = setup();
    latest().establish();
    latest().dropConnection();
    // Registered while the only session is disconnected: nothing may be queued on that client.
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS + 1_500);
    latest().establish();
    await vi.advanceTimersByTimeAsync(100);
    expect(server.nodes.get(PATH)?.owner).toBe(2n);
    await closeOnFakeClock(registration);
  });

  it('gives up deregistering after the session timeout while the session is unreachable', async () => {
    const { server, registration, latest } = await registeredOnFirstSession();
    latest().partitioned = true;
    const started = Date.now();
    let done = false;
    void registration.deregister().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS);
    expect(done).toBe(true);
    expect(Date.now() - started).toBeLessThanOrEqual(SESSION_TIMEOUT_MS);
    expect(server.nodes.has(PATH)).toBe(true);
    await closeOnFakeClock(registration);
  });

  it('deletes the node once a brief disconnect ends when deregistered during it', async () => {
    const { server, registration, latest } = await registeredOnFirstSession();
    latest().dropConnection();
    let done = false;
    void registration.deregister().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(done).toBe(false);
    // The same client reconnects on the same session, well within the session timeout.
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(true);
    expect(server.nodes.has(PATH)).toBe(false);
    expect(registration.currentState()).toBe('unregistered');
    await closeOnFakeClock(registration);
  });

  it('writes nothing when deregistered while its pass waited for a session', async () => {
    const { server, registration, latest } = setup();
    // No session yet: the pass waits in liveSession().
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(10);
    let done = false;
    void registration.deregister().then(() => (done = true));
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(true);
    expect(server.created).toEqual([]);
    expect(registration.currentState()).toBe('unregistered');
    await closeOnFakeClock(registration);
  });

  it('tries a new client at most a second after each failed connect, however long the registry stays down', async () => {
    const { clients, registration } = setup();
    const createdAt: number[] = [];
    let seen = 0;
    registration.register(INSTANCE);
    for (let elapsed = 0; elapsed < 30_000; elapsed += 50) {
      await vi.advanceTimersByTimeAsync(50);
      for (; seen < clients.length; seen += 1) createdAt.push(Date.now());
    }
    const gaps = createdAt.slice(1).map((at, index) => at - createdAt[index]!);
    // Each client gets the connect deadline (the session timeout) before it is replaced.
    expect(Math.max(...gaps)).toBeLessThanOrEqual(SESSION_TIMEOUT_MS + 1_000 + 50);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS);
    await closeOnFakeClock(registration);
  });
  it('arms the watch on its node again when arming it after a data change failed, so a later deletion is still undone', async () => {
    const { server, registration, latest } = await registeredOnFirstSession();

    // Another client's write fires the data watch; the exists that arms it again loses its answer to a
    // dropped connection. The library arms a watch only with an answer: the node is unwatched now.
    latest().failNextWatchWith = zookeeper.Exception.CONNECTION_LOSS;
    latest().notify(PATH, zookeeper.Event.NODE_DATA_CHANGED);
    await vi.advanceTimersByTimeAsync(2_000);

    // An operator deletes it: only an armed watch tells the registration.
    server.nodes.delete(PATH);
    latest().notify(PATH, zookeeper.Event.NODE_DELETED);
    await vi.advanceTimersByTimeAsync(10);
    expect(server.nodes.get(PATH)?.owner).toBe(1n);
    await closeOnFakeClock(registration);
  });

  it('ignores a late error of a read its expired session sent: no extra pass, no entry lost, once a new session wrote the entry', async () => {
    const { server, registration, states, latest } = await registeredOnFirstSession();
    // Another client changes the data; the read of it, sent on session 1, gets no answer yet.
    const first = latest();
    first.holdGetData = true;
    first.notify(PATH, zookeeper.Event.NODE_DATA_CHANGED);
    await vi.advanceTimersByTimeAsync(10);
    // Session 1 expires; session 2 writes the entry, before the read's own deadline (the session timeout).
    server.expire(1n);
    first.expiredByServer();
    await vi.advanceTimersByTimeAsync(500);
    latest().establish();
    await vi.advanceTimersByTimeAsync(100);
    expect(server.nodes.get(PATH)?.owner).toBe(2n);
    const passes = states.length;
    // The read of session 1 fails late: news of a session that ended, not of the entry session 2 wrote.
    first.answerHeld(zookeeper.Exception.CONNECTION_LOSS);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(states.slice(passes)).toEqual([]);
    await closeOnFakeClock(registration);
  });

  it('leaves a node another session wrote after a deletion reported while its drain mark was being written', async () => {
    const { server, registration, latest } = await registeredOnFirstSession();

    // While the drain mark's setData is on its way, a second agent with the same id deletes the node
    // and writes its own (version 0, as ours was: the version check lets the setData through). The
    // server sends the deletion's notification before the setData's answer.
    latest().beforeNextSetData = () => {
      server.nodes.set(PATH, { owner: 9n, version: 0 });
      latest().notify(PATH, zookeeper.Event.NODE_DELETED);
    };
    await registration.markDraining(1_000);
    await vi.advanceTimersByTimeAsync(100);
    // The pass that the deletion asked for must see it as a rewrite after a deletion and leave the
    // other session's node: deleting it would have the two agents delete each other's node.
    expect(server.nodes.get(PATH)?.owner).toBe(9n);
    await closeOnFakeClock(registration);
  });

  it('holds no entry while no session ever connected, and deregisters at once, writing nothing after', async () => {
    const { server, registration, latest } = setup();
    registration.register(INSTANCE);
    // Every client misses its connect deadline, for longer than a whole session timeout.
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS * 3);
    expect(registration.mayHoldEntry()).toBe(false);
    let done = false;
    void registration.deregister().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    latest().establish();
    await vi.advanceTimersByTimeAsync(100);
    expect(server.created).toEqual([]);
    expect(registration.mayHoldEntry()).toBe(false);
    await closeOnFakeClock(registration);
  });

  it('may hold the entry once its create was sent though the answer was lost, and deletes that node when deregistered before any retry', async () => {
    const { server, registration, latest } = setup();
    latest().establish();
    // The mkdirp of the parents is answered, the create of the node is not.
    latest().loseAnswersAfter = 1;
    registration.register(INSTANCE);
    await vi.advanceTimersByTimeAsync(10);
    expect(server.nodes.get(PATH)?.owner).toBe(1n);
    expect(registration.currentState()).toBe('registering');
    expect(registration.mayHoldEntry()).toBe(true);
    // The connection drops with the answers; the same session comes back while the deregistration waits.
    latest().loseAnswersAfter = Number.POSITIVE_INFINITY;
    latest().dropConnection();
    let done = false;
    void registration.deregister().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(500);
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(true);
    // The old registration knew only answered writes, and left this node for the session's whole life.
    expect(server.nodes.has(PATH)).toBe(false);
    expect(registration.mayHoldEntry()).toBe(false);
    await closeOnFakeClock(registration);
  });

  /**
   * A registration whose session 1 wrote the node, then was given up by the client after a
   * disconnection past the session timeout: a server restarted from its snapshot still holds
   * session 1 and its node for a whole session timeout once it is back, so the entry may be held.
   */
  async function givenUpAfterWriting() {
    const fixture = await registeredOnFirstSession();
    fixture.latest().dropConnection();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS + 100);
    expect(fixture.registration.currentSession()).toBeUndefined();
    expect(fixture.registration.mayHoldEntry()).toBe(true);
    return fixture;
  }

  it('may still hold its entry after a disconnection it only counted as expiry, and after the server expired the session that wrote it (gateways sent to it: a shutdown drains)', async () => {
    const { server, registration, latest } = await givenUpAfterWriting();

    // A new session takes the node over (the one path holds its node alone from then on); then the
    // server expires that session, and its node goes with it.
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(server.nodes.get(PATH)?.owner).toBe(2n);
    server.expire(2n);
    latest().expiredByServer();
    expect(server.nodes.has(PATH)).toBe(false);
    expect(registration.mayHoldEntry()).toBe(true);
    await closeOnFakeClock(registration);
  });

  it('deletes the node of an older session it only counted expired when deregistered on a new one, and the node is gone once the deregistration resolves', async () => {
    const { server, registration, latest } = await givenUpAfterWriting();

    // SIGTERM before the next session wrote anything: the removal runs on session 2.
    let done = false;
    void registration.deregister().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(10);
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(true);
    // Left, gateways would send to the stopped backend until the server expires session 1.
    expect(server.nodes.has(PATH)).toBe(false);
    expect(registration.mayHoldEntry()).toBe(false);
    await closeOnFakeClock(registration);
  });

  it('takes over the node of an older session of its own whose create answer was lost, instead of leaving it as another agent\'s, and deletes it when deregistered', async () => {
    const { server, registration, latest } = await registeredOnFirstSession();
    // The server expires session 1 with its node.
    server.expire(1n);
    latest().expiredByServer();
    await vi.advanceTimersByTimeAsync(2_000);
    // Session 2's create lands but its answer is lost, and the client gives session 2 up after a
    // disconnection longer than the timeout, while the server (restarted from its snapshot) keeps it.
    latest().loseAnswersAfter = 1;
    latest().establish();
    await vi.advanceTimersByTimeAsync(10);
    expect(server.nodes.get(PATH)?.owner).toBe(2n);
    latest().dropConnection();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS + 2_000);
    latest().establish();
    await vi.advanceTimersByTimeAsync(100);
    expect(server.nodes.get(PATH)?.owner).toBe(3n);
    await registration.deregister();
    expect(server.nodes.has(PATH)).toBe(false);
    await closeOnFakeClock(registration);
  });
});
