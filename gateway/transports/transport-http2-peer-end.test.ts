import { connect, constants, createServer, type ClientHttp2Stream, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { http2Frame } from '../entrypoints/http2-testing.ts';
import { cancelStream, dropBody, DROPPED_BODY_BYTES, peerEnded, watchPeerEnd } from './transport-http2-peer-end.ts';
import { Http2SessionPool } from './transport-http2-sessions.ts';
import { until } from './transport-http2-testing.ts';

/** The frames after a prior-knowledge preface and SETTINGS: HEADERS of a POST on stream 1 (END_HEADERS, no END_STREAM). */
const POST_HEADERS = http2Frame(1, 0x4, 1, Buffer.from([0x83, 0x86, 0x01, 2, ...Buffer.from('gw'), 0x04, 2, ...Buffer.from('/p')]));
const PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), http2Frame(4, 0, 0, Buffer.alloc(0))]);
const data = (flags: number) => http2Frame(0, flags, 1, Buffer.from('partial'));
const reset = (code: number) => {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return http2Frame(3, 0, 1, payload);
};

describe('watchPeerEnd', () => {
  let server: Http2Server | undefined;
  let socket: Socket | undefined;

  afterEach(async () => {
    socket?.destroy();
    if (server) await new Promise((resolve) => server!.close(resolve));
    server = socket = undefined;
  });

  it("relies on node:http2's streams pushing with Readable's own push, on the client side and the server side", async () => {
    server = createServer((_request, response) => response.end());
    const pushes = new Promise<unknown>((resolve) => server!.on('stream', (stream: ServerHttp2Stream) => resolve(Object.getPrototypeOf(stream).push)));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const request = client.request({ ':path': '/' });
    expect(Object.getPrototypeOf(request).push).toBe(Readable.prototype.push);
    expect(await pushes).toBe(Readable.prototype.push);
    request.resume();
    await new Promise((resolve) => request.on('close', resolve));
    client.close();
  });

  // Each frame list is written at once (`split`: the first frame a write of its own, after which the
  // server has the stream), so that the end may come before the session's 'stream' event too.
  it.each([
    { name: 'HEADERS with END_STREAM (an end pushed before the session\'s \'stream\' event)', frames: [http2Frame(1, 0x5, 1, POST_HEADERS.subarray(9))], split: false, ended: true },
    { name: 'DATA with END_STREAM', frames: [POST_HEADERS, data(0), data(0x1)], split: true, ended: true },
    { name: 'DATA with END_STREAM in the read that opened the stream', frames: [POST_HEADERS, data(0), data(0x1)], split: false, ended: true },
    { name: 'RST_STREAM NO_ERROR before END_STREAM', frames: [POST_HEADERS, data(0), reset(constants.NGHTTP2_NO_ERROR)], split: true, ended: false },
    { name: 'RST_STREAM NO_ERROR before END_STREAM, in the read that opened the stream', frames: [POST_HEADERS, data(0), reset(constants.NGHTTP2_NO_ERROR)], split: false, ended: false },
    { name: 'RST_STREAM CANCEL before END_STREAM', frames: [POST_HEADERS, data(0), reset(constants.NGHTTP2_CANCEL)], split: true, ended: false },
  ])('tells a peer that sent $name (ended: $ended)', async ({ frames, split, ended }) => {
    server = createServer();
    const opened = new Promise<ServerHttp2Stream>((resolve) => server!.on('stream', resolve));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    socket = netConnect((server.address() as AddressInfo).port, '127.0.0.1').on('error', () => undefined);
    socket.write(Buffer.concat([PREFACE, ...(split ? frames.slice(0, 1) : frames)]));
    const stream = await opened;
    watchPeerEnd(stream);
    stream.on('error', () => undefined).resume();
    if (split) socket.write(Buffer.concat(frames.slice(1)));
    await new Promise((resolve) => stream.once('end', resolve));
    // A server that has read the whole body answers, which closes a stream whose client has ended it.
    if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: true });
    expect(peerEnded(stream)).toBe(ended);
  });
});

