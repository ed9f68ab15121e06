import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { isUpstreamFailure } from '../../src/health/upstream-outcome.ts';
import { classifyUpstreamError } from '../proxy/upstream-error.ts';
import type { AttemptTimeouts } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS } from './transport-http2-session-open.ts';
import { Http2SessionPool, type Http2SessionLimits } from './transport-http2-sessions.ts';
import { listenOnLoopback, startAttemptGateway, startHoldingBackend, until, type AttemptGateway, type HoldingBackend } from './transport-http2-testing.ts';

describe("Http2Transport: more sessions when one is at its peer's SETTINGS_MAX_CONCURRENT_STREAMS", () => {
  let backend: HoldingBackend;
  let gateway: AttemptGateway;
  let sessions: HoldingBackend['sessions'];
  let held: HoldingBackend['held'];
  let ended: AttemptGateway['ended'];
  let transport: Http2Transport | undefined;
  const target = () => ({ host: '127.0.0.1', address: `127.0.0.1:${backend.port}`, connectTimeoutMs: 1_000, tls: undefined });
  const timeouts: AttemptTimeouts = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
  const withTransport = (limits: Http2SessionLimits) => {
    const created = new Http2Transport(target(), limits);
    gateway.attempt = (context, pick) => created.attempt(context, pick, timeouts, null);
    return (transport = created);
  };
  const send = (path: string) => gateway.send(path);

  beforeAll(async () => {
    [backend, gateway] = await Promise.all([startHoldingBackend(), startAttemptGateway()]);
    ({ sessions, held } = backend);
    ended = gateway.ended;
  });
  afterEach(async () => {
    // Streams a failing test left queued must not hold the transport's graceful close.
    for (const session of sessions) session.destroy();
    held.length = 0;
    ended.length = 0;
    await transport?.close();
    transport = undefined;
  });
  afterAll(async () => {
    await Promise.all([backend.close(), gateway.close()]);
  });

  it('answers concurrent requests at once on a session each, counts nothing against the instance, and closes the extra sessions once idle', async () => {
    const created = withTransport({ maxSessions: 8, idleMs: 100 });
    const first = sessions.length;
    // The first answer comes after the peer's SETTINGS: the limit of 1 is known from here on.
    expect(await send('/quick')).toEqual({ status: 200, body: `on session ${first}` });
    const answers = [send('/hold'), send('/hold'), send('/hold')];
    // Queued behind one another on one session, only the first stream would reach the backend (until the headers timeout).
    expect(await until(() => held.length === 3, 3_000), `${held.length} of 3 streams reached the backend`).toBe(true);
    for (const answer of held.splice(0)) answer();
    const bodies = (await Promise.all(answers)).map(({ status, body }) => `${status} ${body}`).sort();
    expect(bodies).toEqual([0, 1, 2].map((index) => `200 on session ${first + index}`));
    expect(ended.map(({ outcome }) => outcome)).toEqual([1, 2, 3, 4].map(() => expect.objectContaining({ ok: true })));
    expect(await until(() => created.sessionCount === 1, 3_000), `${created.sessionCount} sessions left`).toBe(true);
    expect(await send('/quick')).toEqual({ status: 200, body: `on session ${first}` });
  });

  it('counts a session that received GOAWAY towards maxSessions until it has finished its streams and closed', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 1, idleMs: 60_000 });
    gateway.attempt = (context, pick) => http2Attempt(context, pool.reserve, pick, timeouts, null, 'http', pool);
    try {
      const first = sessions.length;
      const live = await pool.reserve();
      pool.release(live);
      const holding = send('/hold');
      expect(await until(() => held.length === 1, 3_000)).toBe(true);
      // The instance rotates the session gracefully: GOAWAY, and the held stream goes on.
      const goaway = new Promise((resolve) => live.once('goaway', resolve));
      sessions.at(-1)!.close();
      await goaway;
      // Forgotten at its GOAWAY, the session let a second one open beside it: two sessions with a cap of one.
      const waiting = send('/quick');
      expect(await until(() => pool.waiting === 1, 3_000), 'the request waits for a stream').toBe(true);
      expect(sessions.length).toBe(first + 1);
      expect(pool.size).toBe(1);
      held.shift()!();
      expect(await holding).toEqual({ status: 200, body: `on session ${first}` });
      // Closed once its stream has, the session leaves its place to the waiting request.
      expect(await waiting).toEqual({ status: 200, body: `on session ${first + 1}` });
      expect(ended.map(({ outcome }) => outcome)).toEqual([expect.objectContaining({ ok: true }), expect.objectContaining({ ok: true })]);
    } finally {
      for (const session of sessions) session.destroy();
      await pool.close();
    }
  });

  it("has a new session assume the instance's last limit, but not a 0 one session said for now", async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 8, idleMs: 60_000 });
    try {
      const live = await pool.reserve();
      /** Resolves once the pool, which listened first, has read SETTINGS saying `maxConcurrentStreams`. */
      const received = (maxConcurrentStreams: number) =>
        new Promise<void>((resolve) => {
          const check = (settings: { maxConcurrentStreams?: number }) => {
            if (settings.maxConcurrentStreams !== maxConcurrentStreams) return;
            live.off('remoteSettings', check);
            resolve();
          };
          live.on('remoteSettings', check);
        });
      for (const maxConcurrentStreams of [3, 0]) {
        const read = received(maxConcurrentStreams);
        sessions.at(-1)!.settings({ maxConcurrentStreams });
        await read;
      }
      // The first session takes none now; the next one is assumed to take 3 until its own SETTINGS come.
      const reserved = [pool.reserve(), pool.reserve(), pool.reserve()];
      expect(pool.size).toBe(2);
      await Promise.all(reserved);
    } finally {
      for (const session of sessions) session.destroy();
      await pool.close();
    }
  });

  it("keeps the streams reserved on a connecting session within its peer's first SETTINGS: the rest go on other sessions, and none is refused", async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 8, idleMs: 60_000 });
    try {
      const first = sessions.length;
      // Reserved in one tick, before the session's SETTINGS (1 stream) can have come: 100 are assumed until then.
      const reserved = [pool.reserve(), pool.reserve(), pool.reserve()];
      expect(pool.size).toBe(1);
      const answers = reserved.map(async (reservation) => {
        const live = await reservation;
        const stream = live.request({ ':path': '/hold' }, { endStream: true });
        return new Promise<string>((resolve) => {
          let body = '';
          stream.setEncoding('utf8');
          stream.on('data', (chunk: string) => (body += chunk));
          stream.on('error', (error: Error) => resolve(error.message));
          stream.on('end', () => resolve(body));
          stream.on('close', () => pool.release(live));
        });
      });
      // Sent on the first session, the second and third streams were refused (REFUSED_STREAM): the instance's limit is 1.
      expect(await until(() => held.length === 3, 3_000), `${held.length} of 3 streams reached the backend`).toBe(true);
      for (const answer of held.splice(0)) answer();
      expect((await Promise.all(answers)).sort()).toEqual([0, 1, 2].map((index) => `on session ${first + index}`).sort());
    } finally {
      for (const session of sessions) session.destroy();
      await pool.close();
    }
  });

  it('takes back a reservation that a connecting session could not keep and that waits in the queue for a stream (its request went away)', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 1, idleMs: 60_000 });
    try {
      // Reserved in one tick on the connecting session, whose SETTINGS say 1: the second is made again, and waits (maxSessions 1).
      const first = pool.reserve();
      const second = pool.reserve();
      second.catch(() => undefined);
      const live = await first;
      expect(await until(() => pool.waiting === 1, 3_000), `${pool.waiting} reservations wait`).toBe(true);
      // Else it held its place in the queue (and its request's admission) until a stream came free or the connect timeout.
      expect(pool.withdraw(second)).toBe(true);
      expect(pool.waiting).toBe(0);
      pool.release(live);
    } finally {
      await pool.close();
    }
  });

  it('makes no reservation again for a request that went away while its session connected: it opens no session and takes no place in the queue', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 8, idleMs: 60_000 });
    try {
      // Reserved in one tick on the connecting session, whose SETTINGS say 1; the second's request goes away at once.
      const first = pool.reserve();
      const second = pool.reserve();
      // Held on the connecting session, not queued: it settles, and its attempt gives it back at once.
      expect(pool.withdraw(second)).toBe(false);
      const live = await first;
      const handed = await second;
      pool.release(handed);
      // Made again, it opened a second session to the instance for a request already gone (or, at maxSessions, waited in the queue).
      expect(handed).toBe(live);
      expect(pool.size).toBe(1);
      // The first SETTINGS' one stream is still the first request's, and given back once.
      pool.release(live);
      const next = await pool.reserve();
      expect(next).toBe(live);
      pool.release(next);
    } finally {
      await pool.close();
    }
  });

  it('gives back exactly once the stream reserved for an attempt that ended before opening it', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 8, idleMs: 60_000 });
    // Hands the reserved session over when the test says, as a connecting session would.
    let handOver = Promise.resolve();
    let attempts = 0;
    gateway.attempt = (context, pick) => {
      attempts += 1;
      return http2Attempt(context, () => {
        const reserved = pool.reserve();
        return handOver.then(() => reserved);
      }, pick, timeouts, null, 'http', pool);
    };
    try {
      const first = sessions.length;
      expect(await send('/quick')).toEqual({ status: 200, body: `on session ${first}` });
      let letGo!: () => void;
      handOver = new Promise((resolve) => (letGo = resolve));
      const client = connect(gateway.port, '127.0.0.1');
      client.on('error', () => undefined);
      client.write('GET /quick HTTP/1.1\r\nhost: gateway\r\n\r\n');
      expect(await until(() => attempts === 2, 3_000)).toBe(true);
      client.destroy();
      expect(await until(() => ended.length === 2, 3_000)).toBe(true);
      letGo();
      await (ended[1]!.result as { released?: Promise<void> }).released;
      expect(ended[1]!.result).toMatchObject({ ok: false, errorClass: 'cancelled' });
      // Kept, the slot would send both to new sessions; given back twice, both would queue on the first one.
      const answers = [send('/hold'), send('/hold')];
      expect(await until(() => held.length === 2, 3_000), `${held.length} of 2 streams reached the backend`).toBe(true);
      for (const answer of held.splice(0)) answer();
      const bodies = (await Promise.all(answers)).map(({ body }) => body).sort();
      expect(bodies).toEqual([`on session ${first}`, `on session ${first + 1}`]);
    } finally {
      for (const session of sessions) session.destroy();
      await pool.close();
    }
  });
});

