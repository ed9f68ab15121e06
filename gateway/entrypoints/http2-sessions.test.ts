import { constants } from 'node:http2';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/harness/wait.ts';
import { LISTENER_ANSWER, type AnsweredResponse, type ClientResponse } from '../context.ts';
import type { ListenerRefusal } from './http1-refusal.ts';
import { MAX_HEADER_FIELDS } from './http1-listener.ts';
import { continuedGet, startPlainHttp2, type PlainHttp2 } from './http2-testing.ts';

describe('Http2Sessions', () => {
  let started: PlainHttp2 | undefined;
  afterEach(() => started?.close());

  /** Sessions over plaintext (prior knowledge) whose handler holds every response until the test ends it. */
  async function start(): Promise<PlainHttp2 & { held: ClientResponse[] }> {
    const held: ClientResponse[] = [];
    started = await startPlainHttp2((_request, response) => void held.push(response));
    return { ...started, held };
  }

  it('counts a request in flight until its response closes, whichever side ends it', async () => {
    const { sessions, held, client } = await start();
    // The last is a HEAD: node:http2's response never emits 'close' for one reset before its answer ends.
    const streams = ['/a', '/b', '/c', '/d'].map((path) => client.request({ ':path': path, ':method': path === '/d' ? 'HEAD' : 'GET' }));
    for (const stream of streams) stream.on('error', () => undefined).resume();
    await waitFor(() => held.length === 4, { timeoutMs: 5_000, message: 'four requests to arrive' });
    expect(sessions.inFlight).toBe(4);

    held[0]!.end('done');
    streams[1]!.close(constants.NGHTTP2_CANCEL);
    await waitFor(() => sessions.inFlight === 2, { timeoutMs: 5_000, message: 'two requests to be left in flight' });

    // A session that goes away takes its open streams with it.
    client.destroy();
    await waitFor(() => sessions.inFlight === 0, { timeoutMs: 5_000, message: 'no request left in flight' });
    // Each response is counted out once, however many ways it ended.
    held[2]!.end();
    expect(sessions.inFlight).toBe(0);
  });

  it("closes a HEAD request's response once when its stream is reset before any answer", async () => {
    const { held, client } = await start();
    const closes = [0, 0];
    const streams = ['HEAD', 'GET'].map((method) => client.request({ ':path': '/', ':method': method }, { endStream: true }));
    for (const stream of streams) stream.on('error', () => undefined).resume();
    await waitFor(() => held.length === 2, { timeoutMs: 5_000, message: 'both requests to arrive' });
    held.forEach((response, index) => response.on('close', () => (closes[index]! += 1)));
    for (const stream of streams) stream.close(constants.NGHTTP2_CANCEL);
    await waitFor(() => closes[0] === 1 && closes[1] === 1, { timeoutMs: 5_000, message: "both responses' 'close'" });
    expect(held[0]!.destroyed).toBe(true);

    // The gateway's end() after the close, as the proxy's when the upstream's answer ends, neither
    // closes the response again nor counts as an answer that ended.
    for (const response of held) response.end();
    await new Promise((resolve) => setImmediate(resolve));
    expect(closes).toEqual([1, 1]);
    expect(held.map((response) => response.writableEnded)).toEqual([false, false]);
  });

  it('counts headers that end the stream (a HEAD request, a 204) as an ended answer before end() is called', async () => {
    const { held, client } = await start();
    const streams = ['HEAD', 'GET'].map((method) => client.request({ ':path': '/', ':method': method }, { endStream: true }));
    const ended = streams.map((stream) => new Promise((resolve) => stream.on('error', () => undefined).on('end', resolve).resume()));
    await waitFor(() => held.length === 2, { timeoutMs: 5_000, message: 'both requests to arrive' });
    // node:http2 sends these headers with END_STREAM: the client has the whole answer, and the
    // stream closes, before the gateway (waiting for an upstream's last frame) calls end().
    held[0]!.writeHead(200, { 'content-length': '5' });
    held[1]!.writeHead(204);
    await Promise.all(ended);
    await waitFor(() => held.every((response) => response.destroyed), { timeoutMs: 5_000, message: 'both streams closed' });
    expect(held.map((response) => response.writableEnded)).toEqual([true, true]);
  });

  it('answers a request whose body has not arrived within requestTimeout with 408 request-timeout, left on its response for its handler to record', async () => {
    const held: ClientResponse[] = [];
    started = await startPlainHttp2((_request, response) => void held.push(response), { requestTimeoutMs: 200 });
    // The body never ends: the stream stays open, so only the timeout can answer.
    const stream = started.client.request({ ':path': '/', ':method': 'POST' }, { endStream: false });
    stream.on('error', () => undefined);
    stream.write('partial');
    const status = new Promise<number>((resolve) => stream.on('response', (headers) => resolve(Number(headers[':status']))));
    let body = '';
    stream.on('data', (chunk: Buffer) => void (body += chunk.toString()));
    const ended = new Promise((resolve) => stream.on('close', resolve));
    expect(await status).toBe(408);
    await ended;
    expect(JSON.parse(body)).toMatchObject({ error: 'request-timeout', status: 408 });
    // The handler's access line and metrics read this answer, not the `499 cancelled` its proxy ends with.
    expect((held[0] as AnsweredResponse)[LISTENER_ANSWER]).toEqual({ status: 408, error: 'request-timeout', bytes: Buffer.byteLength(body) });
  });

  it('leaves a request that arrived whole in its HEADERS frame to its handler past requestTimeout, however long the answer takes', async () => {
    const held: ClientResponse[] = [];
    started = await startPlainHttp2((_request, response) => void held.push(response), { requestTimeoutMs: 100 });
    // A GET the handler never reads (the proxy reads no body of a request without one), answered slowly.
    const stream = started.client.request({ ':path': '/slow', ':method': 'GET' }, { endStream: true });
    stream.on('error', () => undefined);
    const status = new Promise<number>((resolve) => stream.on('response', (headers) => resolve(Number(headers[':status']))));
    let body = '';
    stream.on('data', (chunk: Buffer) => void (body += chunk.toString()));
    const ended = new Promise((resolve) => stream.on('close', resolve));
    await waitFor(() => held.length === 1, { timeoutMs: 5_000, message: 'the request to arrive' });
    // A POST whose body never ends, sent after it: its 408 comes from a timer set later for as long,
    // so by then the GET's would have fired too.
    const upload = started.client.request({ ':path': '/upload', ':method': 'POST' }, { endStream: false });
    upload.on('error', () => undefined).write('partial');
    expect(await new Promise<number>((resolve) => upload.on('response', (headers) => resolve(Number(headers[':status']))))).toBe(408);
    expect([stream.closed, held[0]!.headersSent]).toEqual([false, false]);
    held[0]!.end('slow but whole');
    expect(await status).toBe(200);
    await ended;
    expect([body, stream.rstCode]).toEqual(['slow but whole', constants.NGHTTP2_NO_ERROR]);
  });

  it('resets a request head over maxHeaderSize with ENHANCE_YOUR_CALM from the first request, and reports each reset, before the client has acknowledged its SETTINGS and after', async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    started = await startPlainHttp2((request, response) => {
      arrived.push(request.url ?? '');
      response.end();
    }, { maxHeaderSize: 1_024 }, (refusal) => void refusals.push(refusal));
    const { client } = started;
    /** Sends a GET whose header list is `size` by RFC 7541's count, padded by one header; resolves with the stream's reset code (0: answered). */
    const send = (path: string, size: number) => {
      const headers = { ':method': 'GET', ':path': path, ':scheme': 'http', ':authority': 'gw.test' };
      const used = Object.entries(headers).reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0) + 'x-pad'.length + 32;
      const stream = client.request({ ...headers, 'x-pad': 'a'.repeat(size - used) });
      stream.on('error', () => undefined).resume();
      return new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1)));
    };
    // node:http2's client sends these with its preface, before it has read the gateway's SETTINGS and
    // acknowledged them: a head at the limit is served, one byte over and 4 KB are reset.
    const { NGHTTP2_ENHANCE_YOUR_CALM: calm } = constants;
    expect(await Promise.all([send('/at-limit', 1_024), send('/one-over', 1_025), send('/big', 4_096)])).toEqual([0, calm, calm]);
    // The client has read the gateway's SETTINGS (their maxConcurrentStreams, where the default is unlimited),
    // so it acknowledged them before it sends more: the same answers.
    expect(client.remoteSettings.maxConcurrentStreams).toBe(128);
    expect(await Promise.all([send('/at-limit-later', 1_024), send('/one-over-later', 1_025), send('/big-later', 20_000)])).toEqual([0, calm, calm]);
    expect(arrived).toEqual(['/at-limit', '/at-limit-later']);
    // A report per reset, those after the acknowledgement too (node:http2 held streams to the acknowledged
    // limit itself and told JavaScript nothing of its resets): 431 header-too-large, no answer's bytes,
    // nothing of the head.
    const reset = { status: 431, error: 'header-too-large', bytes: 0, clientAddress: '127.0.0.1', method: undefined, target: undefined };
    expect(refusals).toEqual([reset, reset, reset, reset]);
  });

  it("resets a request whose trailers are over maxHeaderSize with ENHANCE_YOUR_CALM, after the client has acknowledged its SETTINGS too", async () => {
    const bodies: string[] = [];
    started = await startPlainHttp2((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => void (body += chunk.toString()));
      request.on('end', () => {
        bodies.push(body);
        response.end();
      });
      request.on('error', () => undefined);
    }, { maxHeaderSize: 1_024 });
    const { client } = started;
    /** A POST whose trailers carry `size` bytes in one field; resolves with the stream's reset code (0: answered). */
    const send = (size: number) => {
      const stream = client.request({ ':method': 'POST', ':path': '/upload' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 'a'.repeat(size) }));
      stream.on('error', () => undefined).resume();
      stream.end('body');
      return new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1)));
    };
    await waitFor(() => client.remoteSettings.maxConcurrentStreams === 128, { timeoutMs: 5_000, message: "the gateway's SETTINGS read" });
    const { NGHTTP2_ENHANCE_YOUR_CALM: calm } = constants;
    expect(await Promise.all([send(100), send(4_096)])).toEqual([0, calm]);
    expect(bodies).toEqual(['body']);
  });

  it('serves a head of MAX_HEADER_FIELDS fields and resets one of more, past node:http2\'s default of 128 too, reporting each reset as 431 header-too-large; trailers of more are reset', async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    started = await startPlainHttp2((request, response) => {
      arrived.push(request.url ?? '');
      request.on('error', () => undefined).resume();
      request.on('end', () => response.end());
    }, { maxHeaderSize: 1_048_576 }, (refusal) => void refusals.push(refusal));
    const { client } = started;
    /** `count` fields in all, the 4 pseudo-headers included. */
    const fields = (count: number) => Object.fromEntries(Array.from({ length: count - 4 }, (_, index) => [`x-f${index}`, 'v']));
    const closed = (stream: ReturnType<typeof client.request>) => {
      stream.on('error', () => undefined).resume();
      return new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1)));
    };
    const send = (path: string, count: number) => closed(client.request({ ':path': path, ...fields(count) }));
    const { NGHTTP2_ENHANCE_YOUR_CALM: calm } = constants;
    expect(await Promise.all([send('/129', 129), send('/at-limit', MAX_HEADER_FIELDS), send('/one-over', MAX_HEADER_FIELDS + 1)])).toEqual([0, 0, calm]);
    const reset = { status: 431, error: 'header-too-large', bytes: 0, clientAddress: '127.0.0.1', method: undefined, target: undefined };
    expect(refusals).toEqual([reset]);

    const upload = (count: number) => {
      const stream = client.request({ ':method': 'POST', ':path': `/trailers-${count}` }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers(Object.fromEntries(Array.from({ length: count }, (_, index) => [`x-t${index}`, 'v']))));
      stream.end('body');
      return closed(stream);
    };
    expect(await Promise.all([upload(MAX_HEADER_FIELDS), upload(MAX_HEADER_FIELDS + 1)])).toEqual([0, calm]);
    expect(arrived).toEqual(['/129', '/at-limit', `/trailers-${MAX_HEADER_FIELDS}`, `/trailers-${MAX_HEADER_FIELDS + 1}`]);
  });

  it('reports a header block spread over more than 8 CONTINUATION frames, which nghttp2 ends the session for, as 431 header-too-large with the peer address', async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    started = await startPlainHttp2((request, response) => {
      arrived.push(request.url ?? '');
      response.end();
    }, {}, (refusal) => void refusals.push(refusal));
    const { port } = started;
    /** A connection that sends a GET whose head spreads over `continuations` CONTINUATION frames after its HEADERS frame. */
    const send = (path: string, continuations: number) => {
      const socket = connect(port, '127.0.0.1');
      // Read, so that the gateway's close is seen.
      socket.on('error', () => undefined).resume();
      socket.write(continuedGet(path, continuations));
      return socket;
    };
    const eight = send('/eight', 8);
    await waitFor(() => arrived.length === 1, { timeoutMs: 5_000, message: 'the head in 8 CONTINUATION frames to be served' });
    eight.destroy();
    const nine = send('/nine', 9);
    await new Promise((resolve) => nine.once('close', resolve));
    await waitFor(() => refusals.length === 1, { timeoutMs: 5_000, message: 'the refusal' });
    expect(arrived).toEqual(['/eight']);
    expect(refusals).toEqual([{ status: 431, error: 'header-too-large', bytes: 0, clientAddress: '127.0.0.1', method: undefined, target: undefined }]);
  });

  it('answers CONNECT with 405 and an Expect other than 100-continue with 417 itself, reporting each with its method and target; a head over the limits is reset first, and 100 Continue is sent only to a head within them', async () => {
    const arrived: string[] = [];
    const refusals: ListenerRefusal[] = [];
    started = await startPlainHttp2((request, response) => {
      arrived.push(request.url ?? '');
      request.on('error', () => undefined).resume();
      request.on('end', () => response.end('done'));
    }, { maxHeaderSize: 1_024 }, (refusal) => void refusals.push(refusal));
    const { client } = started;
    /** The `allow` field of each answer that has one, with the request's method. */
    const allows: Array<[string | undefined, unknown]> = [];
    /** Resolves with the answer's status (or the stream's reset code), its body, and whether a 100 Continue came first. */
    const send = (headers: Record<string, string>, body?: string) => {
      const stream = client.request(headers, { endStream: body === undefined });
      let status: unknown;
      let text = '';
      let continued = false;
      stream.on('continue', () => {
        continued = true;
        stream.end(body);
      });
      stream.on('response', (answer) => {
        status = answer[':status'];
        if (answer.allow !== undefined) allows.push([headers[':method'], answer.allow]);
      });
      stream.on('error', () => undefined).on('data', (chunk: Buffer) => void (text += chunk.toString()));
      return new Promise<[unknown, string, boolean]>((resolve) => stream.on('close', () => resolve([status ?? `reset ${stream.rstCode}`, text, continued])));
    };
    const post = { ':method': 'POST', ':path': '/upload?x=1' };
    const connectAnswer = await send({ ':method': 'CONNECT', ':authority': 'example.test:443' });
    const otherAnswer = await send({ ...post, expect: 'something-else' }, 'body');
    // One rule for both listeners (meetsExpectation): 100-continue beside another expectation is refused too.
    const moreAnswer = await send({ ...post, ':path': '/more', expect: '100-continue, foo' }, 'body');
    expect([connectAnswer[0], JSON.parse(connectAnswer[1]), otherAnswer[0], JSON.parse(otherAnswer[1]), moreAnswer[0], moreAnswer[2]]).toEqual([
      405,
      { error: 'method-not-allowed', status: 405, message: 'Method Not Allowed' },
      417,
      { error: 'expectation-failed', status: 417, message: 'Expectation Failed' },
      417,
      false,
    ]);
    // RFC 9110 §15.5.6: a 405 says which methods are served, here every standard one but CONNECT and TRACE.
    expect(allows).toEqual([['CONNECT', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH']]);
    const { NGHTTP2_ENHANCE_YOUR_CALM: calm } = constants;
    const pad = 'a'.repeat(2_000);
    expect(await Promise.all([
      send({ ...post, ':path': '/continue', expect: '100-continue' }, 'body'),
      send({ ...post, ':path': '/continue-in-capitals', expect: '100-Continue' }, 'body'),
      send({ ...post, ':path': '/continue-too-large', expect: '100-continue', 'x-pad': pad }, 'body'),
      send({ ':method': 'CONNECT', ':authority': 'example.test:443', 'x-pad': pad }),
      send({ ...post, expect: 'something-else', 'x-pad': pad }, 'body'),
    ])).toEqual([[200, 'done', true], [200, 'done', true], [`reset ${calm}`, '', false], [`reset ${calm}`, '', false], [`reset ${calm}`, '', false]]);
    expect(arrived).toEqual(['/continue', '/continue-in-capitals']);
    const tooLarge = { status: 431, error: 'header-too-large', bytes: 0, clientAddress: '127.0.0.1', method: undefined, target: undefined };
    expect(refusals).toEqual([
      { status: 405, error: 'method-not-allowed', bytes: Buffer.byteLength(connectAnswer[1]), clientAddress: '127.0.0.1', method: 'CONNECT', target: 'example.test:443' },
      { status: 417, error: 'expectation-failed', bytes: Buffer.byteLength(otherAnswer[1]), clientAddress: '127.0.0.1', method: 'POST', target: '/upload?x=1' },
      { status: 417, error: 'expectation-failed', bytes: Buffer.byteLength(moreAnswer[1]), clientAddress: '127.0.0.1', method: 'POST', target: '/more' },
      tooLarge,
      tooLarge,
      tooLarge,
    ]);
  });

  it('answers a HEAD whose expectation it refuses with the 417 head alone, and reports 0 bytes of body', async () => {
    const refusals: ListenerRefusal[] = [];
    started = await startPlainHttp2((_request, response) => void response.end('ok'), {}, (refusal) => void refusals.push(refusal));
    const stream = started.client.request({ ':method': 'HEAD', ':path': '/head', expect: 'foo' });
    let received = 0;
    stream.on('data', (chunk: Buffer) => void (received += chunk.length)).on('error', () => undefined);
    const status = await new Promise<unknown>((resolve) => stream.on('response', (headers) => resolve(headers[':status'])));
    await new Promise((resolve) => stream.on('close', resolve));
    expect([status, received]).toEqual([417, 0]);
    expect(refusals).toEqual([{ status: 417, error: 'expectation-failed', bytes: 0, clientAddress: '127.0.0.1', method: 'HEAD', target: '/head' }]);
  });
});
