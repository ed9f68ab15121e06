import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { sampleValue } from '../harness/prometheus-text.ts';
import { acceptsConnections, logOf, makeCertificate, makeTempDir, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

/** Connects over TLS with `servername` (none when undefined), writes a line, and resolves with what came back before the close. */
function tlsExchange(port: number, servername: string | undefined, ca: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca, ...(servername === undefined ? {} : { servername }), checkServerIdentity: () => undefined }, () => socket.write('hi\n'));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(answer));
  });
}

describe('a tcp entry point with tls and an sni table, and no service to fall back on', () => {
  let backend: Server;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let ca: Buffer;

  beforeAll(async () => {
    backend = createServer((socket) => socket.once('data', (chunk: Buffer) => socket.end(`a got ${chunk.toString()}`)));
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const certificate = await makeCertificate(await makeTempDir('sb-tcp-tls-strict-'), 'strict', { key: 'ec', names: ['a.test', 'other.test'] });
    ca = await readFile(certificate.certFile);
    gateway = await startGateway(`
admin: 127.0.0.1:{{adminPort}}
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  strict:
    listen: "127.0.0.1:{{port:strict}}"
    protocol: tcp
    tls: { certificates: [{ certFile: ${certificate.certFile}, keyFile: ${certificate.keyFile} }] }
    sni: { a.test: a }
services:
  a: { instances: [127.0.0.1:${(backend.address() as AddressInfo).port}] }
routes: []
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(() => acceptsConnections(gateway.ports.strict!), { timeoutMs: 10_000, message: 'the strict entry point to listen' });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    backend?.close();
  });

  it('forwards a.test to its service, and after the handshake refuses a name no entry takes and a ClientHello without SNI as no-service, counted against the entry point', async () => {
    const port = gateway.ports.strict!;
    const refused = async () => sampleValue(await admin.metrics(), 'switchboard_tls_handshake_failures_total', { entry_point: 'strict', reason: 'no-service' }) ?? 0;
    const before = await refused();
    expect(await tlsExchange(port, 'a.test', ca)).toBe('a got hi\n');
    expect(await tlsExchange(port, 'other.test', ca)).toBe('');
    expect(await tlsExchange(port, undefined, ca)).toBe('');
    await waitFor(async () => (await refused()) === before + 2, { timeoutMs: 5_000, message: 'two no-service refusals on strict' });
    expect(await logOf(gateway.process)).toContain('entry point strict refused a connection: a server name (or none: no SNI, or not TLS) that matches no sni entry');
  });
});