describe('Http2SessionPool: closed by the gateway while a session connects (a shutdown past its drain deadline)', () => {
  let h2c: Http2Server;
  /** TCP servers that accept and answer nothing, so a TLS handshake with them never ends: one reads what it gets, one reads nothing. */
  let reading: TcpServer;
  let mute: TcpServer;
  const accepted = new Set<Socket>();
  const ports = new Map<string, number>();
  let gateway: AttemptGateway;
  const timeouts: AttemptTimeouts = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
  const tls = { ca: undefined, cert: undefined, key: undefined, serverName: undefined, verify: false };
  const peer = (read: boolean) =>
    createTcpServer((socket) => {
      accepted.add(socket);
      socket.on('close', () => accepted.delete(socket));
      if (read) socket.resume();
    });

  beforeAll(async () => {
    h2c = createHttp2Server((request, response) => response.end('answered'));
    reading = peer(true);
    mute = peer(false);
    ports.set('h2c', await listenOnLoopback(h2c));
    ports.set('reading', await listenOnLoopback(reading));
    ports.set('mute', await listenOnLoopback(mute));
    gateway = await startAttemptGateway();
  });
  afterEach(() => {
    for (const socket of accepted) socket.destroy();
  });
  afterAll(async () => {
    await Promise.all([gateway.close(), ...[h2c, reading, mute].map((server) => new Promise((resolve) => server.close(resolve)))]);
  });

  it.each([
    { peer: 'h2c', when: 'before its TCP connection is open', tls: false },
    { peer: 'reading', when: 'during its TLS handshake, with a peer that reads it', tls: true },
    { peer: 'mute', when: 'during its TLS handshake, with a peer that reads nothing', tls: true },
  ])('fails the attempt waiting for a session closed $when as the gateway\'s own (503 pool-closed), counted against nobody', async ({ peer, tls: secure }) => {
    const address = `127.0.0.1:${ports.get(peer)!}`;
    const transport = new Http2Transport({ host: '127.0.0.1', address, connectTimeoutMs: 5_000, tls: secure ? tls : undefined });
    let closing: Promise<void> | undefined;
    gateway.attempt = (context, pick) => {
      const result = transport.attempt(context, pick, timeouts, null);
      // Cleartext: closed in the tick the session was opened in, before its socket connects.
      if (!secure) closing = transport.close();
      return result;
    };
    const { ended } = gateway;
    const before = ended.length;
    const answer = gateway.send('/call');
    answer.catch(() => undefined);
    if (secure) {
      expect(await until(() => accepted.size === 1, 3_000), 'the TLS peer accepted the connection').toBe(true);
      closing = transport.close();
    }
    // node:http2 connected the closed session and failed the stream (upstream-protocol), or, mid
    // handshake with a peer that reads nothing, never settled it.
    expect(await until(() => ended.length > before, 2_000), 'the attempt ended').toBe(true);
    const { result, outcome } = ended.at(-1)!;
    expect(result).toMatchObject({ ok: false, errorClass: 'pool-closed', responseStarted: false });
    expect(outcome).toMatchObject({ ok: false, errorClass: 'internal' });
    expect(isUpstreamFailure(outcome!)).toBe(false);
    const { status, body } = await answer;
    expect({ status, error: JSON.parse(body).error }).toEqual({ status: 503, error: 'pool-closed' });
    await closing;
    if (peer === 'reading') expect(await until(() => accepted.size === 0, 2_000), 'the abandoned session let go of its socket').toBe(true);
  });
});

