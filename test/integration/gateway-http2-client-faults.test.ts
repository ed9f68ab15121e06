import { readFile } from 'node:fs/promises';
import { connect, constants, createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { connect as netConnect, createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { continuedGet, http2Frame } from '../../gateway/entrypoints/http2-testing.ts';
import { peerEnded, watchPeerEnd } from '../../gateway/transports/transport-http2-peer-end.ts';
import { accessLineOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

/** What one connection to a recording upstream received, and whether it has closed. */
interface RecordedConnection {
  received: string;
  closed: boolean;
}

/**
 * A raw HTTP/1.1 upstream that keeps every byte each connection sends it, and answers 200 only once
 * a request's chunked body has ended (its last chunk, `0\r\n\r\n`), closing the connection then, so
 * that each holds one request: what it holds is what an upstream would act on.
 */
async function startRecordingUpstream(): Promise<{ server: Server; connections: RecordedConnection[] }> {
  const connections: RecordedConnection[] = [];
  const server = createServer((socket) => {
    const connection: RecordedConnection = { received: '', closed: false };
    connections.push(connection);
    socket.on('error', () => undefined).on('close', () => (connection.closed = true));
    socket.on('data', (chunk: Buffer) => {
      connection.received += chunk.toString('latin1');
      if (connection.received.endsWith('\r\n0\r\n\r\n')) socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, connections };
}

/** The chunked body a recorded connection received after its request head, without the CRLF that may end its last chunk. */
function uploadOf(connection: RecordedConnection): string {
  return connection.received.slice(connection.received.indexOf('\r\n\r\n') + 4).replace(/\r\n$/, '');
}

/** What one stream to an h2c recording upstream received, whether its request ended (END_STREAM) and how it closed. */
interface RecordedStream {
  path: string;
  received: string;
  endStream: boolean;
  closed: boolean;
  rstCode: number | undefined;
}

/**
 * An h2c upstream that keeps each stream's request body and answers 200 once it has ended with
 * END_STREAM: a request that ends is one the upstream acts on, whole; a cut one should only reset.
 * A request under `ANSWER_FIRST` is answered whole at once (a refusal before the upload's end), its
 * body still read, and its stream left open for the rest, as a node:http2 server that read it does.
 */
/** The paths `startHttp2RecordingUpstream` answers before their body has come. */
const ANSWER_FIRST = '/h2-record/answer-first';

async function startHttp2RecordingUpstream(): Promise<{ server: Http2Server; streams: RecordedStream[] }> {
  const streams: RecordedStream[] = [];
  const server = createHttp2Server();
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    // node:http2 also ends the body of a stream that closes: only its peer's END_STREAM counts.
    watchPeerEnd(stream);
    const recorded: RecordedStream = { path: String(headers[':path']), received: '', endStream: false, closed: false, rstCode: undefined };
    streams.push(recorded);
    stream.on('error', () => undefined).on('data', (chunk: Buffer) => void (recorded.received += chunk.toString('latin1')));
    if (recorded.path.startsWith(ANSWER_FIRST)) {
      stream.respond({ ':status': 200 });
      stream.end('early');
    }
    stream.on('end', () => {
      if (!peerEnded(stream) || stream.closed || stream.headersSent) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    stream.on('close', () => Object.assign(recorded, { endStream: peerEnded(stream), closed: true, rstCode: stream.rstCode }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, streams };
}

/**
 * An h2c upstream that answers at once, before the request's body has come: its head and `part-`,
 * then `rest` once the body has ended whole. An answer in flight while the client uploads (the
 * gateway passes an HTTP/1.1 upstream's answer on only once the upload has ended).
 */
async function startEarlyAnswerUpstream(): Promise<Http2Server> {
  const server = createHttp2Server((request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.write('part-');
    request.on('error', () => undefined).resume();
    request.on('end', () => response.end('rest'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('HTTP/2 clients at fault (a head over maxHeaderSize, an upload cut or stalled): answered, logged and counted, never against the upstream', () => {
  let gateway: GatewayProcess;
  let web: string;
  let recorder: Awaited<ReturnType<typeof startRecordingUpstream>>;
  let h2Recorder: Awaited<ReturnType<typeof startHttp2RecordingUpstream>>;
  let earlyAnswer: Http2Server;

  beforeAll(async () => {
    [recorder, h2Recorder, earlyAnswer] = await Promise.all([startRecordingUpstream(), startHttp2RecordingUpstream(), startEarlyAnswerUpstream()]);
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
# Short enough for an upload that stalls to be answered 408 within the test; a head size that
# 1,001 fields fit in (each counts 33 bytes or more), so that their count is what refuses them.
limits: { headersTimeout: 1s, requestTimeout: 1s, maxHeaderSize: 64KiB }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
services:
  recorder: { instances: [{ host: 127.0.0.1, port: ${(recorder.server.address() as AddressInfo).port} }], healthCheck: false, retries: false }
  h2-recorder: { protocol: h2c, instances: [{ host: 127.0.0.1, port: ${(h2Recorder.server.address() as AddressInfo).port} }], healthCheck: false, outlierDetection: false, retries: false }
  early-answer: { protocol: h2c, instances: [{ host: 127.0.0.1, port: ${(earlyAnswer.address() as AddressInfo).port} }], healthCheck: false, retries: false }
routes:
  - { path: /record, service: recorder }
  - { path: /h2-record, service: h2-recorder }
  - { path: /early-answer, service: early-answer }
`);
    web = gateway.url;
  });

  afterAll(async () => {
    await gateway?.process.stop();
    recorder?.server.close();
    h2Recorder?.server.close();
    earlyAnswer?.close();
  });

  /** Access lines of the listener's own 431 header-too-large answers so far. */
  async function refusalLines(): Promise<number> {
    return (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((line) => line.includes('"header-too-large"') && !line.includes('"requestId"')).length;
  }

  it('resets each request head over maxHeaderSize, before the client has acknowledged the SETTINGS and after, and logs and counts each reset as a 431 header-too-large that matched no route', async () => {
    const unmatched4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
    const countedBefore = await unmatched4xx();
    // node:http2's client refuses to send a header block over 64,000 bytes by default.
    const session = connect(web, { maxSendHeaderBlockLength: 1_048_576 });
    const sendBig = async (n: number) => {
      const stream = session.request({ ':path': `/api/echo/big?n=${n}`, 'x-big': 'b'.repeat(70_000) }, { endStream: true });
      stream.on('error', () => undefined).resume();
      return new Promise((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    };
    try {
      // The first is sent with the preface; the second once the first's reset is back, which came after the
      // gateway's SETTINGS, so the client has acknowledged them (node:http2 then held it to the limit itself,
      // and its reset went unseen).
      expect(await sendBig(1)).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(await sendBig(2)).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } finally {
      session.destroy();
    }
    const refusals = async () => (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((line) => line.includes('"header-too-large"') && !line.includes('"requestId"'));
    const lines = await waitFor(async () => {
      const found = await refusals();
      return found.length >= 2 ? found : undefined;
    }, { timeoutMs: 5_000, message: 'both resets in the access log' });
    const line = { level: 30, time: expect.any(String), status: 431, durationMs: 0, bytes: 0, attempts: 0, clientIp: '127.0.0.1', errorClass: 'header-too-large' };
    expect(lines.map((text) => JSON.parse(text) as unknown)).toEqual([line, line]);
    // Nothing of the head: neither its header bytes nor its path.
    const log = await readFile(gateway.process.logFile, 'utf8');
    expect([log.includes('b'.repeat(64)), log.includes('/api/echo/big')]).toEqual([false, false]);
    expect(await unmatched4xx()).toBe(countedBefore + 2);
  });

  it("answers a head of more than node:http2's default 128 fields, and logs and counts one of more than 1,000 as a 431 header-too-large that matched no route", async () => {
    const unmatched4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
    const countedBefore = await unmatched4xx();
    const refusalsBefore = await refusalLines();
    const session = connect(web);
    /** A GET of `count` fields, the 4 pseudo-headers included; resolves with its status, or its reset code. */
    const send = (path: string, count: number) => {
      const fields = Object.fromEntries(Array.from({ length: count - 4 }, (_, index) => [`x-field-${index}`, 'v']));
      const stream = session.request({ ':path': path, ...fields }, { endStream: true });
      let status: unknown;
      stream.on('response', (headers) => (status = headers[':status']));
      stream.on('error', () => undefined).resume();
      return new Promise((resolve) => stream.on('close', () => resolve(status ?? `reset ${stream.rstCode}`)));
    };
    try {
      // 200 fields were reset by node:http2 unseen; now they reach routing (no route here: 404).
      expect(await send('/many-fields', 200)).toBe(404);
      expect(await send('/too-many-fields', 1_001)).toBe(`reset ${constants.NGHTTP2_ENHANCE_YOUR_CALM}`);
    } finally {
      session.destroy();
    }
    const logOf = async () => (await readFile(gateway.process.logFile, 'utf8')).split('\n');
    const line = await waitFor(async () => (await logOf()).filter((text) => text.includes('"header-too-large"') && !text.includes('"requestId"'))[refusalsBefore], {
      timeoutMs: 5_000,
      message: 'the reset in the access log',
    });
    expect(JSON.parse(line)).toEqual({ level: 30, time: expect.any(String), status: 431, durationMs: 0, bytes: 0, attempts: 0, clientIp: '127.0.0.1', errorClass: 'header-too-large' });
    expect((await logOf()).some((text) => text.includes('"path":"/many-fields"') && text.includes('"status":404'))).toBe(true);
    expect((await logOf()).some((text) => text.includes('/too-many-fields'))).toBe(false);
    // The 404 is unmatched too.
    expect(await unmatched4xx()).toBe(countedBefore + 2);
  });

  it('resets the stream of an upload whose trailers are over the limits while its answer is in flight, with no END_STREAM before the RST_STREAM: the client never takes the part it got for a whole answer', async () => {
    const session = connect(web);
    try {
      const stream = session.request({ ':path': '/early-answer/upload', ':method': 'POST' }, { waitForTrailers: true });
      const trailers = Object.fromEntries(Array.from({ length: 1_001 }, (_, index) => [`x-trailer-${index}`, 'v']));
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      let body = '';
      let ended = false;
      stream.on('error', () => undefined).on('data', (chunk: Buffer) => {
        body += chunk.toString();
        // The answer has begun: now the upload ends, with its trailers.
        if (body === 'part-') stream.end('upload');
      });
      // 'end' comes only with the gateway's END_STREAM: the answer would read as whole.
      stream.on('end', () => (ended = true));
      await new Promise((resolve) => stream.on('close', resolve));
      expect({ body, ended, rstCode: stream.rstCode }).toEqual({ body: 'part-', ended: false, rstCode: constants.NGHTTP2_ENHANCE_YOUR_CALM });
    } finally {
      session.destroy();
    }
  });

  it('logs and counts a head spread over more than 8 CONTINUATION frames, whose connection nghttp2 closes, as a 431 header-too-large that matched no route', async () => {
    const unmatched4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
    const countedBefore = await unmatched4xx();
    const refusalsBefore = await refusalLines();
    const socket = netConnect(Number(new URL(web).port), '127.0.0.1');
    // Read, so that the gateway's close is seen.
    socket.on('error', () => undefined).resume();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(continuedGet('/continued', 9));
    await closed;
    const line = await waitFor(async () => (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((text) => text.includes('"header-too-large"') && !text.includes('"requestId"'))[refusalsBefore], {
      timeoutMs: 5_000,
      message: 'the refusal in the access log',
    });
    expect(JSON.parse(line)).toEqual({ level: 30, time: expect.any(String), status: 431, durationMs: 0, bytes: 0, attempts: 0, clientIp: '127.0.0.1', errorClass: 'header-too-large' });
    expect(await unmatched4xx()).toBe(countedBefore + 1);
  });

  it('answers CONNECT with 405 and an Expect other than 100-continue with 417 itself, logged and counted as answers that matched no route, and sends 100 Continue to an upload that expects it', async () => {
    const unmatched4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), 'switchboard_requests_total', { route: '', service: '', status: '4xx' }) ?? 0;
    const countedBefore = await unmatched4xx();
    const session = connect(web);
    /** Resolves with the answer's status (or the stream's reset code) and whether a 100 Continue came first. */
    const send = (headers: Record<string, string>, body?: string) => {
      const stream = session.request(headers, { endStream: body === undefined });
      let status: unknown;
      let continued = false;
      stream.on('continue', () => {
        continued = true;
        stream.end(body);
      });
      stream.on('response', (answer) => (status = answer[':status']));
      stream.on('error', () => undefined).resume();
      return new Promise((resolve) => stream.on('close', () => resolve([status ?? `reset ${stream.rstCode}`, continued])));
    };
    try {
      expect(await send({ ':method': 'CONNECT', ':authority': 'example.test:443' })).toEqual([405, false]);
      expect(await send({ ':method': 'POST', ':path': '/record/expect-other', expect: 'something-else' }, 'partial')).toEqual([417, false]);
      expect(await send({ ':method': 'POST', ':path': '/record/expect-continue', expect: '100-continue' }, 'partial')).toEqual([200, true]);
    } finally {
      session.destroy();
    }
    const refusals = await waitFor(async () => {
      const lines = (await readFile(gateway.process.logFile, 'utf8')).split('\n').filter((text) => /"errorClass":"(method-not-allowed|expectation-failed)"/.test(text));
      return lines.length >= 2 ? lines.map((text) => JSON.parse(text) as unknown) : undefined;
    }, { timeoutMs: 5_000, message: 'both answers in the access log' });
    const line = { level: 30, time: expect.any(String), durationMs: 0, attempts: 0, clientIp: '127.0.0.1' };
    expect(refusals).toEqual([
      { ...line, method: 'CONNECT', path: 'example.test:443', status: 405, bytes: expect.any(Number), errorClass: 'method-not-allowed' },
      { ...line, method: 'POST', path: '/record/expect-other', status: 417, bytes: expect.any(Number), errorClass: 'expectation-failed' },
    ]);
    expect(await unmatched4xx()).toBe(countedBefore + 2);
    // The refused upload reached no upstream; the one that got its 100 Continue did, whole.
    expect(recorder.connections.some((connection) => connection.received.startsWith('POST /record/expect-other '))).toBe(false);
    const upstream = recorder.connections.find((connection) => connection.received.startsWith('POST /record/expect-continue '));
    expect(upstream === undefined ? undefined : [uploadOf(upstream), /^expect:/im.test(upstream.received)]).toEqual(['7\r\npartial\r\n0\r\n', false]);
  });

  /** An upload under way: `cut` ends it early, `close` lets go of its connection. */
  interface StartedUpload {
    cut(): Promise<void>;
    close(): void;
  }

  /**
   * Sends part of an upload (`partial`) to the recording upstream over HTTP/2 with `start` and lets
   * it cut the upload short: resolves with what the upstream connection that carried it received,
   * once that connection has closed or holds a whole request, and with the request's access line.
   */
  async function cutUpload(path: string, start: () => StartedUpload): Promise<{ upstream: RecordedConnection; line: Record<string, unknown> }> {
    const upload = start();
    try {
      const upstream = await waitFor(() => recorder.connections.find((connection) => connection.received.startsWith(`POST ${path} `) && connection.received.includes('\r\n\r\n7\r\npartial')), {
        timeoutMs: 5_000,
        message: 'the first chunk of the upload at the upstream',
      });
      await upload.cut();
      await waitFor(() => upstream.closed || upstream.received.endsWith('0\r\n\r\n'), { timeoutMs: 5_000, message: 'the upstream request to end, whole or reset' });
      return { upstream, line: await accessLineOf(gateway.process, path, { timeoutMs: 5_000 }) };
    } finally {
      upload.close();
    }
  }

  /**
   * An upload in raw HTTP/2 frames (prior knowledge), its body `partial` and no END_STREAM: node's
   * own client cannot leave a body unfinished (its `close()` sends END_STREAM before RST_STREAM).
   * `cut` resets the stream (RST_STREAM CANCEL, or NO_ERROR, which before END_STREAM still cuts the
   * body: RFC 9113 §8.1) or drops the connection.
   */
  function rawUpload(path: string, how: 'reset' | 'reset-no-error' | 'drop'): StartedUpload {
    const frame = (type: number, flags: number, payload: Buffer) => http2Frame(type, flags, type === 4 ? 0 : 1, payload);
    // HPACK (RFC 7541): :method POST and :scheme http from the static table, :authority (1) and
    // :path (4) as literals with a static name; END_HEADERS (0x4) without END_STREAM.
    const literal = (nameIndex: number, value: string) => Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value)]);
    const block = Buffer.concat([Buffer.from([0x83, 0x86]), literal(1, 'gw'), literal(4, path)]);
    const socket = netConnect(Number(new URL(web).port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, Buffer.alloc(0)), frame(1, 0x4, block), frame(0, 0, Buffer.from('partial'))]));
    const code = Buffer.alloc(4);
    code.writeUInt32BE(how === 'reset' ? constants.NGHTTP2_CANCEL : constants.NGHTTP2_NO_ERROR);
    return {
      cut: async () => void (how === 'drop' ? socket.destroy() : socket.write(frame(3, 0, code))),
      close: () => socket.destroy(),
    };
  }

  /**
   * An upload over HTTP/1.1 whose Content-Length promises more than the `partial` sent: `cut` resets
   * its connection mid-body (a FIN instead lets node's parser see the body end early, and the
   * listener's 400 for that races the client's going).
   */
  function http1Upload(path: string): StartedUpload {
    const socket = netConnect(Number(new URL(web).port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\npartial`);
    return { cut: async () => void socket.resetAndDestroy(), close: () => socket.destroy() };
  }

  /** Failed attempts counted against `service` (the recording upstream by default), whatever their class. */
  async function recorderErrors(service = 'recorder'): Promise<number> {
    const metrics = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics();
    const samples = metrics.get('switchboard_upstream_errors_total')?.samples ?? [];
    return samples.filter((sample) => sample.labels.service === service).reduce((sum, sample) => sum + sample.value, 0);
  }

  it.each(['reset', 'reset-no-error', 'drop'] as const)('aborts the upstream request of an upload its client cuts mid-body (%s), as an HTTP/1.1 client leaving does: the upstream never gets the last chunk', async (how) => {
    const errorsBefore = await recorderErrors();
    const { upstream, line } = await cutUpload(`/record/${how}`, () => rawUpload(`/record/${how}`, how));
    // Its connection reset after the part sent, never the last chunk (node:http2 ends a body whose stream
    // closes: the upstream got `0\r\n\r\n`, a whole upload, and answered it).
    expect([uploadOf(upstream), upstream.closed]).toEqual(['7\r\npartial', true]);
    expect({ status: line.status, errorClass: line.errorClass, aborted: line.aborted }).toEqual({ status: 499, errorClass: 'cancelled', aborted: true });
    // The client's doing: nothing counts against the upstream.
    expect(await recorderErrors()).toBe(errorsBefore);
  });

  it.each(['reset', 'reset-no-error', 'drop', 'http1-close'] as const)('resets the stream to an h2c upstream of an upload its client cuts mid-body (%s) without END_STREAM: the upstream never takes the part sent for a whole request', async (how) => {
    const path = `/h2-record/${how}`;
    const errorsBefore = await recorderErrors('h2-recorder');
    const upload = how === 'http1-close' ? http1Upload(path) : rawUpload(path, how);
    try {
      const upstream = await waitFor(() => h2Recorder.streams.find((stream) => stream.path === path && stream.received === 'partial'), {
        timeoutMs: 5_000,
        message: 'the first chunk of the upload at the h2c upstream',
      });
      await upload.cut();
      await waitFor(() => upstream.closed, { timeoutMs: 5_000, message: "the upstream's stream to close" });
      // Reset with CANCEL and no END_STREAM before it (node:http2's `close(NGHTTP2_CANCEL)` ends the
      // writable side first: the upstream got END_STREAM, a whole request that it answered, then RST_STREAM).
      expect({ received: upstream.received, endStream: upstream.endStream, rstCode: upstream.rstCode }).toEqual({ received: 'partial', endStream: false, rstCode: constants.NGHTTP2_CANCEL });
      const line = await accessLineOf(gateway.process, path, { timeoutMs: 5_000 });
      expect({ status: line.status, errorClass: line.errorClass, aborted: line.aborted }).toEqual({ status: 499, errorClass: 'cancelled', aborted: true });
      expect(await recorderErrors('h2-recorder')).toBe(errorsBefore);
    } finally {
      upload.close();
    }
  });

  it("answers an upload whose body stalls past requestTimeout with 408, aborts its upstream request, and logs and counts that answer as its route's", async () => {
    const record4xx = async () => sampleValue(await adminClient(`http://127.0.0.1:${gateway.adminPort}`).metrics(), 'switchboard_requests_total', { route: '/record', service: 'recorder', status: '4xx' }) ?? 0;
    const countedBefore = await record4xx();
    let body = '';
    const errorsBefore = await recorderErrors();
    const { upstream, line } = await cutUpload('/record/stalled', () => {
      const session = connect(web);
      const stream = session.request({ ':path': '/record/stalled', ':method': 'POST' }, { endStream: false });
      stream.on('error', () => undefined).on('data', (chunk: Buffer) => void (body += chunk.toString()));
      stream.write('partial');
      const status = new Promise((resolve) => stream.on('response', (headers) => resolve(headers[':status'])));
      const closed = new Promise((resolve) => stream.on('close', resolve));
      return {
        cut: async () => {
          expect(await status).toBe(408);
          await closed;
        },
        close: () => session.destroy(),
      };
    });
    // Likewise: it got the part sent and no last chunk (it got `0\r\n\r\n` and answered the body cut short).
    expect([uploadOf(upstream), upstream.closed]).toEqual(['7\r\npartial', true]);
    const { status, errorClass, bytes, route, aborted } = line;
    expect({ status, errorClass, bytes, route, aborted }).toEqual({ status: 408, errorClass: 'request-timeout', bytes: Buffer.byteLength(body), route: '/record', aborted: undefined });
    expect(await record4xx()).toBe(countedBefore + 1);
    expect(await recorderErrors()).toBe(errorsBefore);
  });

  it("cancels the stream to an h2c upstream of an upload whose body stalls past requestTimeout, once its listener's 408 has answered it: the instance's request ends and leaves its requests in flight", async () => {
    const path = '/h2-record/stalled';
    const errorsBefore = await recorderErrors('h2-recorder');
    const session = connect(web);
    try {
      const stream = session.request({ ':path': path, ':method': 'POST' }, { endStream: false });
      stream.on('error', () => undefined).resume();
      stream.write('partial');
      const status = new Promise((resolve) => stream.on('response', (headers) => resolve(headers[':status'])));
      const upstream = await waitFor(() => h2Recorder.streams.find((recorded) => recorded.path === path && recorded.received === 'partial'), {
        timeoutMs: 5_000,
        message: 'the first chunk of the upload at the h2c upstream',
      });
      expect(await status).toBe(408);
      // Without the cancel the stream stayed open for good, waiting for the rest of the body, and so
      // did its request: in flight on the instance (least-connections and p2c-ewma avoid it, a
      // breaker's maxConcurrentRequests and concurrency.maxRequests keep its slot) and never logged.
      await waitFor(() => upstream.closed, { timeoutMs: 5_000, message: "the upstream's stream to close" });
      expect({ received: upstream.received, endStream: upstream.endStream, rstCode: upstream.rstCode }).toEqual({ received: 'partial', endStream: false, rstCode: constants.NGHTTP2_CANCEL });
      const line = await accessLineOf(gateway.process, path, { timeoutMs: 5_000 });
      expect({ status: line.status, errorClass: line.errorClass, route: line.route }).toEqual({ status: 408, errorClass: 'request-timeout', route: '/h2-record' });
      const instance = (await adminClient(`http://127.0.0.1:${gateway.adminPort}`).services()).find((service) => service.name === 'h2-recorder')?.instances[0];
      expect({ inFlight: instance?.inFlight, errors: instance?.errors }).toEqual({ inFlight: 0, errors: 0 });
      expect(await recorderErrors('h2-recorder')).toBe(errorsBefore);
    } finally {
      session.destroy();
    }
  });

  /**
   * Waits for `upstream`, the stream of an upload of `partial` to `path` that the h2c upstream
   * answered whole before its end, to close: reset with CANCEL and no END_STREAM before it, the
   * request logged answered (200) and nothing counted against the instance since `errorsBefore`.
   */
  async function expectCancelledAfterAnswer(path: string, upstream: RecordedStream, errorsBefore: number): Promise<void> {
    await waitFor(() => upstream.closed, { timeoutMs: 5_000, message: "the upstream's stream to close" });
    expect({ received: upstream.received, endStream: upstream.endStream, rstCode: upstream.rstCode }).toEqual({ received: 'partial', endStream: false, rstCode: constants.NGHTTP2_CANCEL });
    const line = await accessLineOf(gateway.process, path, { timeoutMs: 5_000 });
    expect({ status: line.status, errorClass: line.errorClass }).toEqual({ status: 200, errorClass: undefined });
    expect(await recorderErrors('h2-recorder')).toBe(errorsBefore);
  }

  it("cancels the stream to an h2c upstream that answered an upload whole before its end, once the client's body is cut: its upload never ends, and the stream stayed open for good", async () => {
    const path = `${ANSWER_FIRST}/cut`;
    const errorsBefore = await recorderErrors('h2-recorder');
    const session = connect(web);
    try {
      const stream = session.request({ ':path': path, ':method': 'POST' }, { endStream: false });
      let body = '';
      stream.on('error', () => undefined).on('data', (chunk: Buffer) => void (body += chunk.toString()));
      stream.write('partial');
      const upstream = await waitFor(() => h2Recorder.streams.find((recorded) => recorded.path === path && recorded.received === 'partial'), {
        timeoutMs: 5_000,
        message: 'the first chunk of the upload at the h2c upstream',
      });
      // Its answer out, the client is asked to stop sending (RST_STREAM NO_ERROR): the body the
      // gateway was sending upstream is cut, after the attempt ended answered.
      await waitFor(() => stream.closed, { timeoutMs: 5_000, message: "the client's stream to close" });
      expect({ body, rstCode: stream.rstCode }).toEqual({ body: 'early', rstCode: constants.NGHTTP2_NO_ERROR });
      // Without the cancel the upstream's stream stayed open, waiting for the rest of a body that
      // never comes, a stream of its session's taken for good (only a node:http2 server that had not
      // read the body, or one that resets after its answer, closed it).
      await expectCancelledAfterAnswer(path, upstream, errorsBefore);
    } finally {
      session.destroy();
    }
  });

  it("cancels the stream to an h2c upstream that answered an HTTP/1.1 client's chunked upload whole before its end, once that answer is out: node's listener takes the request off its queue then, and the client's going later neither ends nor fails it", async () => {
    const path = `${ANSWER_FIRST}/http1-cut`;
    const errorsBefore = await recorderErrors('h2-recorder');
    const socket = netConnect(Number(new URL(web).port), '127.0.0.1');
    let answer = '';
    socket.on('error', () => undefined).on('data', (chunk: Buffer) => void (answer += chunk.toString('latin1')));
    try {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n`);
      const upstream = await waitFor(() => h2Recorder.streams.find((recorded) => recorded.path === path && recorded.received === 'partial'), {
        timeoutMs: 5_000,
        message: 'the first chunk of the upload at the h2c upstream',
      });
      // The whole answer out (its last chunk), the client leaves without the rest of its body.
      await waitFor(() => answer.endsWith('\r\n0\r\n\r\n'), { timeoutMs: 5_000, message: 'the whole answer at the client' });
      expect(answer).toMatch(/^HTTP\/1\.1 200 [^]*\r\n5\r\nearly\r\n0\r\n\r\n$/);
      socket.resetAndDestroy();
      // Without the cancel the upstream's stream stayed open for good, the client gone or not: the
      // request out of node's queue once answered, the socket's close no longer aborts it.
      await expectCancelledAfterAnswer(path, upstream, errorsBefore);
    } finally {
      socket.destroy();
    }
  });
});
