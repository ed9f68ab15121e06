import { createServer, type Http2Server } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { accessLineOf, logOf, startGateway, type GatewayProcess } from '../harness/index.ts';

/**
 * An h2c upstream (node:http2, whose nghttp2 resets a stream with an empty `:authority` with
 * PROTOCOL_ERROR before any handler sees it) that answers 200 with the `:authority` it got.
 */
async function startAuthorityEcho(): Promise<{ server: Http2Server; port: number }> {
  const server = createServer();
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const authority = String(headers[':authority']);
    stream.respond({ ':status': 200, 'content-length': Buffer.byteLength(authority) });
    stream.end(authority);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** `GET path` with an empty Host on a fresh connection (node:http sends none then): the whole answer, as text. */
function getWithEmptyHost(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`GET ${path} timed out`)));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    // Written, not ended: a client that half-closes first gets no answer.
    socket.write(`GET ${path} HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n`);
  });
}

describe("a client's empty Host towards an HTTP/2 instance", () => {
  let upstream: Awaited<ReturnType<typeof startAuthorityEcho>>;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    upstream = await startAuthorityEcho();
    // One failure counted against the instance would eject it.
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  echo:
    protocol: h2c
    instances: [{ id: a, host: 127.0.0.1, port: ${upstream.port} }]
    outlierDetection: { consecutiveErrors: 1, baseEjectionTime: 60s }
routes:
  - { path: /, service: echo }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  // RFC 9112 §3.2 lets an HTTP/1.1 client send `Host:` empty; an empty `:authority` is malformed
  // HTTP/2 (nghttp2 resets it with PROTOCOL_ERROR), and that reset counts against the instance.
  it("sends the instance's address as :authority, and no client can make it fail", async () => {
    try {
      for (let sent = 0; sent < 3; sent += 1) {
        const answer = await getWithEmptyHost(gateway.port, `/empty-host/${sent}`);
        expect([answer.slice(0, answer.indexOf('\r\n')), answer.slice(answer.indexOf('\r\n\r\n') + 4)]).toEqual(['HTTP/1.1 200 OK', `127.0.0.1:${upstream.port}`]);
      }
      expect(await accessLineOf(gateway.process, '/empty-host/2')).toMatchObject({ status: 200, attempts: 1 });
      expect(await admin.instance('echo', 'a')).toMatchObject({ requests: 3, errors: 0, health: { state: 'healthy' } });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await logOf(gateway.process)}`, { cause: error });
    }
  });
});
