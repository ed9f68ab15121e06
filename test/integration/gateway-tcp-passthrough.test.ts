import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { acceptsConnections, clientHello, logOf, makeCertificate, makeTempDir, presentedCertificate, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

const HEADERS_TIMEOUT_MS = 2_000;

/**
 * A TLS backend of its own certificate, which answers each connection with its name and the server
 * name it was sent (echoes it back instead for a server name starting with `echo.`), and `PLAIN
 * <bytes>` to a client that does not speak TLS.
 */
interface TlsBackend {
  readonly server: Server;
  readonly port: number;
  readonly certificate: X509Certificate;
  readonly pem: Buffer;
}

async function startTlsBackend(dir: string, name: string, names: readonly string[]): Promise<TlsBackend> {
  const files = await makeCertificate(dir, name, { key: 'ec', names });
  const [pem, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  const tls = createTlsServer({ cert: pem, key }, (socket) => {
    socket.on('error', () => undefined);
    if ((socket.servername || '').startsWith('echo.')) return void socket.pipe(socket);
    socket.end(`${name} ${socket.servername || '-'}\n`);
  });
  tls.on('tlsClientError', () => undefined);
  // As the gateway tells TLS from plain text: by the first byte. The gateway's TCP checks connect and close.
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', (first: Buffer) => {
      if (first[0] === 0x16) {
        // Paused, so that the bytes put back wait for the TLS server instead of flowing past it.
        socket.pause();
        socket.unshift(first);
        tls.emit('connection', socket);
      } else socket.end(`PLAIN ${name} ${first.toString('latin1')}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, certificate: new X509Certificate(pem), pem };
}

/** What `port` answers over TLS for `servername` (verified against `ca`, as the client of a passed-through backend does): the backend's line and the certificate it showed. */
function tlsAnswer(port: number, servername: string, ca: Buffer): Promise<{ line: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, servername, ca, checkServerIdentity: () => undefined });
    let line = '';
    let fingerprint = '';
    socket.once('secureConnect', () => (fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? ''));
    socket.on('data', (chunk: Buffer) => (line += chunk.toString()));
    socket.once('error', reject);
    socket.once('end', () => resolve({ line: line.trim(), fingerprint }));
  });
}

/** Connects to `port`, writes `bytes`, and resolves with what came back before the close and how long the connection lasted. */
function exchange(port: number, bytes: Buffer): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve) => {
    // Timed from before the connect: the gateway's deadline runs from its accept, which cannot come
    // earlier, while a 'connect' handler run late on a loaded machine would shorten the time measured.
    const connectedAt = performance.now();
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.once('connect', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve({ answer, ms: performance.now() - connectedAt }));
  });
}

describe('tcp entry points with passthrough: TLS forwarded untouched, routed by the ClientHello server name', () => {
  let a: TlsBackend;
  let b: TlsBackend;
  let fallback: TlsBackend;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let edge: number;
  let strict: number;

  const metric = async (name: string, labels: Record<string, string>) => sampleValue(await admin.metrics(), name, labels) ?? 0;
  const refused = (entryPoint: string, reason: string) => metric('switchboard_tls_handshake_failures_total', { entry_point: entryPoint, reason });
  const connections = (service: string) => metric('switchboard_tcp_connections_total', { service });

  beforeAll(async () => {
    const dir = await makeTempDir('sb-tcp-passthrough-');
    [a, b, fallback] = await Promise.all([startTlsBackend(dir, 'a', ['a.test']), startTlsBackend(dir, 'b', ['*.b.test']), startTlsBackend(dir, 'fallback', ['fallback.test'])]);
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
limits: { headersTimeout: ${HEADERS_TIMEOUT_MS}ms }
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  edge: { listen: "127.0.0.1:{{port:edge}}", protocol: tcp, passthrough: true, service: fallback, sni: { a.test: a, "*.b.test": b } }
  strict: { listen: "127.0.0.1:{{port:strict}}", protocol: tcp, passthrough: true, sni: { a.test: a } }
services:
  a: { instances: [127.0.0.1:${a.port}] }
  b: { instances: [127.0.0.1:${b.port}] }
  fallback: { instances: [127.0.0.1:${fallback.port}] }
routes: []
`);
    [edge, strict] = [gateway.ports.edge!, gateway.ports.strict!];
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await acceptsConnections(edge)) && acceptsConnections(strict), { timeoutMs: 10_000, message: 'the passthrough entry points to listen' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all([a, b, fallback].map((backend) => backend && new Promise((resolve) => backend.server.close(resolve))));
  });

  it("shows openssl s_client each backend's own certificate by server name (a.test, x.b.test by wildcard), and the default service's to an unknown name and to none", async () => {
    const shown = async (servername: string | undefined) => (await presentedCertificate(edge, servername)).fingerprint256;
    expect(await shown('a.test')).toBe(a.certificate.fingerprint256);
    expect(await shown('x.b.test')).toBe(b.certificate.fingerprint256);
    expect(await shown('unknown.test')).toBe(fallback.certificate.fingerprint256);
    expect(await shown(undefined)).toBe(fallback.certificate.fingerprint256);
  });

  it('gives the backend the ClientHello untouched (it reads the server name the client sent, in capitals with a trailing dot) over TLS end to end, and counts the connection for the service that took it', async () => {
    const before = await Promise.all([connections('a'), connections('b'), connections('fallback')]);
    // Routed as the tls path compares names (no case, no trailing dot); the backend sees the name as sent.
    expect(await tlsAnswer(edge, 'A.Test.', a.pem)).toEqual({ line: 'a A.Test.', fingerprint: a.certificate.fingerprint256 });
    expect(await tlsAnswer(edge, 'deep.b.test', b.pem)).toEqual({ line: 'b deep.b.test', fingerprint: b.certificate.fingerprint256 });
    // One label only: y.x.b.test is no match for *.b.test.
    expect(await tlsAnswer(edge, 'y.x.b.test', fallback.pem)).toEqual({ line: 'fallback y.x.b.test', fingerprint: fallback.certificate.fingerprint256 });
    await waitFor(async () => (await Promise.all([connections('a'), connections('b'), connections('fallback')])).join() === [before[0]! + 1, before[1]! + 1, before[2]! + 1].join(), {
      timeoutMs: 5_000,
      message: 'one connection counted for each of a, b and fallback',
    });
    const view = (await (await admin.get('/api/tcp')).json()) as { entryPoints: Array<Record<string, unknown>> };
    expect(view.entryPoints.find((entryPoint) => entryPoint.name === 'strict')).toMatchObject({ service: null, sni: { 'a.test': 'a' }, tls: false, passthrough: true });
  });

  it('sends a client whose first byte starts no TLS record to the default service at once, and refuses it where there is none', async () => {
    expect((await exchange(edge, Buffer.from('PING\r\n'))).answer).toBe('PLAIN fallback PING\r\n');
    const before = await refused('strict', 'no-service');
    expect((await exchange(strict, Buffer.from('PING\r\n'))).answer).toBe('');
    await waitFor(async () => (await refused('strict', 'no-service')) === before + 1, { timeoutMs: 5_000, message: 'the plain-text client counted as no-service on strict' });
  });

  it('without a default service, refuses an unknown server name and a ClientHello without SNI, counted against the entry point, while a.test passes', async () => {
    const before = await refused('strict', 'no-service');
    const servicesBefore = await Promise.all([connections('a'), connections('fallback')]);
    await expect(presentedCertificate(strict, 'unknown.test')).rejects.toThrow(/got no certificate/);
    await expect(presentedCertificate(strict, undefined)).rejects.toThrow(/got no certificate/);
    expect((await presentedCertificate(strict, 'a.test')).fingerprint256).toBe(a.certificate.fingerprint256);
    await waitFor(async () => (await refused('strict', 'no-service')) === before + 2, { timeoutMs: 5_000, message: 'two no-service refusals on strict' });
    expect(await Promise.all([connections('a'), connections('fallback')])).toEqual([servicesBefore[0]! + 1, servicesBefore[1]]);
    expect(await logOf(gateway.process)).toContain('entry point strict refused a connection: a server name (or none: no SNI, or not TLS) that matches no sni entry');
  });

  it('closes a client that never finishes its ClientHello at the handshake deadline, counted as a timeout of the entry point and against no service or instance', async () => {
    const before = { timeouts: await refused('edge', 'timeout'), fallback: await connections('fallback') };
    const hello = await clientHello('a.test');
    const [partial, silent] = await Promise.all([exchange(edge, hello.subarray(0, 20)), exchange(edge, Buffer.alloc(0))]);
    for (const { ms } of [partial, silent]) {
      expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
      expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS * 2);
    }
    await waitFor(async () => (await refused('edge', 'timeout')) === before.timeouts + 2, { timeoutMs: 5_000, message: 'two ClientHello timeouts counted on edge' });
    // Nothing reached a service: no connection counted for a or fallback, so no instance was blamed.
    expect(await connections('fallback')).toBe(before.fallback);
    expect(await metric('switchboard_tcp_errors_total', { service: 'a', class: 'cancelled' })).toBe(0);
  });

  it('leaves a connection open past the handshake deadline once its ClientHello was read: the deadline bounds the wait for the ClientHello alone', async () => {
    const before = await refused('edge', 'timeout');
    const socket = connectTls({ host: '127.0.0.1', port: edge, servername: 'echo.b.test', ca: b.pem, checkServerIdentity: () => undefined });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    // A connection accepted after it that never sends a ClientHello is cut at its own deadline: by then this one's has passed too.
    await exchange(edge, Buffer.alloc(0));
    let echoed = '';
    socket.on('data', (chunk: Buffer) => (echoed += chunk.toString()));
    socket.write('still open');
    await waitFor(() => echoed === 'still open' || socket.destroyed, { timeoutMs: 5_000, message: 'the echo of the connection routed before the deadline' });
    expect(echoed).toBe('still open');
    socket.end();
    await once(socket, 'close');
    await waitFor(async () => (await refused('edge', 'timeout')) === before + 1, { timeoutMs: 5_000, message: 'the silent connection counted as a timeout on edge' });
    // Only the silent one: the routed connection was never counted as a timeout.
    expect(await refused('edge', 'timeout')).toBe(before + 1);
  });
});

