import { request as httpRequest } from 'node:http';
import { WebSocket } from 'undici';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, mkdirp } from '../../src/zookeeper/zookeeper-writes.ts';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import {
  connectZooKeeperClient,
  createTestCa,
  makeCertificate,
  freePort,
  logOf,
  makeTempDir,
  startGateway,
  startProtocolBackend,
  startZooKeeper,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type ZooKeeperCluster,
} from '../harness/index.ts';

/** What backend-protocols.mjs says it received. */
interface Received {
  name: string;
  httpVersion: string;
  encrypted: boolean;
  servername: string | null;
  alpn: string | null;
  clientCertificate: string | null;
  url: string;
}

/** One answer through the gateway, trailers included (node:http exposes them after the body). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; trailers: NodeJS.Dict<string> }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, headers: { te: 'trailers', ...headers } }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, trailers: response.trailers }));
      // A connection closed mid-body aborts the response with neither 'end' nor (unlisted) 'error', and the
      // request's idle timer goes with the socket; after 'end' this is a no-op.
      response.on('close', () => reject(new Error(`GET ${path}: the connection closed before the whole answer`)));
    });
    request.setTimeout(10_000, () => request.destroy(new Error(`GET ${path} timed out`)));
    request.on('error', reject);
    request.end();
  });
}

describe('the gateway speaks each instance its registered protocol, for traffic and health checks alike', () => {
  let zk: ZooKeeperCluster;
  let writer: Client;
  let h2c: BackendProcess;
  let https: BackendProcess;
  let h2: BackendProcess;
  let rogue: BackendProcess;
  let mutual: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;

  async function registerInstance(service: string, payload: Record<string, unknown>): Promise<void> {
    await mkdirp(writer, `/services/${service}`);
    await create(writer, `/services/${service}/a`, Buffer.from(JSON.stringify({ host: '127.0.0.1', ...payload })), zookeeper.CreateMode.EPHEMERAL);
  }

  beforeAll(async () => {
    const dir = await makeTempDir('sb-upstream-tls-');
    const ca = await createTestCa(dir);
    const [signed, selfSigned, gatewayClient] = await Promise.all([
      ca.issue('backend', 'backend.test'),
      makeCertificate(dir, 'rogue', { key: 'ec', names: ['backend.test'] }),
      ca.issue('gateway', 'gateway.test', { clientAuth: true }),
    ]);
    [zk, h2c, https, h2, rogue, mutual] = await Promise.all([
      startZooKeeper(),
      startProtocolBackend({ mode: 'h2c', name: 'h2c-1' }),
      startProtocolBackend({ mode: 'https', name: 'https-1', ...signed }),
      startProtocolBackend({ mode: 'h2', name: 'h2-1', ...signed }),
      startProtocolBackend({ mode: 'https', name: 'rogue-1', ...selfSigned }),
      startProtocolBackend({ mode: 'https', name: 'mutual-1', ...signed, clientCaFile: ca.caFile }),
    ]);
    writer = await connectZooKeeperClient(zk.connectString);
    await registerInstance('said-h2c', { port: h2c.port, protocol: 'h2c' });
    await registerInstance('unsaid', { port: h2c.port });
    await registerInstance('secure', { port: https.port, protocol: 'https' });
    await registerInstance('secure-h2', { port: h2.port, protocol: 'h2' });
    await registerInstance('rogue', { port: rogue.port, protocol: 'https' });
    await registerInstance('raw-tcp', { port: h2c.port, protocol: 'tcp' });
    await registerInstance('mutual', { port: mutual.port, protocol: 'https' });
    await registerInstance('mutual-anonymous', { port: mutual.port, protocol: 'https' });
    await registerInstance('h2-on-https', { port: https.port, protocol: 'h2' });
    await registerInstance('ws', { port: https.port, protocol: 'https' });
    await create(writer, '/services/ws/b-closed', Buffer.from(JSON.stringify({ host: '127.0.0.1', port: await freePort(), protocol: 'https' })), zookeeper.CreateMode.EPHEMERAL);
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
registries: [zk://${zk.connectString}/services]
defaults:
  healthCheck: { path: /health, interval: 200ms, timeout: 2s, healthyThreshold: 1, unhealthyThreshold: 1 }
  tls: { caFile: ${ca.caFile}, serverName: backend.test }
services:
  said-h2c: {}
  unsaid: { protocol: h2c }
  secure: {}
  secure-h2: {}
  rogue: { healthCheck: false, outlierDetection: false, retries: false }
  raw-tcp: { healthCheck: false, outlierDetection: { consecutiveErrors: 1, maxEjectionPercent: 100 } }
  mutual: { tls: { certFile: ${gatewayClient.certFile}, keyFile: ${gatewayClient.keyFile} } }
  mutual-anonymous: { healthCheck: false, outlierDetection: false, retries: false }
  h2-on-https: { healthCheck: false, outlierDetection: false, retries: false }
  ws: { balancer: round-robin, healthCheck: false, outlierDetection: false, retries: { attempts: 2, retryOn: [connect-failure] } }
routes:
  - { path: /said-h2c, service: said-h2c, stripPrefix: true }
  - { path: /unsaid, service: unsaid, stripPrefix: true }
  - { path: /secure, service: secure, stripPrefix: true }
  - { path: /secure-h2, service: secure-h2, stripPrefix: true }
  - { path: /rogue, service: rogue, stripPrefix: true }
  - { path: /raw-tcp, service: raw-tcp, stripPrefix: true }
  - { path: /mutual, service: mutual, stripPrefix: true }
  - { path: /mutual-anonymous, service: mutual-anonymous, stripPrefix: true }
  - { path: /h2-on-https, service: h2-on-https, stripPrefix: true }
  - { path: /ws, service: ws, stripPrefix: true }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    writer?.close();
    await Promise.all([h2c, https, h2, rogue, mutual].map((backend) => backend?.process.kill()));
    await zk?.close();
  });

  it('passes the active health checks over each protocol (h2c prior knowledge, TLS with the service CA, h2 over TLS)', async () => {
    for (const service of ['said-h2c', 'unsaid', 'secure', 'secure-h2', 'mutual']) {
      await waitFor(async () => (await admin.instance(service, 'a'))?.health.reason === 'check-passing', { timeoutMs: 20_000, message: `${service} to pass its active check` }).catch(async (error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(await admin.instance(service, 'a'))}\n${await logOf(gateway.process)}`);
      });
      expect((await admin.instance(service, 'a'))?.health.state).toBe('healthy');
    }
  });

  it('proxies to an instance registered as h2c over HTTP/2 with prior knowledge and forwards its trailers', async () => {
    const answer = await get(gateway.port, '/said-h2c/who');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'h2c-1', httpVersion: '2.0', encrypted: false, url: '/who' } satisfies Partial<Received>);
    expect(answer.trailers['x-backend-trailer']).toBe('h2c-1');
  });

  it('proxies to an h2c instance a request whose client sent HTTP2-Settings without naming it in Connection', async () => {
    // A connection-specific header HTTP/2 forbids (RFC 9113 §8.2.2): sent on, node:http2 refused the request (400 request-rejected).
    const answer = await get(gateway.port, '/said-h2c/who', { 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' });
    expect([answer.status, answer.body]).toEqual([200, expect.stringContaining('"name":"h2c-1"')]);
  });

  it("applies the service's protocol to an instance whose registry entry names none", async () => {
    const answer = await get(gateway.port, '/unsaid/who');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'h2c-1', httpVersion: '2.0' });
  });

  it('proxies to an instance registered as https over TLS, verified with the service CA and sending the configured SNI, and forwards its trailers', async () => {
    const answer = await get(gateway.port, '/secure/who');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'https-1', httpVersion: '1.1', encrypted: true, servername: 'backend.test', url: '/who' } satisfies Partial<Received>);
    // The HTTP/1.1 instance's chunked answer's trailers, as an HTTP/2 instance's above.
    expect(answer.trailers['x-backend-trailer']).toBe('https-1');
  });

  it('proxies to an instance registered as h2 over HTTP/2 on TLS (ALPN h2)', async () => {
    const answer = await get(gateway.port, '/secure-h2/who');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'h2-1', httpVersion: '2.0', encrypted: true, servername: 'backend.test', alpn: 'h2' } satisfies Partial<Received>);
  });

  it('answers 502 upstream-tls for a backend whose certificate the CA did not sign, never falling back to cleartext', async () => {
    const answer = await get(gateway.port, '/rogue/who');
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'upstream-tls', status: 502, service: 'rogue' });
  });

  it('sends the configured client certificate to an instance that requires one (mutual TLS)', async () => {
    const answer = await get(gateway.port, '/mutual/who');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'mutual-1', encrypted: true, servername: 'backend.test', clientCertificate: 'gateway.test' } satisfies Partial<Received>);
  });

  // Both were classed as resets: the first alert comes over TLS 1.3 after the gateway's side of the
  // handshake, with the request already written, and undici's "other side closed" took its place;
  // the second's alert code was in no list of TLS failures.
  it.each([
    ['refuses the gateway for want of a client certificate', '/mutual-anonymous/who'],
    ['registered as h2 knows no protocol the gateway offers through ALPN (an HTTP/1.1-only server)', '/h2-on-https/who'],
  ])('answers 502 upstream-tls, not a reset, when an instance %s', async (_name, path) => {
    const answer = await get(gateway.port, path);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'upstream-tls', status: 502 });
  });

  it('makes the WebSocket handshake over TLS to an https instance, retrying on another instance when one refuses', async () => {
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'ws')?.instances.length === 2, { timeoutMs: 10_000, message: 'both ws instances listed' });
    // Round-robin over a refused instance and a live one: one of two handshakes starts on the refused one.
    for (let index = 0; index < 2; index += 1) {
      const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws/chat`);
      try {
        const message = await new Promise<string>((resolve, reject) => {
          socket.addEventListener('message', (event) => resolve(String(event.data)));
          socket.addEventListener('error', () => reject(new Error(`handshake ${index + 1} failed`)));
        });
        expect(JSON.parse(message)).toMatchObject({ name: 'https-1', encrypted: true, servername: 'backend.test', url: '/chat' } satisfies Partial<Received>);
      } finally {
        socket.close();
      }
    }
  });

  it('answers 502 unsupported-protocol for a tcp instance behind an HTTP route, without counting it against the instance', async () => {
    for (let index = 0; index < 3; index += 1) {
      const answer = await get(gateway.port, '/raw-tcp/who');
      expect(answer.status).toBe(502);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'unsupported-protocol' });
    }
    // With consecutiveErrors 1, one counted failure would have ejected it.
    expect((await admin.instance('raw-tcp', 'a'))?.health).toMatchObject({ state: 'healthy', reason: 'registered' });
  });
});
