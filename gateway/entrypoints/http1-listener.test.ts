import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import { rootLogger } from '../../src/logger.ts';
import { LISTENER_ANSWER, QUEUED_WHEN_CLOSED, type AnsweredResponse, type QueuedResponse } from '../context.ts';
import { GatewayListener, MAX_HEADER_FIELDS } from './http1-listener.ts';
import type { ListenerRefusal } from './http1-refusal.ts';

const LIMITS = { maxHeaderSize: 16_384, headersTimeoutMs: 10_000, requestTimeoutMs: 0, keepAliveTimeoutMs: 5_000 };

describe('GatewayListener in-flight bookkeeping', () => {
  let listener: GatewayListener | undefined;
  afterEach(async () => {
    await listener?.drain(1_000);
  });

  it('counts each open response once and forgets it when it ends or its connection breaks', async () => {
    const held: ServerResponse[] = [];
    listener = new GatewayListener({ request: (_request, response) => void held.push(response as ServerResponse), upgrade: () => undefined, refused: () => undefined }, LIMITS, rootLogger);
    const port = await listener.listen('127.0.0.1', 0);
    const send = () => {
      const request = httpRequest({ host: '127.0.0.1', port, path: '/', agent: false });
      const answered = new Promise<number>((resolve) => request.on('response', (response) => (response.resume(), resolve(response.statusCode ?? 0))));
      request.on('error', () => undefined);
      request.end();
      return { request, answered };
    };
    const [first, second, third] = [send(), send(), send()];
    await waitFor(() => held.length === 3, { timeoutMs: 5_000, message: 'three requests dispatched' });
    expect(listener.inFlight).toBe(3);
    held[0]!.end('ok');
    expect(await first.answered).toBe(200);
    await waitFor(() => listener!.inFlight === 2, { timeoutMs: 5_000, message: 'the answered request no longer in flight' });
    // A client that goes away: its response closes with the connection, and is counted out once.
    second.request.destroy();
    await waitFor(() => listener!.inFlight === 1, { timeoutMs: 5_000, message: 'the broken request no longer in flight' });
    held[2]!.end('ok');
    expect(await third.answered).toBe(200);
    await waitFor(() => listener!.inFlight === 0, { timeoutMs: 5_000, message: 'nothing in flight' });
  });

  it('closes, once each, every response of pipelined requests when their connection breaks, the ones queued behind the first included', async () => {
    const held: ServerResponse[] = [];
    const closes = new Map<string, number>();
    listener = new GatewayListener({
      request: (request, response) => {
        held.push(response as ServerResponse);
        response.on('close', () => closes.set(request.url!, (closes.get(request.url!) ?? 0) + 1));
      },
      upgrade: () => undefined,
      refused: () => undefined,
    }, LIMITS, rootLogger);
    const port = await listener.listen('127.0.0.1', 0);
    const client = connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(['/1', '/2', '/3'].map((path) => `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`).join(''));
    await waitFor(() => held.length === 3, { timeoutMs: 5_000, message: 'three pipelined requests dispatched' });
    client.resetAndDestroy();
    // Node closed only the first (the one holding the socket): the two queued behind it heard nothing.
    await waitFor(() => closes.size === 3, { timeoutMs: 5_000, message: 'every response closed' });
    expect(held.map((response) => response.destroyed)).toEqual([true, true, true]);
    // Only those two were never given the connection: nothing written into them can have reached the client.
    expect(held.map((response) => (response as QueuedResponse)[QUEUED_WHEN_CLOSED])).toEqual([undefined, true, true]);
    expect(listener.inFlight).toBe(0);
    // An answer the gateway would still write goes nowhere, and closes nothing a second time.
    for (const response of held) response.end('late');
    await new Promise((resolve) => setImmediate(resolve));
    expect(Object.fromEntries(closes)).toEqual({ '/1': 1, '/2': 1, '/3': 1 });
  });

  it("tells every live connection's unanswered response to close when draining, whichever connections went before", async () => {
    const held: ServerResponse[] = [];
    const own = new GatewayListener({ request: (_request, response) => void held.push(response as ServerResponse), upgrade: () => undefined, refused: () => undefined }, LIMITS, rootLogger);
    listener = own;
    const port = await own.listen('127.0.0.1', 0);
    const requests = [0, 1, 2, 3, 4].map(() => {
      const request = httpRequest({ host: '127.0.0.1', port, path: '/', agent: false });
      request.on('response', (response) => response.resume());
      request.on('error', () => undefined);
      request.end();
      return request;
    });
    await waitFor(() => held.length === 5, { timeoutMs: 5_000, message: 'five requests dispatched' });
    // The oldest, a middle one and the newest connection go away: the list loses its both ends and a middle.
    const gone = new Set([held[0]!, held[2]!, held[4]!].map((response) => response.req.socket.remotePort));
    for (const request of requests) if (gone.has(request.socket?.localPort)) request.destroy();
    await waitFor(() => own.inFlight === 2, { timeoutMs: 5_000, message: 'three connections forgotten' });
    const drained = own.drain(5_000);
    const live = held.filter((response) => !response.destroyed);
    expect(live).toHaveLength(2);
    expect(live.map((response) => response.getHeader('connection'))).toEqual(['close', 'close']);
    for (const response of live) response.end('bye');
    await drained;
    listener = undefined;
    expect(own.inFlight).toBe(0);
  });
});