describe('cancelStream', () => {
  it('resets a stream mid-upload with RST_STREAM CANCEL and no END_STREAM before it, where close(CANCEL) sends END_STREAM first', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const seen = async (cut: (stream: ClientHttp2Stream) => void) => {
        const opened = new Promise<ServerHttp2Stream>((resolve) => server.once('stream', resolve));
        const request = client.request({ ':path': '/', ':method': 'POST' }, { endStream: false }).on('error', () => undefined);
        request.write('partial');
        const stream = await opened;
        watchPeerEnd(stream);
        stream.on('error', () => undefined).resume();
        await new Promise((resolve) => stream.once('data', resolve));
        cut(request);
        await new Promise((resolve) => stream.once('close', resolve));
        return { peerEnded: peerEnded(stream), rstCode: stream.rstCode };
      };
      expect(await seen((request) => cancelStream(request))).toEqual({ peerEnded: false, rstCode: constants.NGHTTP2_CANCEL });
      // What it replaces: node ends the writable side first, and the upstream sees a whole body.
      expect((await seen((request) => request.close(constants.NGHTTP2_CANCEL))).peerEnded).toBe(true);
    } finally {
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('dropBody', () => {
  it('reads a body that ends within its allowance to its end, and cancels one past it', async () => {
    const server = createServer((request, response) => {
      response.writeHead(404);
      response.end('x'.repeat(Number(request.url.slice(1))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const closedWith = async (size: number) => {
        const closed = new Promise<number>((resolve) => server.once('stream', (stream: ServerHttp2Stream) => stream.once('close', () => resolve(stream.rstCode))));
        const request = client.request({ ':path': `/${size}` }).on('error', () => undefined);
        await new Promise((resolve) => request.once('response', resolve));
        dropBody(request);
        return closed;
      };
      expect(await closedWith(4_000)).toBe(0);
      expect(await closedWith(DROPPED_BODY_BYTES)).toBe(0);
      expect(await closedWith(4 * DROPPED_BODY_BYTES)).toBe(constants.NGHTTP2_CANCEL);
    } finally {
      client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('dropBody beside a request waiting for a stream', () => {
  afterEach(() => void vi.useRealTimers());

  it.each([
    ['that comes to wait once the body is dropped', false],
    ['that already waited when the body came to be dropped', true],
  ])("gives a dropped body's stream to a request %s at once, not after DROPPED_BODY_MS", async (_case, waitFirst) => {
    // One stream a session, one session: a never-ending page the gateway drops holds the only stream.
    let answer: (() => void) | undefined;
    const server = createServer({ settings: { maxConcurrentStreams: 1 } }, (_request, response) => {
      answer = () => void response.writeHead(404).write('never ends');
      if (!waitFirst) answer();
    });
    const closes: number[] = [];
    server.on('stream', (stream: ServerHttp2Stream) => stream.once('close', () => closes.push(stream.rstCode)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 10_000, tls: undefined }, { maxSessions: 1, idleMs: 10_000 });
    try {
      const session = await pool.reserve();
      const page = session.request({ ':path': '/page' }).on('error', () => undefined);
      page.once('close', () => pool.release(session));
      // The dropped body's timer (and the queue's wait) never fire from here: only a cancel frees the stream.
      vi.useFakeTimers({ toFake: ['setTimeout'] });
      let served = false;
      const next = () => void pool.reserve().then(() => (served = true), () => undefined);
      if (waitFirst) {
        // The page's stream is at the server, unanswered: the next request waits for it before it is dropped.
        expect(await until(() => answer !== undefined, 3_000)).toBe(true);
        next();
        expect(pool.waiting).toBe(1);
        answer!();
      }
      await new Promise((resolve) => page.once('response', resolve));
      dropBody(page);
      if (!waitFirst) next();
      expect(await until(() => served, 3_000), 'the waiting request served').toBe(true);
      // The server reads the cancel after the client's pool has freed the stream: a stall of the
      // process between the two (a loaded machine) lets the poll above end before it.
      expect(await until(() => closes.length > 0, 3_000), "the page's stream closed at the server").toBe(true);
      expect(closes).toEqual([constants.NGHTTP2_CANCEL]);
    } finally {
      vi.useRealTimers();
      await pool.close(0);
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('dropped bodies beside requests waiting for a stream of a pool of several sessions', () => {
  afterEach(() => void vi.useRealTimers());

  it('cancels one dropped body per waiting request, the oldest first, never every dropped body of every session', async () => {
    // Two streams a session, two sessions: four never-ending pages the gateway drops hold them all.
    const server = createServer({ settings: { maxConcurrentStreams: 2 } }, (_request, response) => void response.writeHead(404).write('never ends'));
    /** The paths of the streams the server saw cancelled (RST_STREAM CANCEL), in order. */
    const cancelled: string[] = [];
    server.on('stream', (stream: ServerHttp2Stream, headers) =>
      stream.once('close', () => {
        if (stream.rstCode === constants.NGHTTP2_CANCEL) cancelled.push(String(headers[':path']));
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${port}`, connectTimeoutMs: 10_000, tls: undefined }, { maxSessions: 2, idleMs: 10_000 });
    try {
      const reserved = await Promise.all([0, 1, 2, 3].map(() => pool.reserve()));
      const sessions = [...new Set(reserved)];
      expect(sessions).toHaveLength(2);
      const pages = reserved.map((session, index) => {
        const page = session.request({ ':path': `/page${index}` }).on('error', () => undefined);
        page.once('close', () => pool.release(session));
        return page;
      });
      await Promise.all(pages.map((page) => new Promise((resolve) => page.once('response', resolve))));
      // The dropped bodies' timers (and the queue's wait) never fire from here: only a cancel frees a stream.
      vi.useFakeTimers({ toFake: ['setTimeout'] });
      for (const page of pages) dropBody(page);
      let served = 0;
      const next = () => void pool.reserve().then(() => (served += 1), () => undefined);
      // A PING answered on each session: the server has read every frame sent before it, a cancel included.
      const serverHasRead = () => Promise.all(sessions.map((session) => new Promise((resolve) => session.ping(resolve))));

      next();
      expect(await until(() => served === 1, 3_000), 'the first waiting request served').toBe(true);
      await serverHasRead();
      expect(cancelled).toEqual(['/page0']);

      next();
      expect(await until(() => served === 2, 3_000), 'the second waiting request served').toBe(true);
      await serverHasRead();
      expect(cancelled).toEqual(['/page0', '/page1']);
      expect(pages.map((page) => page.closed)).toEqual([true, true, false, false]);
    } finally {
      vi.useRealTimers();
      await pool.close(0);
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('cancelStream on a session that carries other streams', () => {
  let server: Http2Server | undefined;
  let pool: Http2SessionPool | undefined;

  afterEach(async () => {
    await pool?.close(0);
    if (server) await new Promise((resolve) => server!.close(resolve));
    server = pool = undefined;
  });

  /** An upstream that holds every stream, writes `part-` on `/long` (`finishLong` ends it), and counts the streams it got. */
  async function holdingUpstream(): Promise<{ port: number; seen: () => number; finishLong: () => void }> {
    let seen = 0;
    let finishLong: (() => void) | undefined;
    server = createServer((request, response) => {
      request.on('error', () => undefined);
      response.on('error', () => undefined);
      if (request.url === '/long') {
        response.write('part-');
        finishLong = () => response.end('whole');
      }
    });
    server.on('stream', () => (seen += 1));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, seen: () => seen, finishLong: () => finishLong?.() };
  }

  /** The long stream (a gRPC watch, say) on the pool's first session, once the upstream has it. */
  async function openLong(sessions: Http2SessionPool, seen: () => number) {
    const first = await sessions.reserve();
    const long = first.request({ ':path': '/long' }, { endStream: true });
    long.on('error', () => undefined);
    long.on('close', () => sessions.release(first));
    expect(await until(() => seen() === 1, 3_000)).toBe(true);
    return { first, long };
  }

  /** Clients cancelling calls in bulk: 100 streams, each reset (RST_STREAM CANCEL) once the upstream has them all. */
  async function cancelHundred(sessions: Http2SessionPool, seen: () => number): Promise<void> {
    const streams: ClientHttp2Stream[] = [];
    for (let index = 0; index < 100; index += 1) {
      const live = await sessions.reserve();
      const stream = live.request({ ':path': '/hold' }, { endStream: true });
      stream.on('error', () => undefined);
      stream.on('close', () => sessions.release(live));
      streams.push(stream);
    }
    const expected = seen() + 100;
    expect(await until(() => seen() === expected, 3_000), `${seen()} of ${expected} streams reached the server`).toBe(true);
    for (const stream of streams) cancelStream(stream);
  }

  it("retires a session before its resets trip the upstream's Rapid Reset limit, so the streams still on it finish", async () => {
    const upstream = await holdingUpstream();
    pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${upstream.port}`, connectTimeoutMs: 2_000, tls: undefined }, { maxSessions: 8, idleMs: 60_000 });
    const { long } = await openLong(pool, upstream.seen);
    const longBody = new Promise<string>((resolve) => {
      let body = '';
      long.setEncoding('utf8');
      long.on('data', (chunk: string) => (body += chunk));
      long.on('error', (error: Error) => resolve(`${body} ${error.message}`));
      long.on('end', () => resolve(body));
    });
    // 12 rounds of 100.
    for (let round = 0; round < 12; round += 1) await cancelHundred(pool, upstream.seen);
    // Without the retirement the server answered the 1,000th-odd reset with GOAWAY and the long stream was reset with it.
    upstream.finishLong();
    expect(await longBody).toBe('part-whole');
  });

  it("keeps a session whose resets come no faster than the upstream's defence forgives them, so a capped pool does not fill with retired sessions", async () => {
    const upstream = await holdingUpstream();
    // One session allowed (`concurrency.maxConnections: 1`): a retired one held open by its long stream leaves no room for a new one.
    pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${upstream.port}`, connectTimeoutMs: 1_000, tls: undefined }, { maxSessions: 1, idleMs: 60_000 });
    const { first } = await openLong(pool, upstream.seen);
    // A busy service's ordinary cancellations: 600 in rounds of 100, ten seconds apart on the gateway's clock.
    const realNow = performance.now.bind(performance);
    let skewMs = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => realNow() + skewMs);
    try {
      for (let round = 0; round < 6; round += 1) {
        await cancelHundred(pool, upstream.seen);
        skewMs += 10_000;
      }
    } finally {
      vi.restoreAllMocks();
    }
    // Counted for good, the 500th retired the session, and this request waited for a stream until the connect timeout (503 pool-full).
    expect(first.closed).toBe(false);
    expect(await pool.reserve()).toBe(first);
    pool.release(first);
  });

  it('keeps a session it could not replace (the pool at maxSessions, no other session open), so a burst of resets does not leave every request waiting for a long stream to end', async () => {
    const upstream = await holdingUpstream();
    // `concurrency.maxConnections: 1` and a gRPC watch on the one session.
    pool = new Http2SessionPool({ host: '127.0.0.1', address: `127.0.0.1:${upstream.port}`, connectTimeoutMs: 1_000, tls: undefined }, { maxSessions: 1, idleMs: 60_000 });
    const { first } = await openLong(pool, upstream.seen);
    // A client that cancels 600 calls at once (a burst, under the instance's own limit of 1,000).
    for (let round = 0; round < 6; round += 1) await cancelHundred(pool, upstream.seen);
    // Retired, the session kept the pool's one place for as long as the long stream lived: this
    // request waited for a stream until the connect timeout (503 pool-full), as would every other.
    expect(await pool.reserve()).toBe(first);
    pool.release(first);
    expect(first.closed).toBe(false);
  });
});
