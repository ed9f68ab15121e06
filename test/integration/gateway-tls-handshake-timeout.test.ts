import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptsConnections, clientHello, logOf, makeCertificate, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import { adminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

const HEADERS_TIMEOUT_MS = 2_000;

/**
 * Connects to `port`, writes `first` once connected and `late` `lateMs` later, then nothing (and
 * reads what comes); resolves with the time (ms) from the connect until the gateway closed.
 */
function closedAfter(port: number, first: Buffer, late?: { bytes: Buffer; lateMs: number }): Promise<number> {
  return new Promise((resolve) => {
    // Taken before the connect, not at its 'connect' event: the gateway's deadline starts at its
    // accept, which cannot come before the connect, while this process may run its 'connect'
    // handler late on a loaded machine, and the time since would then fall short of the deadline.
    const startedAt = performance.now();
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      if (first.length > 0) socket.write(first);
      if (late) setTimeout(() => socket.writable && socket.write(late.bytes), late.lateMs);
    });
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('close', () => resolve(performance.now() - startedAt));
  });
}

describe('the TLS handshake deadline of https and tls tcp entry points (limits.headersTimeout)', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    const dir = await makeTempDir('sb-tls-handshake-timeout-');
    const certificate = await makeCertificate(dir, 'gw', { key: 'ec', names: ['gw.test'] });
    const tls = `{ certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }`;
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
limits: { headersTimeout: ${HEADERS_TIMEOUT_MS}ms }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  secure: { listen: "127.0.0.1:{{port:secure}}", protocol: https, tls: ${tls} }
  terminated: { listen: "127.0.0.1:{{port:terminated}}", protocol: tcp, service: db, tls: ${tls} }
  passed: { listen: "127.0.0.1:{{port:passed}}", protocol: tcp, service: db, passthrough: true }
services:
  db: { instances: [127.0.0.1:1] }
routes: []
`);
    await waitFor(async () => (await acceptsConnections(gateway.ports.secure!)) && (await acceptsConnections(gateway.ports.terminated!)) && acceptsConnections(gateway.ports.passed!), { timeoutMs: 10_000, message: 'the TLS entry points to listen' });
  });

  afterAll(async () => {
    await gateway?.process.stop();
  });

  it.each(['secure', 'terminated'])(
    'on %s: closes a client that never sends a whole ClientHello, or sends one late and no more, within the one deadline from its connect, and counts each as a timeout',
    async (entryPoint) => {
      const port = gateway.ports[entryPoint]!;
      const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
      const refused = async (reason: string) => sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: entryPoint, reason }) ?? 0;
      const [timeoutsBefore, failuresBefore] = [await refused('timeout'), await refused('handshake')];
      const hello = await clientHello('gw.test');
      const [silent, partial, late] = await Promise.all([
        closedAfter(port, Buffer.alloc(0)),
        closedAfter(port, hello.subarray(0, 20)),
        // The whole ClientHello three quarters into the deadline: the handshake after it had the whole time again.
        closedAfter(port, Buffer.alloc(0), { bytes: hello, lateMs: HEADERS_TIMEOUT_MS * 0.75 }),
      ]);
      for (const [what, ms] of Object.entries({ silent, partial, late })) {
        expect([what, ms >= HEADERS_TIMEOUT_MS - 100]).toEqual([what, true]);
        // Before, the late one was closed 1.75 deadlines after its connect.
        expect([what, ms < HEADERS_TIMEOUT_MS * 1.5]).toEqual([what, true]);
      }
      // The two that never sent a whole ClientHello went uncounted; the late one is a timeout, not a failed handshake too.
      await waitFor(async () => (await refused('timeout')) === timeoutsBefore + 3, { timeoutMs: 5_000, message: 'three handshake timeouts counted' });
      expect(await refused('handshake')).toBe(failuresBefore);
    },
  );

  it.each(['secure', 'terminated', 'passed'])(
    'on %s: counts a client that closes or resets before its ClientHello is whole as client-closed, not as a timeout, and warns about none',
    async (entryPoint) => {
      const port = gateway.ports[entryPoint]!;
      const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
      const refused = async (reason: string) => sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: entryPoint, reason }) ?? 0;
      const [closedBefore, timeoutsBefore] = [await refused('client-closed'), await refused('timeout')];
      const hello = await clientHello('gw.test');
      // As port scanners and L4 load balancers' health checks do: a FIN, a reset, each before any byte; and a FIN after part of a ClientHello.
      const probe = (bytes: Buffer, end: (socket: ReturnType<typeof connect>) => void) =>
        new Promise<void>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port }, () => {
            if (bytes.length > 0) socket.write(bytes);
            end(socket);
          });
          socket.on('error', () => undefined);
          socket.resume();
          socket.once('close', () => resolve());
        });
      await Promise.all([probe(Buffer.alloc(0), (socket) => socket.end()), probe(Buffer.alloc(0), (socket) => socket.resetAndDestroy()), probe(hello.subarray(0, 20), (socket) => socket.end())]);
      await waitFor(async () => (await refused('client-closed')) === closedBefore + 3, { timeoutMs: 5_000, message: 'three client-closed counted' });
      expect(await refused('timeout')).toBe(timeoutsBefore);
      expect(await logOf(gateway.process)).not.toContain('before its ClientHello was whole');
    },
  );

  it.each(['secure', 'terminated', 'passed'])(
    'on %s: refuses a ClientHello sent one byte a record once 20 KiB of it were read, counted as client-hello-too-large, instead of holding 96 KiB',
    async (entryPoint) => {
      const port = gateway.ports[entryPoint]!;
      const admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
      const refused = async (reason: string) => sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: entryPoint, reason }) ?? 0;
      const before = await refused('client-hello-too-large');
      // A ClientHello that claims 16 KB, each of its bytes a record of its own: 24 KiB sent, and the connection left open.
      const body = Buffer.alloc(4_096);
      body[0] = 0x01;
      body.writeUIntBE(16_384 - 4, 1, 3);
      const records = Buffer.concat([...body].map((byte) => Buffer.from([0x16, 3, 1, 0, 1, byte])));
      const startedAt = performance.now();
      const closedAfterMs = await new Promise<number>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => socket.write(records));
        socket.on('error', () => undefined);
        socket.resume();
        socket.once('close', () => resolve(performance.now() - startedAt));
      });
      // Closed at once, not at the deadline.
      expect(closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS / 2);
      await waitFor(async () => (await refused('client-hello-too-large')) === before + 1, { timeoutMs: 5_000, message: 'one client-hello-too-large counted' });
    },
  );
});