describe('GatewayListener answers to CONNECT while it drains', () => {
  let listener: GatewayListener | undefined;
  afterEach(async () => {
    await listener?.drain(1_000);
  });

  /** A listener whose handler holds every response, the server sockets it accepted, and a client connection whose bytes are collected. */
  async function started(refusals: ListenerRefusal[]) {
    const held: ServerResponse[] = [];
    const own = new GatewayListener({ request: (_request, response) => void held.push(response as ServerResponse), upgrade: () => undefined, refused: (refusal) => void refusals.push(refusal) }, LIMITS, rootLogger);
    listener = own;
    const accepted: Socket[] = [];
    own.server.on('connection', (socket: Socket) => void accepted.push(socket));
    const client = connect(await own.listen('127.0.0.1', 0), '127.0.0.1');
    let answer = '';
    client.on('data', (chunk: Buffer) => void (answer += chunk.toString('latin1'))).on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    let sent = 0;
    /** Writes `text` and waits until the listener has read all that was written. */
    const send = async (text: string) => {
      sent += Buffer.byteLength(text);
      client.write(text);
      await waitFor(() => accepted[0] !== undefined && accepted[0].bytesRead === sent, { timeoutMs: 5_000, message: 'the listener to read what was sent' });
    };
    return { own, held, send, closed, answer: () => answer };
  }

  it('answers a CONNECT whose head ends while the listener drains with 405, where it cut the connection unanswered', async () => {
    const refusals: ListenerRefusal[] = [];
    const { own, send, closed, answer } = await started(refusals);
    // A head begun before the drain: the connection is not idle, so the drain leaves it open.
    await send('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n');
    const drained = own.drain(5_000);
    await send('\r\n');
    await closed;
    await drained;
    listener = undefined;
    expect(answer()).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    // RFC 9110 §15.5.6: a 405 says which methods are served, here every standard one but CONNECT.
    expect(answer()).toMatch(/\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n/);
    expect(refusals).toMatchObject([{ status: 405, method: 'CONNECT', target: 'example.test:443' }]);
  });

  it('sends the answer of a request in flight when the listener drains before closing, and leaves a CONNECT pipelined behind it unanswered', async () => {
    const refusals: ListenerRefusal[] = [];
    const { own, held, send, closed, answer } = await started(refusals);
    await send('GET /held HTTP/1.1\r\nHost: a\r\n\r\n');
    await waitFor(() => held.length === 1, { timeoutMs: 5_000, message: 'the request dispatched' });
    const drained = own.drain(5_000);
    await send('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    held[0]!.end('ok');
    await closed;
    await drained;
    listener = undefined;
    // The drain's answer closes the connection: RFC 9112 §9.6 has nothing after it processed.
    expect(answer()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*connection: close\r\n[^]*\r\n\r\nok$/i);
    expect(refusals).toEqual([]);
  });
});

describe('GatewayListener refusals of malformed requests', () => {
  let listener: GatewayListener | undefined;
  afterEach(async () => {
    await listener?.drain(1_000);
  });

  /**
   * A listener on port 0 that records the targets it dispatches (`arrived`: requests and upgrades,
   * each upgrade's socket closed at once) and the answers it refuses with; each request is answered
   * `ok` once its body is read, as the proxy reads it (so a 100 Continue goes out then).
   */
  const recordingListener = async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    const request = (incoming: IncomingMessage, response: ServerResponse) => {
      arrived.push(incoming.url ?? '');
      incoming.resume();
      incoming.once('end', () => response.end('ok'));
    };
    const upgrade = (incoming: IncomingMessage, socket: Duplex) => void (arrived.push(incoming.url ?? ''), socket.destroy());
    listener = new GatewayListener({ request, upgrade, refused: (refusal) => void refusals.push(refusal) }, LIMITS, rootLogger);
    return { port: await listener.listen('127.0.0.1', 0), arrived, refusals };
  };

  /** Sends `text` on a new connection and returns all the listener answers before it closes the connection. */
  async function exchange(port: number, text: string): Promise<string> {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => void (answer += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    const deadline = setTimeout(() => socket.destroy(), 5_000);
    await new Promise((resolve) => socket.on('close', resolve).write(text));
    clearTimeout(deadline);
    return answer;
  }

  const BIG_HEADER = `X-Big: ${'a'.repeat(4_096)}`;
  it.each([
    { name: 'a request head over maxHeaderSize', text: `GET /big?key=k HTTP/1.1\r\nHost: a\r\n${BIG_HEADER}\r\n\r\n`, status: 431, error: 'header-too-large', method: undefined, target: undefined },
    { name: 'a head not finished within headersTimeout', text: 'GET /slow HTTP/1.1\r\nHost: a\r\n', status: 408, error: 'request-timeout', method: undefined, target: undefined },
    { name: 'a malformed request line', text: 'GARBAGE\r\n\r\n', status: 400, error: 'bad-request', method: undefined, target: undefined },
    { name: 'a chunked body that fails to parse behind its head', text: 'POST /chunks?a=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', status: 400, error: 'bad-request', method: 'POST', target: '/chunks?a=1' },
  ])('answers $name with $status and the error code $error, and reports that answer once', async ({ text, status, error, method, target }) => {
    const limits = { ...LIMITS, maxHeaderSize: 1_024, headersTimeoutMs: 300 };
    const refusals: ListenerRefusal[] = [];
    listener = new GatewayListener({ request: (_request, response) => void response.end('ok'), upgrade: () => undefined, refused: (refusal) => void refusals.push(refusal) }, limits, rootLogger);
    const answer = await exchange(await listener.listen('127.0.0.1', 0), text);
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
    expect(JSON.parse(body)).toMatchObject({ error, status });
    // Method and target only from a head Node parsed: never from a head too large.
    expect(refusals).toEqual([{ status, error, bytes: Buffer.byteLength(body), clientAddress: '127.0.0.1', method, target }]);
  });

  it('refuses a transfer coding other than chunked with 501 and one on HTTP/1.0 with 400, in its place among pipelined answers, and dispatches neither', async () => {
    const { port, arrived, refusals } = await recordingListener();
    const chunked = (path: string, version: string, codings: string, extra = '') => `POST ${path} HTTP/${version}\r\nHost: a\r\nTransfer-Encoding: ${codings}\r\n${extra}\r\n2\r\nhi\r\n0\r\n\r\n`;
    const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1]);
    const answers = [
      // Pipelined behind a request it may serve (`chunked` in any case): that one is answered first.
      await exchange(port, chunked('/served', '1.1', 'Chunked') + chunked('/gzip', '1.1', 'gzip, chunked')),
      // No 100 Continue for a body it will not take.
      await exchange(port, chunked('/expecting', '1.1', 'deflate, chunked', 'Expect: 100-continue\r\n')),
      await exchange(port, chunked('/old', '1.0', 'chunked')),
    ];
    expect(answers.map(statuses)).toEqual([['200', '501'], ['501'], ['400']]);
    expect(arrived).toEqual(['/served']);
    const body = (answer: string) => answer.slice(answer.lastIndexOf('\r\n\r\n') + 4);
    expect(JSON.parse(body(answers[0]!))).toEqual({ error: 'unsupported-transfer-coding', status: 501, message: 'Not Implemented' });
    const refusal = { clientAddress: '127.0.0.1', method: 'POST' };
    expect(refusals).toEqual([
      { ...refusal, status: 501, error: 'unsupported-transfer-coding', bytes: Buffer.byteLength(body(answers[0]!)), target: '/gzip' },
      { ...refusal, status: 501, error: 'unsupported-transfer-coding', bytes: Buffer.byteLength(body(answers[1]!)), target: '/expecting' },
      { ...refusal, status: 400, error: 'bad-request', bytes: Buffer.byteLength(body(answers[2]!)), target: '/old' },
    ]);
  });

  it('refuses a request line of HTTP/2.0 or HTTP/0.9 with 505, an upgrade (WebSocket) too, and dispatches none', async () => {
    const { port, arrived, refusals } = await recordingListener();
    const answers = [
      await exchange(port, 'GET /two HTTP/2.0\r\nHost: a\r\n\r\n'),
      await exchange(port, 'GET /nine\r\n\r\n'),
      // Node's parser takes an upgrade's HTTP/2.0 request line too, and hands it to 'upgrade' (nginx answers 505).
      await exchange(port, 'GET /socket HTTP/2.0\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
      await exchange(port, 'GET /one HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
    ];
    expect(answers.map((answer) => answer.slice(0, 12))).toEqual(['HTTP/1.1 505', 'HTTP/1.1 505', 'HTTP/1.1 505', 'HTTP/1.1 200']);
    expect(JSON.parse(answers[0]!.slice(answers[0]!.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'http-version-not-supported', status: 505, message: 'HTTP Version Not Supported' });
    expect(arrived).toEqual(['/one']);
    expect(refusals.map(({ status, error, target }) => ({ status, error, target }))).toEqual([
      { status: 505, error: 'http-version-not-supported', target: '/two' },
      { status: 505, error: 'http-version-not-supported', target: '/nine' },
      { status: 505, error: 'http-version-not-supported', target: '/socket' },
    ]);
  });

  it('refuses an HTTP/1.1 request or upgrade without Host with its own 400, reported, where node answered a bare 400 nobody heard of', async () => {
    const { port, arrived, refusals } = await recordingListener();
    const answers = [
      await exchange(port, 'GET /hostless HTTP/1.1\r\n\r\n'),
      await exchange(port, 'GET /socket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
      // HTTP/1.0 needs no Host.
      await exchange(port, 'GET /old HTTP/1.0\r\n\r\n'),
    ];
    expect(answers.map((answer) => answer.slice(0, 12))).toEqual(['HTTP/1.1 400', 'HTTP/1.1 400', 'HTTP/1.1 200']);
    expect(JSON.parse(answers[0]!.slice(answers[0]!.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'bad-request', status: 400, message: 'Bad Request' });
    expect(arrived).toEqual(['/old']);
    expect(refusals.map(({ status, error, target }) => ({ status, error, target }))).toEqual([
      { status: 400, error: 'bad-request', target: '/hostless' },
      { status: 400, error: 'bad-request', target: '/socket' },
    ]);
  });

  it('holds an Expect field to meetsExpectation: 100 Continue to 100-continue in any case, 417 to 100-continue beside another expectation', async () => {
    // The handler reads the body, as the proxy does: the 100 Continue goes out then (continueOnFirstRead).
    const { port, arrived, refusals } = await recordingListener();
    const post = (path: string, expectation: string) => `POST ${path} HTTP/1.1\r\nHost: a\r\nExpect: ${expectation}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`;
    // Node's own rule sent 100 Continue to both, and dispatched both.
    const [capitals, more] = [await exchange(port, post('/capitals', '100-Continue')), await exchange(port, post('/more', '100-continue, foo'))];
    expect([...capitals.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1])).toEqual(['100', '200']);
    expect([...more.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1])).toEqual(['417']);
    expect(arrived).toEqual(['/capitals']);
    expect(refusals).toEqual([{ status: 417, error: 'expectation-failed', bytes: Buffer.byteLength(more.slice(more.indexOf('\r\n\r\n') + 4)), clientAddress: '127.0.0.1', method: 'POST', target: '/more' }]);
  });

  it('sends no 100 Continue to a request answered before its body is read, and one to a request whose body is read', async () => {
    listener = new GatewayListener(
      {
        request: (incoming, response) => {
          if (incoming.url === '/refused') return void response.writeHead(413, { connection: 'close' }).end('too large');
          incoming.resume();
          incoming.once('end', () => response.end('ok'));
        },
        upgrade: () => undefined,
        refused: () => undefined,
      },
      LIMITS,
      rootLogger,
    );
    const port = await listener.listen('127.0.0.1', 0);
    // Heads alone: a client that waits for the 100 Continue (RFC 9110 §10.1.1) sends no body before it.
    const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1]);
    const refused = await exchange(port, 'POST /refused HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n');
    expect(statuses(refused)).toEqual(['413']);
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write('hi');
    });
    socket.write('POST /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    expect(statuses(text)).toEqual(['100', '200']);
  });

  it('refuses a head of more than MAX_HEADER_FIELDS fields with 431 header-too-large in its place, where node 20 kept 2,000 fields and dropped the rest unseen', async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    let upgrades = 0;
    listener = new GatewayListener(
      {
        request: (request, response) => (arrived.push(`${request.url ?? ''} ${request.rawHeaders.length / 2}`), void response.end('ok')),
        upgrade: (_request, socket) => (upgrades += 1, void socket.destroy()),
        refused: (refusal) => void refusals.push(refusal),
      },
      // Room for 2,500 short fields: the count is what refuses them, not the size.
      { ...LIMITS, maxHeaderSize: 65_536 },
      rootLogger,
    );
    const port = await listener.listen('127.0.0.1', 0);
    // `fields` header fields in all, Host and the given ones included.
    const head = (line: string, fields: number, ...given: string[]) => {
      const lines = [line, 'Host: a', ...given];
      for (let index = lines.length - 1; index < fields; index += 1) lines.push(`x-${index}: v`);
      return `${lines.join('\r\n')}\r\n\r\n`;
    };
    const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d+) /g)].map((match) => match[1]);
    const atLimit = await exchange(port, head('GET /at-limit HTTP/1.1', MAX_HEADER_FIELDS, 'Connection: close'));
    // Pipelined behind a request within the limit: that one is answered first, and the connection closes after the 431.
    const pipelined = await exchange(port, head('GET /before HTTP/1.1', 2) + head('GET /one-over HTTP/1.1', MAX_HEADER_FIELDS + 1) + head('GET /after HTTP/1.1', 2));
    const many = await exchange(port, head('GET /many HTTP/1.1', 2_500, 'Connection: close'));
    // Refused before any 100 Continue, and before an upgrade is handed over.
    const expecting = await exchange(port, head('POST /expecting HTTP/1.1', MAX_HEADER_FIELDS + 1, 'Expect: 100-continue', 'Content-Length: 2'));
    const upgrade = await exchange(port, head('GET /upgrade HTTP/1.1', MAX_HEADER_FIELDS + 1, 'Connection: Upgrade', 'Upgrade: websocket'));
    // The other ways a head takes past 'request': an Expect other than 100-continue (417 else), a CONNECT (405 else).
    const otherExpectation = await exchange(port, head('POST /other-expectation HTTP/1.1', MAX_HEADER_FIELDS + 1, 'Expect: 200-ok', 'Content-Length: 2'));
    const connect = await exchange(port, head('CONNECT example.test:443 HTTP/1.1', MAX_HEADER_FIELDS + 1));
    expect([atLimit, pipelined, many, expecting, upgrade, otherExpectation, connect].map(statuses)).toEqual([['200'], ['200', '431'], ['431'], ['431'], ['431'], ['431'], ['431']]);
    expect(many).toMatch(/\r\nconnection: close\r\n/);
    expect(arrived).toEqual([`/at-limit ${MAX_HEADER_FIELDS}`, '/before 2']);
    expect(upgrades).toBe(0);
    const body = many.slice(many.indexOf('\r\n\r\n') + 4);
    expect(JSON.parse(body)).toMatchObject({ error: 'header-too-large', status: 431 });
    // Node 20's parser keeps the head's first fields and the listener refuses it, its head known; Node 24's refuses
    // a head past maxHeadersCount (one more than the limit) itself, as a parse error, so nothing of it is known.
    const manyHead = process.versions.node.startsWith('20.') ? ['GET', '/many'] : [undefined, undefined];
    expect(refusals).toEqual(
      [
        ['GET', '/one-over'],
        manyHead,
        ['POST', '/expecting'],
        ['GET', '/upgrade'],
        ['POST', '/other-expectation'],
        ['CONNECT', 'example.test:443'],
      ].map(([method, target]) => ({ status: 431, error: 'header-too-large', bytes: Buffer.byteLength(body), clientAddress: '127.0.0.1', method, target })),
    );
  });

  it('answers a HEAD it refuses with the head alone and reports 0 bytes of body: a refused expectation, a body that fails to parse', async () => {
    const refusals: ListenerRefusal[] = [];
    listener = new GatewayListener({ request: (_request, response) => void response.end('ok'), upgrade: () => undefined, refused: (refusal) => void refusals.push(refusal) }, LIMITS, rootLogger);
    const port = await listener.listen('127.0.0.1', 0);
    const expectation = await exchange(port, 'HEAD /expect HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n');
    const badChunk = await exchange(port, 'HEAD /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    expect(expectation).toMatch(/^HTTP\/1\.1 417 [^]*\r\ncontent-length: 74\r\n[^]*\r\n\r\n$/);
    expect(badChunk).toMatch(/^HTTP\/1\.1 400 [^]*\r\ncontent-length: 60\r\n[^]*\r\n\r\n$/);
    expect(refusals).toEqual([
      { status: 417, error: 'expectation-failed', bytes: 0, clientAddress: '127.0.0.1', method: 'HEAD', target: '/expect' },
      { status: 400, error: 'bad-request', bytes: 0, clientAddress: '127.0.0.1', method: 'HEAD', target: '/chunks' },
    ]);
  });

  it('reports no refusal for a dispatched request whose body fails, but leaves the answer on its response for its handler to log and count', async () => {
    const refusals: ListenerRefusal[] = [];
    const held: ServerResponse[] = [];
    listener = new GatewayListener({ request: (_request, response) => void held.push(response as ServerResponse), upgrade: () => undefined, refused: (refusal) => void refusals.push(refusal) }, LIMITS, rootLogger);
    const socket = connect(await listener.listen('127.0.0.1', 0), '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => void (answer += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write('POST /held HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await waitFor(() => held.length === 1, { timeoutMs: 5_000, message: 'the request dispatched' });
    socket.write('zz\r\n');
    await waitFor(() => answer !== '', { timeoutMs: 5_000, message: 'an answer' });
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(refusals).toEqual([]);
    // Left on its response instead, for its handler to record as the request's outcome.
    expect((held[0] as AnsweredResponse)[LISTENER_ANSWER]).toEqual({ status: 400, error: 'bad-request', bytes: Buffer.byteLength(answer.slice(answer.indexOf('\r\n\r\n') + 4)) });
  });
});