describe('Http2SessionPool: closed at shutdown while a stream waits on an upstream that never answers', () => {
  let silent: Http2Server;
  /** In front of `silent`: passes bytes both ways until `stalled`, then reads nothing more from the gateway (an upstream stuck, its socket unread). */
  let relay: TcpServer;
  const relayed = new Set<Socket>();
  let stalled = false;
  const ports = new Map<string, number>();
  /** The streams the upstream received (and never answers). */
  let received = 0;
  let gateway: AttemptGateway;
  // Long enough that only the close can end the attempt within the test.
  const timeouts: AttemptTimeouts = { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 };

  beforeAll(async () => {
    silent = createHttp2Server();
    silent.on('session', (session) => session.on('error', () => undefined));
    // The pool cuts its socket at the end of the grace: Node 24 fails this side's open stream with the
    // reset (ECONNRESET), which would be unhandled here.
    silent.on('stream', (stream) => {
      stream.on('error', () => undefined);
      received += 1;
      if (!stalled) return;
      for (const socket of relayed) socket.pause();
    });
    ports.set('reads', await listenOnLoopback(silent));
    relay = createTcpServer((from) => {
      relayed.add(from);
      const to = connect(ports.get('reads')!, '127.0.0.1');
      for (const socket of [from, to]) socket.on('error', () => undefined);
      from.pipe(to);
      to.pipe(from);
      from.on('close', () => (relayed.delete(from), to.destroy()));
      to.on('close', () => from.destroy());
    });
    ports.set('stops reading', await listenOnLoopback(relay));
    gateway = await startAttemptGateway();
  });
  afterAll(async () => {
    for (const socket of relayed) socket.destroy();
    await gateway.close();
    await Promise.all([silent, relay].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it.each([
    // Its graceful close waits for the stream's answer.
    { upstream: 'reads' },
    // Destroyed, the session would still wait for the socket's writes (its GOAWAY) to drain, and for the peer to close.
    { upstream: 'stops reading' },
  ])("stops waiting for the stream after the grace given, and fails it as the gateway's own (503 pool-closed), counted against nobody (an upstream that $upstream)", async ({ upstream }) => {
    stalled = upstream === 'stops reading';
    const pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${ports.get(upstream)!}`, connectTimeoutMs: 1_000, tls: undefined });
    gateway.attempt = (context, pick) => http2Attempt(context, pool.reserve, pick, timeouts, null, 'http', pool);
    const before = { received, ended: gateway.ended.length };
    const answer = gateway.send('/never');
    expect(await until(() => received > before.received, 3_000), 'the upstream received the stream').toBe(true);
    const graceMs = 200;
    const started = performance.now();
    let closedAfterMs: number | undefined;
    void pool.close(graceMs).then(() => (closedAfterMs = performance.now() - started));
    // Without a bound the close waits for the upstream, which never answers (or reads).
    expect(await until(() => closedAfterMs !== undefined, 3_000), 'the pool closed').toBe(true);
    // Graceful until then: the stream was not cut before the grace ran out.
    expect(closedAfterMs).toBeGreaterThanOrEqual(graceMs - 1);
    expect(await until(() => gateway.ended.length > before.ended, 2_000), 'the attempt ended').toBe(true);
    const { result, outcome } = gateway.ended.at(-1)!;
    expect(result).toMatchObject({ ok: false, errorClass: 'pool-closed', responseStarted: false });
    expect(outcome).toMatchObject({ ok: false, errorClass: 'internal' });
    expect(isUpstreamFailure(outcome!)).toBe(false);
    const { status, body } = await answer;
    expect({ status, error: JSON.parse(body).error }).toEqual({ status: 503, error: 'pool-closed' });
  });
});

describe('Http2SessionPool: an instance that takes the connection and never sends its SETTINGS (a hung process whose kernel still accepts)', () => {
  let silent: TcpServer;
  const accepted = new Set<Socket>();
  let connections = 0;
  let pool: Http2SessionPool | undefined;
  const poolFor = (connectTimeoutMs: number) => (pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${(silent.address() as { port: number }).port}`, connectTimeoutMs, tls: undefined }, { maxSessions: 4, idleMs: 60_000 }));

  beforeAll(async () => {
    silent = createTcpServer((socket) => {
      connections += 1;
      accepted.add(socket);
      socket.on('close', () => accepted.delete(socket));
      socket.resume();
    });
    await listenOnLoopback(silent);
  });
  afterEach(async () => {
    vi.useRealTimers();
    await pool?.close(0);
    pool = undefined;
    for (const socket of accepted) socket.destroy();
    connections = 0;
  });
  afterAll(async () => {
    await new Promise((resolve) => silent.close(resolve));
  });

  it('fails the reservations held on the session at the connect timeout, as a connect timeout (nothing was sent)', async () => {
    const created = poolFor(300);
    const outcomes = await Promise.allSettled([created.reserve(), created.reserve(), created.reserve()]);
    expect(await until(() => connections === 1, 3_000), 'the TCP connection was made').toBe(true);
    expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? classifyUpstreamError(outcome.reason, false) : 'resolved'))).toEqual(['connect-timeout', 'connect-timeout', 'connect-timeout']);
  });

  it('fails them as a connect timeout after SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS when the service has no connect timeout, instead of holding them for good', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const created = poolFor(0);
    let failure: unknown;
    created.reserve().catch((error: unknown) => (failure = error));
    // The wait starts at the connect, which takes real time: each poll moves the fake clock past it.
    const failed = await until(() => {
      vi.advanceTimersByTime(SETTINGS_WAIT_WITHOUT_CONNECT_TIMEOUT_MS);
      return failure !== undefined;
    }, 5_000);
    expect(failed, 'the reservation still waits for the SETTINGS').toBe(true);
    expect(await until(() => connections === 1, 3_000), 'the TCP connection was made').toBe(true);
    expect(classifyUpstreamError(failure, false)).toBe('connect-timeout');
  });
});

describe("Http2SessionPool: an instance whose first SETTINGS allow no stream (SETTINGS_MAX_CONCURRENT_STREAMS 0)", () => {
  it('refuses the reservations held on the new session at once, as the instance refusing them, without opening a session for each', async () => {
    let connections = 0;
    const server = createHttp2Server({ settings: { maxConcurrentStreams: 0 } }, (_request, response) => response.end());
    server.on('connection', () => (connections += 1));
    const port = await listenOnLoopback(server);
    const pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 5_000, tls: undefined }, { maxSessions: 8, idleMs: 60_000 });
    try {
      const outcomes = await Promise.allSettled([pool.reserve(), pool.reserve(), pool.reserve()]);
      // Made again, each opened a session of its own, up to maxSessions, and then waited for a stream until the connect timeout (503 pool-full).
      expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? classifyUpstreamError(outcome.reason, false) : 'resolved'))).toEqual(['connect-refused', 'connect-refused', 'connect-refused']);
      expect(connections).toBe(1);
    } finally {
      await pool.close(0);
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
