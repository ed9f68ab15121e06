import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { sendGatewayError } from '../proxy/error-response.ts';
import type { GatewayContext } from '../context.ts';
import type { AttemptResult, AttemptTimeouts } from './transport.ts';
import { Http2Transport } from './transport-http2.ts';
import { http2Attempt } from './transport-http2-attempt.ts';
import { Http2SessionPool, type Http2SessionLimits } from './transport-http2-sessions.ts';
import { recordingPick } from './transport-testing.ts';

const listen = async (server: Server | Http2Server | TcpServer) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

async function until(condition: () => boolean, withinMs: number): Promise<boolean> {
  for (const deadline = performance.now() + withinMs; !condition(); await delay(10)) if (performance.now() > deadline) return false;
  return true;
}

describe("Http2Transport: more sessions when one is at its peer's SETTINGS_MAX_CONCURRENT_STREAMS", () => {
  const sessions: ServerHttp2Session[] = [];
  /** The answers of the `/hold` streams that reached the backend, which waits for the test to send them. */
  const held: (() => void)[] = [];
  let backendPort: number;
  let backend: Http2Server;
  let gateway: Server;
  let attempt: (context: GatewayContext, pick: ReturnType<typeof recordingPick>['pick']) => Promise<AttemptResult>;
  let ended: { result: AttemptResult; outcome: UpstreamOutcome | undefined }[] = [];
  let transport: Http2Transport | undefined;
  const target = () => ({ host: '127.0.0.1', address: `127.0.0.1:${backendPort}`, connectTimeoutMs: 1_000, tls: undefined });
  const timeouts: AttemptTimeouts = { headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
  const withTransport = (limits: Http2SessionLimits) => {
    const created = new Http2Transport(target(), limits);
    attempt = (context, pick) => created.attempt(context, pick, timeouts, null);
    return (transport = created);
  };
  const send = async (path: string) => {
    const answer = await sendTestRequest((gateway.address() as AddressInfo).port, path);
    return { status: answer.status, body: answer.body.toString('utf8') };
  };

  beforeAll(async () => {
    // One stream at a time per session, as a gRPC server with long-lived streams at its limit is.
    backend = createHttp2Server({ settings: { maxConcurrentStreams: 1 } }, (request, response) => {
      const answer = () => response.end(`on session ${sessions.indexOf(request.stream.session as ServerHttp2Session)}`);
      if (request.url === '/hold') held.push(answer);
      else answer();
    });
    backend.on('session', (session) => sessions.push(session));
    backendPort = await listen(backend);
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      void attempt(context, pick).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        ended.push({ result, outcome: outcome() });
      });
    });
    await listen(gateway);
  });
  afterEach(async () => {
    // Streams a failing test left queued must not hold the transport's graceful close.
    for (const session of sessions) session.destroy();
    held.length = 0;
    ended = [];
    await transport?.close();
    transport = undefined;
  });
  afterAll(async () => {
    await Promise.all([new Promise((resolve) => backend.close(resolve)), new Promise((resolve) => gateway.close(resolve))]);
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

  it("fails a stream beyond maxSessions full sessions at once as the gateway's overload (503 pool-overflow), not the instance's", async () => {
    withTransport({ maxSessions: 1, idleMs: 100 });
    await send('/quick');
    const holding = send('/hold');
    expect(await until(() => held.length === 1, 3_000)).toBe(true);
    const started = performance.now();
    expect((await send('/quick')).status).toBe(503);
    expect(performance.now() - started).toBeLessThan(1_000);
    const { result, outcome } = ended.at(-1)!;
    expect(result).toMatchObject({ ok: false, errorClass: 'pool-overflow' });
    expect(isUpstreamFailure(outcome!)).toBe(false);
    held.shift()!();
    expect((await holding).status).toBe(200);
  });

  it('counts a session that received GOAWAY towards maxSessions until it has finished its streams and closed', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 1, idleMs: 60_000 });
    attempt = (context, pick) => http2Attempt(context, pool.reserve, pick, timeouts, null, 'http', pool.release);
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
      expect((await send('/quick')).status).toBe(503);
      expect(ended.at(-1)!.result).toMatchObject({ ok: false, errorClass: 'pool-overflow' });
      expect(sessions.length).toBe(first + 1);
      expect(pool.size).toBe(1);
      held.shift()!();
      expect(await holding).toEqual({ status: 200, body: `on session ${first}` });
      expect(await until(() => pool.size === 0, 3_000), `${pool.size} sessions left`).toBe(true);
      expect(await send('/quick')).toEqual({ status: 200, body: `on session ${first + 1}` });
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

  it('gives back exactly once the stream reserved for an attempt that ended before opening it', async () => {
    const pool = new Http2SessionPool(target(), { maxSessions: 8, idleMs: 60_000 });
    // Hands the reserved session over when the test says, as a connecting session would.
    let handOver = Promise.resolve();
    let attempts = 0;
    attempt = (context, pick) => {
      attempts += 1;
      return http2Attempt(context, () => {
        const reserved = pool.reserve();
        return handOver.then(() => reserved);
      }, pick, timeouts, null, 'http', pool.release);
    };
    try {
      const first = sessions.length;
      expect(await send('/quick')).toEqual({ status: 200, body: `on session ${first}` });
      let letGo!: () => void;
      handOver = new Promise((resolve) => (letGo = resolve));
      const client = connect((gateway.address() as AddressInfo).port, '127.0.0.1');
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
  let gateway: Server;
  let attempt: (context: GatewayContext, pick: ReturnType<typeof recordingPick>['pick']) => Promise<AttemptResult>;
  const ended: { result: AttemptResult; outcome: UpstreamOutcome | undefined }[] = [];
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
    ports.set('h2c', await listen(h2c));
    ports.set('reading', await listen(reading));
    ports.set('mute', await listen(mute));
    gateway = createServer((request, response) => {
      const context = initialContext(request, response);
      const { pick, outcome } = recordingPick();
      void attempt(context, pick).then((result) => {
        if (!result.ok) sendGatewayError(context, result.errorClass);
        ended.push({ result, outcome: outcome() });
      });
    });
    await listen(gateway);
  });
  afterEach(() => {
    for (const socket of accepted) socket.destroy();
  });
  afterAll(async () => {
    gateway.closeAllConnections();
    await Promise.all([h2c, reading, mute, gateway].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it.each([
    { peer: 'h2c', when: 'before its TCP connection is open', tls: false },
    { peer: 'reading', when: 'during its TLS handshake, with a peer that reads it', tls: true },
    { peer: 'mute', when: 'during its TLS handshake, with a peer that reads nothing', tls: true },
  ])('fails the attempt waiting for a session closed $when as the gateway\'s own (503 pool-closed), counted against nobody', async ({ peer, tls: secure }) => {
    const address = `127.0.0.1:${ports.get(peer)!}`;
    const transport = new Http2Transport({ host: '127.0.0.1', address, connectTimeoutMs: 5_000, tls: secure ? tls : undefined });
    let closing: Promise<void> | undefined;
    attempt = (context, pick) => {
      const result = transport.attempt(context, pick, timeouts, null);
      // Cleartext: closed in the tick the session was opened in, before its socket connects.
      if (!secure) closing = transport.close();
      return result;
    };
    const before = ended.length;
    const answer = sendTestRequest((gateway.address() as AddressInfo).port, '/call');
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
    expect({ status, error: JSON.parse(body.toString('utf8')).error }).toEqual({ status: 503, error: 'pool-closed' });
    await closing;
    if (peer === 'reading') expect(await until(() => accepted.size === 0, 2_000), 'the abandoned session let go of its socket').toBe(true);
  });
});
