import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../harness/index.ts';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request through the gateway, read to its end. */
function send(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      response.once('error', reject);
    });
    request.once('error', reject);
    request.end();
  });
}

/** A server on a free port of 127.0.0.1. */
async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

describe('cache: whose answer a stored entry is, with a real gateway, real backends and a real auth service', () => {
  const servers: Server[] = [];
  let gateway: GatewayProcess;

  beforeAll(async () => {
    // A backend that names itself and the user the auth service named in every answer, fresh for a minute and varying by that user.
    const backend = (name: string) =>
      listen((request, response) => {
        const body = `${name} ${request.url} for ${String(request.headers['x-auth-user'] ?? 'nobody')}`;
        response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', vary: 'X-Auth-User', 'content-length': Buffer.byteLength(body) }).end(body);
      });
    // The auth service passes every request with a `user` cookie and names that user in X-Auth-User.
    const auth = await listen((request, response) => {
      const user = /(?:^|;\s*)user=(\w+)/.exec(request.headers.cookie ?? '')?.[1];
      if (user === undefined) return void response.writeHead(401).end();
      response.writeHead(200, { 'x-auth-user': user }).end();
    });
    const orders = await backend('orders');
    // Orders also takes WebSocket upgrades on any path, and echoes what comes through.
    orders.server.on('upgrade', (request: { headers: IncomingHttpHeaders }, socket: Duplex) => {
      const accept = createHash('sha1').update(`${String(request.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.pipe(socket);
    });
    const billing = await backend('billing');
    servers.push(orders.server, billing.server, auth.server);
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
  edge: { listen: "127.0.0.1:{{port:edge}}", middlewares: [edge-memory] }
services:
  orders: { instances: [127.0.0.1:${orders.port}], healthCheck: false, outlierDetection: false, retries: false }
  billing: { instances: [127.0.0.1:${billing.port}], healthCheck: false, outlierDetection: false, retries: false }
middlewares:
  memory: { cache: { maxSize: 1MiB } }
  edge-memory: { cache: { maxSize: 1MiB } }
  sso: { forwardAuth: { address: "http://127.0.0.1:${auth.port}/check", authResponseHeaders: [X-Auth-User] } }
routes:
  - { path: /orders, service: orders, stripPrefix: true, middlewares: [memory] }
  - { path: /billing, service: billing, stripPrefix: true, middlewares: [memory] }
  - { path: /account, service: billing, stripPrefix: true, middlewares: [sso, memory] }
  - { path: /late, service: billing, stripPrefix: true, middlewares: [memory, sso], entryPoints: [web] }
  - { path: /vault, service: billing, stripPrefix: true, middlewares: [sso], entryPoints: [edge] }
`);
  });
  afterAll(async () => {
    await gateway?.process.stop();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('never answers one route with what another route sharing the cache stored for the same upstream path', async () => {
    const orders = await send(gateway.port, '/orders/summary');
    expect(orders.body).toBe('orders /summary for nobody');
    const billing = await send(gateway.port, '/billing/summary');
    expect(billing.body).toBe('billing /summary for nobody');
    expect(billing.headers['x-cache-status']).toBe('MISS');
    // Each route's own entry is still there.
    expect((await send(gateway.port, '/orders/summary')).headers['x-cache-status']).toBe('HIT');
  });

  it('keeps apart the variants of an answer that varies by a header the gateway set upstream (forwardAuth X-Auth-User)', async () => {
    const alice = await send(gateway.port, '/account/me', { cookie: 'user=alice' });
    expect(alice.body).toBe('billing /me for alice');
    const bob = await send(gateway.port, '/account/me', { cookie: 'user=bob' });
    expect(bob.body).toBe('billing /me for bob');
    // A client's own X-Auth-User never picks another user's variant either.
    const forged = await send(gateway.port, '/account/me', { cookie: 'user=mallory', 'x-auth-user': 'alice' });
    expect(forged.body).toBe('billing /me for mallory');
    const aliceAgain = await send(gateway.port, '/account/me', { cookie: 'user=alice' });
    expect(aliceAgain.headers['x-cache-status']).toBe('HIT');
    expect(aliceAgain.body).toBe('billing /me for alice');
  });

  it('lets an access control listed after the cache refuse a client a stored answer exists for, and keys it by what that control sends upstream', async () => {
    const alice = await send(gateway.port, '/late/x', { cookie: 'user=alice' });
    expect([alice.body, alice.headers['x-cache-status']]).toEqual(['billing /x for alice', 'MISS']);
    expect((await send(gateway.port, '/late/x')).status).toBe(401);
    const bob = await send(gateway.port, '/late/x', { cookie: 'user=bob' });
    expect(bob.body).toBe('billing /x for bob');
    const aliceAgain = await send(gateway.port, '/late/x', { cookie: 'user=alice' });
    expect([aliceAgain.body, aliceAgain.headers['x-cache-status']]).toEqual(['billing /x for alice', 'HIT']);
  });

  it("lets a route's access control refuse a client an entry point's cache holds an answer for", async () => {
    const port = gateway.ports.edge!;
    const alice = await send(port, '/vault/y', { cookie: 'user=alice' });
    expect([alice.body, alice.headers['x-cache-status']]).toEqual(['billing /y for alice', 'MISS']);
    expect((await send(port, '/vault/y')).status).toBe(401);
    expect((await send(port, '/vault/y', { cookie: 'user=mallory', 'x-auth-user': 'alice' })).body).toBe('billing /y for mallory');
    expect((await send(port, '/vault/y', { cookie: 'user=alice' })).headers['x-cache-status']).toBe('HIT');
  });

  it('passes a WebSocket upgrade on a path whose plain GET answer is stored through to the upstream', async () => {
    await send(gateway.port, '/orders/live');
    expect((await send(gateway.port, '/orders/live')).headers['x-cache-status']).toBe('HIT');
    const status = await new Promise<number>((resolve, reject) => {
      const request = httpRequest({
        host: '127.0.0.1',
        port: gateway.port,
        path: '/orders/live',
        agent: false,
        headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      request.once('upgrade', (response, socket) => {
        socket.destroy();
        resolve(response.statusCode!);
      });
      request.once('response', (response) => {
        response.resume();
        resolve(response.statusCode!);
      });
      request.once('error', reject);
      request.end();
    });
    expect(status).toBe(101);
  });
});