describe('tcp entry points reloaded into another kind of listener', () => {
  let gateway: GatewayProcess | undefined;
  let backend: TlsBackend | undefined;

  afterAll(async () => {
    await gateway?.process.stop();
    if (backend) await new Promise((resolve) => backend!.server.close(resolve));
  });

  it('keep forwarding by the settings in force until the restart that passthrough waits for: an sni table alone does not refuse every connection of the plain listener', async () => {
    const dir = await makeTempDir('sb-tcp-passthrough-reload-');
    const served = await startTlsBackend(dir, 'kept', ['kept.test']);
    backend = served;
    const config = (edge: string) => `
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  edge: { listen: "127.0.0.1:{{port:edge}}", protocol: tcp, ${edge} }
services:
  kept: { instances: [127.0.0.1:${served.port}] }
  other: { instances: [127.0.0.1:${served.port}] }
routes: []
`;
    const started = await startGateway(config('service: kept'));
    gateway = started;
    const edge = started.ports.edge!;
    await waitFor(() => acceptsConnections(edge), { timeoutMs: 10_000, message: 'the tcp entry point to listen' });
    expect((await tlsAnswer(edge, 'kept.test', served.pem)).line).toBe('kept kept.test');
    await started.writeConfig(config('passthrough: true, sni: { kept.test: other }'));
    await waitFor(async () => (await logOf(started.process)).includes('these settings apply only after a restart'), { timeoutMs: 10_000, message: 'the reload, its passthrough waiting for a restart' });
    // The plain listener passes no server name: by the reloaded sni table alone, every connection was refused (no-service).
    expect((await tlsAnswer(edge, 'kept.test', served.pem)).line).toBe('kept kept.test');
    expect(await logOf(started.process)).not.toContain('refused a connection');
  });
});
