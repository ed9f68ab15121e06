import { createServer, type Http2Server } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptsConnections, logOf, makeCertificate, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const BODY = 'h2c answer';

/** An h2c upstream answering every request 200 with `BODY`: its HEADERS and DATA frames come apart, as any HTTP/2 server's do. */
async function startH2cUpstream(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer((_request, response) => {
    response.setHeader('content-type', 'text/plain');
    response.end(BODY);
  });
  server.on('session', (session) => session.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** `GET path` on the kept-alive HTTP/1.1 `socket`: resolves with the milliseconds until the whole answer has come. */
function timedGet(socket: Socket, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let received = '';
    const timer = setTimeout(() => reject(new Error(`GET ${path}: no whole answer within 10 s, got ${JSON.stringify(received)}`)), 10_000);
    const onData = (chunk: Buffer) => {
      received += chunk.toString('latin1');
      // The instance announced no length: the answer is chunked, and whole at its last chunk.
      if (!received.endsWith(`${BODY}\r\n0\r\n\r\n`)) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (!received.startsWith('HTTP/1.1 200')) return reject(new Error(`GET ${path}: ${received}`));
      resolve(performance.now() - startedAt);
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: site.test\r\n\r\n`);
  });
}

/**
 * Timed GETs on one connection until five took under 20 ms, at most 40: their times. With Nagle every
 * one waits >= 40 ms (the client's delayed ACK); without, five fast ones come soon even on a loaded machine.
 */
async function roundsUntilFiveFast(socket: Socket, path: string): Promise<number[]> {
  socket.setNoDelay(true);
  const rounds: number[] = [];
  while (rounds.length < 40 && rounds.filter((ms) => ms < 20).length < 5) rounds.push(await timedGet(socket, `${path}/${rounds.length}`));
  return rounds;
}

describe('an HTTP/1.1 client of an h2c or https entry point, proxied to an HTTP/2 instance', () => {
  let upstream: Awaited<ReturnType<typeof startH2cUpstream>>;
  let gateway: GatewayProcess;
  let tlsPort: number;

  beforeAll(async () => {
    upstream = await startH2cUpstream();
    const certificate = await makeCertificate(await makeTempDir('sb-h1-h2-'), 'site', { key: 'ec', names: ['site.test'] });
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
  websecure:
    listen: 127.0.0.1:{{port:tls}}
    protocol: https
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
admin: 127.0.0.1:{{adminPort}}
services:
  h2: { protocol: h2c, instances: [127.0.0.1:${upstream.port}] }
routes:
  - { path: /, service: h2 }
`);
    tlsPort = gateway.ports.tls!;
    await waitFor(() => acceptsConnections(tlsPort), { timeoutMs: 10_000, message: 'the https entry point to listen' });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  // The answer's head and its body are two writes to the client; with Nagle on the client's
  // connection the second waited for the client's delayed ACK of the first: ~44 ms a request.
  it.each([
    ['h2c', () => connect(gateway.port, '127.0.0.1')],
    ['https', () => connectTls({ host: '127.0.0.1', port: tlsPort, servername: 'site.test', ALPNProtocols: ['http/1.1'], rejectUnauthorized: false })],
  ])('gets each answer on the %s entry point without waiting for its own delayed ACK', async (name, open) => {
    const socket = open();
    try {
      await new Promise((resolve, reject) => socket.once(name === 'https' ? 'secureConnect' : 'connect', resolve).once('error', reject));
      const rounds = await roundsUntilFiveFast(socket, `/${name}`);
      expect(rounds.filter((ms) => ms < 20).length, `rounds (ms): ${rounds.map((ms) => ms.toFixed(1)).join(' ')}`).toBe(5);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    } finally {
      socket.destroy();
    }
  });
});
