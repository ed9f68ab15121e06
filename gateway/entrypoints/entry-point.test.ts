import type { ServerResponse } from 'node:http';
import { connect as connectHttp2 } from 'node:http2';
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { clientHello } from '../../test/harness/client-hello.ts';
import type { ClientResponse } from '../context.ts';
import { startEntryPoint } from './entry-point.ts';
import { selfSignedPair, testEntryPointConfig } from './tls-testing.ts';

const log = pino({ level: 'silent' });
const LIMITS = { maxHeaderSize: 16_384, headersTimeoutMs: 5_000, requestTimeoutMs: 0, keepAliveTimeoutMs: 5_000 };

let certificate: { certFile: string; keyFile: string };
beforeAll(() => {
  certificate = selfSignedPair('web.test');
});

/** An HTTP/1.1 GET over TLS: resolves with `<status> <body>`, or `error <message>` when the connection fails. */
function http1Get(port: number): Promise<string> {
  return new Promise((resolve) => {
    const outgoing = request({ host: '127.0.0.1', port, path: '/', servername: 'web.test', rejectUnauthorized: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(`${response.statusCode} ${body}`));
      response.on('error', (error) => resolve(`error ${error.message}`));
    });
    outgoing.on('error', (error) => resolve(`error ${error.message}`));
    outgoing.end();
  });
}

/** An HTTP/2 GET over TLS (ALPN h2): resolves like `http1Get`. */
function http2Get(port: number): Promise<string> {
  return new Promise((resolve) => {
    const session = connectHttp2(`https://127.0.0.1:${port}`, { servername: 'web.test', rejectUnauthorized: false });
    session.on('error', (error) => resolve(`error ${error.message}`));
    const stream = session.request({ ':path': '/' });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('error', (error) => resolve(`error ${error.message}`));
    stream.on('close', () => {
      session.close();
      resolve(status === 0 ? `error stream closed (code ${stream.rstCode})` : `${status} ${body}`);
    });
  });
}

/** Sends `GET /` on the kept-alive `socket` and resolves with the time (ms) until the answer's whole body `ab` has come. */
function timedRound(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!received.endsWith('\r\n\r\nab')) return;
      socket.off('data', onData);
      resolve(performance.now() - startedAt);
    };
    socket.on('data', onData);
    socket.write('GET / HTTP/1.1\r\nHost: web.test\r\n\r\n');
  });
}

describe('startEntryPoint', () => {
  it('closes a TLS connection whose client sent its ClientHello and then nothing, once the handshake timeout passes', async () => {
    const entryPoint = await startEntryPoint(testEntryPointConfig('https', certificate), { request: () => undefined, upgrade: () => undefined, refused: () => undefined }, { ...LIMITS, headersTimeoutMs: 200 }, log);
    try {
      const hello = await clientHello('web.test');
      const socket = connect({ host: '127.0.0.1', port: entryPoint.port }, () => socket.write(hello));
      socket.on('error', () => undefined);
      socket.resume();
      // Node's handshakeTimeout only reports (tlsClientError): the connection stayed open for good.
      const closed = new Promise((resolve) => socket.once('close', () => resolve('closed')));
      const waited = new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000).unref());
      expect(await Promise.race([closed, waited])).toBe('closed');
    } finally {
      await entryPoint.drain(0);
    }
  });

  it('on drain lets requests in flight on TLS connections (HTTP/1.1 and HTTP/2) finish, instead of cutting their connections', async () => {
    const held: ClientResponse[] = [];
    const entryPoint = await startEntryPoint(testEntryPointConfig('https', certificate), { request: (_request, response) => void held.push(response), upgrade: () => undefined, refused: () => undefined }, LIMITS, log);
    const answers = [http1Get(entryPoint.port), http2Get(entryPoint.port)];
    await expect.poll(() => held.length).toBe(2);
    const drained = entryPoint.drain(5_000);
    // Answered once the drain has begun: a TLS connection was taken for one still in its handshake and cut at once.
    await new Promise((resolve) => setImmediate(resolve));
    for (const response of held) response.end('answered');
    expect(await Promise.all(answers)).toEqual(['200 answered', '200 answered']);
    await drained;
  });

  it.each([
    ['an http entry point with h2c', 'http' as const],
    ['an https entry point', 'https' as const],
  ])("sends an answer's second write at once on %s, not after the client's delayed ACK (TCP_NODELAY towards the client)", async (_name, protocol) => {
    // An answer written in parts (its head and first bytes, then the rest: an HTTP/2 instance's
    // DATA relayed to an HTTP/1.1 client) had its second part held by Nagle until the client's
    // delayed ACK of the first: every round took ~44 ms instead of ~1 behind these entry points.
    const config = { ...testEntryPointConfig(protocol, protocol === 'https' ? certificate : undefined), h2c: protocol === 'http' };
    // Over HTTP/1.1 only: the client asks for nothing else.
    const answerInParts = (_request: unknown, response: ClientResponse) => {
      const http1 = response as ServerResponse;
      http1.writeHead(200, { 'content-length': '2' });
      http1.write('a');
      setImmediate(() => http1.end('b'));
    };
    const entryPoint = await startEntryPoint(config, { request: answerInParts, upgrade: () => undefined, refused: () => undefined }, LIMITS, log);
    const options = { host: '127.0.0.1', port: entryPoint.port };
    const socket = protocol === 'https' ? connectTls({ ...options, servername: 'web.test', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false }) : connect(options);
    try {
      await new Promise((resolve) => socket.once(protocol === 'https' ? 'secureConnect' : 'connect', resolve));
      socket.setNoDelay(true);
      // With Nagle every round waits >= 40 ms; without, five rounds under 20 ms come soon even on a loaded machine.
      const rounds: number[] = [];
      while (rounds.length < 40 && rounds.filter((ms) => ms < 20).length < 5) rounds.push(await timedRound(socket));
      expect(rounds.filter((ms) => ms < 20).length, `rounds (ms): ${rounds.map((ms) => ms.toFixed(1)).join(' ')}`).toBe(5);
    } finally {
      socket.destroy();
      await entryPoint.drain(0);
    }
  });
});
