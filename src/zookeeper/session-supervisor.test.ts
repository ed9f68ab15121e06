import { EventEmitter } from 'node:events';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GuardedClient, GuardedClientFactory } from './guarded-client.ts';
import { ZooKeeperSessionSupervisor, type ZooKeeperSession, type ZooKeeperSessionState } from './session-supervisor.ts';
import { zookeeperSessionEventsTotal } from './zookeeper-metrics.ts';

const SESSION_TIMEOUT_MS = 3_000;
const CONNECT_TIMEOUT_MS = 1_000;

class FakeGuardedClient implements GuardedClient {
  readonly emitter = new EventEmitter();
  readonly client = this.emitter as unknown as Client;
  readonly createdAt = Date.now();
  sessionId = Buffer.alloc(8);
  received = Date.now();
  dropped = 0;
  retired = false;

  constructor() {
    Object.assign(this.emitter, {
      getSessionId: () => this.sessionId,
      getSessionTimeout: () => SESSION_TIMEOUT_MS,
    });
  }

  connect(): void {}
  lastReceivedAt(): number {
    return this.received;
  }
  dropConnection(): void {
    this.dropped += 1;
  }
  retire(): Promise<void> {
    this.retired = true;
    return Promise.resolve();
  }
  /** The library reporting a connected session `id`. */
  connected(id: number): void {
    this.sessionId.writeBigUInt64BE(BigInt(id));
    this.emitter.emit('state', zookeeper.State.SYNC_CONNECTED);
  }
  disconnected(): void {
    this.emitter.emit('state', zookeeper.State.DISCONNECTED);
  }
  expired(): void {
    this.emitter.emit('state', zookeeper.State.EXPIRED);
  }
}

function setup() {
  const clients: FakeGuardedClient[] = [];
  const digests: (string | undefined)[] = [];
  const factory: GuardedClientFactory = (_connectString, options) => {
    const client = new FakeGuardedClient();
    clients.push(client);
    digests.push(options.digest);
    return client;
  };
  const supervisor = new ZooKeeperSessionSupervisor({
    connectString: 'fake:2181',
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    backoff: { initialMs: 100, maxMs: 400, factor: 2, jitter: 0 },
    createClient: factory,
  });
  const states: ZooKeeperSessionState[] = [];
  const sessions: ZooKeeperSession[] = [];
  supervisor.state$.subscribe((state) => states.push(state));
  supervisor.session$.subscribe((session) => sessions.push(session));
  supervisor.start();
  const latest = (): FakeGuardedClient => clients.at(-1)!;
  return { supervisor, clients, digests, states, sessions, latest };
}

describe('ZooKeeperSessionSupervisor', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('emits the new session before reporting connected', () => {
    const { latest, states, sessions, supervisor } = setup();
    const order: string[] = [];
    supervisor.session$.subscribe(() => order.push('session'));
    supervisor.state$.subscribe((state) => order.push(state));
    latest().connected(1);
    expect(sessions.map((session) => session.id)).toEqual(['0000000000000001']);
    expect(sessions[0]!.timeoutMs).toBe(SESSION_TIMEOUT_MS);
    expect(states).toEqual(['connecting', 'connected']);
    expect(order).toEqual(['connecting', 'session', 'connected']);
  });

  it('treats a disconnection longer than the session timeout as expiry and builds a new client on a new session', async () => {
    const { clients, latest, states, sessions } = setup();
    latest().connected(1);
    latest().disconnected();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS - 1);
    expect(states.at(-1)).toBe('disconnected');
    expect(clients[0]!.retired).toBe(false);

    await vi.advanceTimersByTimeAsync(1);
    expect(states.at(-1)).toBe('expired');
    expect(clients[0]!.retired).toBe(true);

    await vi.advanceTimersByTimeAsync(100);
    expect(clients).toHaveLength(2);
    latest().connected(2);
    expect(sessions.map((session) => session.id)).toEqual(['0000000000000001', '0000000000000002']);
    expect(states).toEqual(['connecting', 'connected', 'disconnected', 'expired', 'connecting', 'connected']);
  });

  it('keeps the session when the client reconnects within the session timeout', async () => {
    const { clients, latest, states, sessions } = setup();
    latest().connected(1);
    latest().disconnected();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS - 500);
    latest().connected(1);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS * 2);
    expect(sessions).toHaveLength(1);
    expect(clients).toHaveLength(1);
    expect(states).toEqual(['connecting', 'connected', 'disconnected', 'connected']);
  });

  it('builds a new client at once when the server reports the session expired', async () => {
    const { clients, latest, states, sessions } = setup();
    latest().connected(1);
    latest().expired();
    expect(clients[0]!.retired).toBe(true);
    expect(states.at(-1)).toBe('expired');
    await vi.advanceTimersByTimeAsync(100);
    latest().connected(2);
    expect(sessions.map((session) => session.id)).toEqual(['0000000000000001', '0000000000000002']);
  });

  it('names the sessions the server expired, and not one it counted expired after a disconnection longer than its timeout', async () => {
    const { supervisor, latest } = setup();
    const expiries: string[] = [];
    supervisor.serverExpiries$.subscribe((id) => expiries.push(id));
    latest().connected(1);
    latest().disconnected();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS + 100);
    latest().connected(2);
    latest().expired();
    expect(expiries).toEqual(['0000000000000002']);
  });

  it('replaces the client with one carrying new credentials, and counts it, whether a session is up or still connecting', async () => {
    const changed = async () => (await zookeeperSessionEventsTotal.get()).values.find((value) => value.labels.client === 'fake:2181' && value.labels.event === 'credentials_changed')?.value ?? 0;
    const before = await changed();
    const { supervisor, clients, digests, latest } = setup();
    supervisor.replaceDigest('user:first');
    expect(clients[0]!.retired).toBe(true);
    expect(digests).toEqual([undefined, 'user:first']);
    latest().connected(1);
    supervisor.replaceDigest('user:first');
    expect(clients).toHaveLength(2);
    supervisor.replaceDigest('user:second');
    expect(clients[1]!.retired).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(digests).toEqual([undefined, 'user:first', 'user:second']);
    expect((await changed()) - before).toBe(2);
  });

  it('retires a client that misses the connect deadline and retries with capped exponential backoff', async () => {
    const { clients, latest, sessions } = setup();
    // The clock is moved by the amounts the supervisor must wait, never "to the next timer": any
    // other code that sets a timer while the fake clock is on (a file that ran before this one in
    // the same worker, which the unit project shares) would be that timer, the retry then firing
    // inside the next connect deadline's window (a Node 24 CI run failed so).
    for (const backoffMs of [100, 200, 400, 400, 400]) {
      await vi.advanceTimersByTimeAsync(CONNECT_TIMEOUT_MS - 1);
      expect(latest().retired).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(latest().retired).toBe(true);
      const built = clients.length;
      await vi.advanceTimersByTimeAsync(backoffMs - 1);
      expect(clients).toHaveLength(built);
      await vi.advanceTimersByTimeAsync(1);
      expect(clients).toHaveLength(built + 1);
    }
    expect(clients.filter((client) => client.retired)).toHaveLength(5);
    latest().connected(7);
    expect(sessions).toHaveLength(1);
  });

  it('drops the connection when nothing is heard for two thirds of the session timeout', async () => {
    const { latest, states } = setup();
    latest().connected(1);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS / 2);
    latest().received = Date.now();
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS / 2);
    expect(latest().dropped).toBe(0);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS / 2);
    expect(latest().dropped).toBeGreaterThan(0);
    expect(states.at(-1)).toBe('connected');
  });

  it('ignores state changes from a client it already retired', async () => {
    const { clients, latest, states, sessions } = setup();
    latest().connected(1);
    latest().expired();
    await vi.advanceTimersByTimeAsync(100);
    clients[0]!.connected(1);
    clients[0]!.disconnected();
    expect(sessions).toHaveLength(1);
    expect(states.at(-1)).toBe('connecting');
  });

  it('replays the current session to a late subscriber', () => {
    const { latest, supervisor } = setup();
    latest().connected(5);
    const late: string[] = [];
    supervisor.session$.subscribe((session) => late.push(session.id));
    expect(late).toEqual(['0000000000000005']);
  });

  it('closes by retiring the client, reporting closed and completing both streams', async () => {
    const { latest, supervisor, states } = setup();
    latest().connected(1);
    let sessionsDone = false;
    supervisor.session$.subscribe({ complete: () => (sessionsDone = true) });
    await supervisor.close();
    expect(latest().retired).toBe(true);
    expect(states.at(-1)).toBe('closed');
    expect(sessionsDone).toBe(true);
    await vi.advanceTimersByTimeAsync(SESSION_TIMEOUT_MS * 3);
    expect(states.at(-1)).toBe('closed');
  });
});
