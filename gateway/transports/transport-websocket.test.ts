import { createServer, ServerResponse, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext } from '../middleware/middleware-testing.ts';
import type { AttemptResult } from './transport.ts';
import { DEFAULT_POOL_SETTINGS, Http1Transport } from './transport-http1.ts';
import { until } from './transport-http2-testing.ts';

/** A pick that counts its outcomes and its holds' releases. */
function countingPick(address: string) {
  const counts = { done: [] as string[], holds: 0, releases: 0 };
  const pick = {
    kind: 'endpoint',
    address,
    instance: {},
    done: (outcome: { ok: boolean; errorClass?: string }) => void counts.done.push(outcome.ok ? 'ok' : String(outcome.errorClass)),
    answered: () => undefined,
    hold: () => {
      counts.holds += 1;
      return () => void (counts.releases += 1);
    },
  } as unknown as PickedEndpoint;
  return { pick, counts };
}

/** A raw client's WebSocket upgrade request, as a browser would send it. */
const UPGRADE_REQUEST = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

/**
 * A fake gateway on loopback that hands every upgrade it accepts to `transport.upgrade` with `pick`
 * (after `prepare` has had the context); `open()` connects a raw client and sends an upgrade request.
 * `close()` destroys the clients and accepted sockets and resolves once the server has closed.
 */
async function upgradingGateway(
  transport: Http1Transport,
  pick: PickedEndpoint,
  options: { timeoutMs: number; prepare?: (context: GatewayContext) => void },
) {
  const results: AttemptResult[] = [];
  const accepted: Duplex[] = [];
  const clients: Socket[] = [];
  const gateway = createServer();
  gateway.on('upgrade', (request: IncomingMessage, socket: Duplex) => {
    accepted.push(socket);
    const response = new ServerResponse(request);
    response.assignSocket(socket as Socket);
    const context = initialContext(request, response);
    options.prepare?.(context);
    const timeouts = { headersTimeoutMs: options.timeoutMs, bodyTimeoutMs: options.timeoutMs };
    void transport.upgrade(context, pick, timeouts).then((result) => results.push(result));
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  const open = (): Socket => {
    const client = connect((gateway.address() as AddressInfo).port, '127.0.0.1');
    client.on('error', () => undefined);
    client.write(UPGRADE_REQUEST);
    clients.push(client);
    return client;
  };
  const close = async (): Promise<void> => {
    for (const socket of [...clients, ...accepted]) socket.destroy();
    gateway.closeAllConnections();
    await new Promise((resolve) => gateway.close(resolve));
  };
  return { results, open, close };
}

describe('dispatchUpgrade (a real ws server behind Http1Transport, a raw client socket)', () => {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  const start = async (prepare: (context: GatewayContext) => void) => {
    const upstream = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => upstream.once('listening', resolve));
    closers.push(() => {
      for (const socket of upstream.clients) socket.terminate();
      return new Promise((resolve) => upstream.close(resolve));
    });
    upstream.on('connection', (socket) => socket.on('error', () => undefined));
    const address = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, DEFAULT_POOL_SETTINGS);
    closers.push(() => transport.close());
    const { pick, counts } = countingPick(address);
    const gateway = await upgradingGateway(transport, pick, { timeoutMs: 5_000, prepare });
    closers.push(() => gateway.close());
    return { client: gateway.open(), counts, results: gateway.results, upstream };
  };

  it("releases the held pick once and reports a failure of the gateway's own (internal, not the upstream's) when a response header hook throws", async () => {
    const { client, counts, results } = await start((context) => context.responseHeaderHooks.push(() => { throw new Error('hook'); }));
    // The hook runs once the upstream's 101 is in: the upstream socket and the client's are closed, the held pick given back once.
    expect(await until(() => results.length === 1 && client.destroyed, 5_000)).toBe(true);
    expect([counts.holds, counts.releases, counts.done, results[0]]).toEqual([1, 1, ['internal'], expect.objectContaining({ ok: false, errorClass: 'internal' })]);
  });

  it("keeps the 101's Connection: upgrade when a response header edit sets Connection: close, which the client would refuse the WebSocket for", async () => {
    // As a route's `responseHeaders: { set: { Connection: close } }` does on every answer of the route.
    const { client, results } = await start((context) => context.responseHeaderHooks.push((_status, headers) => void (headers.connection = 'close')));
    let head = '';
    client.on('data', (chunk: Buffer) => (head += chunk.toString('latin1')));
    expect(await until(() => head.includes('\r\n\r\n') && results.length === 1, 5_000)).toBe(true);
    expect(head).toMatch(/^HTTP\/1\.1 101 [^]*\r\nconnection: upgrade\r\n/i);
    expect(head).not.toMatch(/connection: close/i);
    expect(results[0]).toMatchObject({ ok: true });
  });

  it("keeps the 101's Upgrade when a response header edit removes it, which the client would refuse the WebSocket for", async () => {
    // As a route's `responseHeaders: { remove: [upgrade] }` does on every answer of the route.
    const { client, results } = await start((context) => context.responseHeaderHooks.push((_status, headers) => void delete headers.upgrade));
    let head = '';
    client.on('data', (chunk: Buffer) => (head += chunk.toString('latin1')));
    expect(await until(() => head.includes('\r\n\r\n') && results.length === 1, 5_000)).toBe(true);
    expect(head).toMatch(/^HTTP\/1\.1 101 [^]*\r\nupgrade: websocket\r\n/i);
    expect(results[0]).toMatchObject({ ok: true });
  });

  it('releases the held pick once both sockets of the tunnel close', async () => {
    const { client, counts, results, upstream } = await start(() => undefined);
    expect(await until(() => results.length === 1 && upstream.clients.size === 1, 5_000)).toBe(true);
    expect([counts.holds, counts.releases, counts.done]).toEqual([1, 0, ['ok']]);
    client.destroy();
    expect(await until(() => counts.releases === 1 && upstream.clients.size === 0, 5_000)).toBe(true);
    expect([counts.holds, counts.releases, counts.done]).toEqual([1, 1, ['ok']]);
  });
});

describe('Http1Transport.close with open tunnels (a real upstream that answers one upgrade and holds the next)', () => {
  it('waits for the pool and the tunnels within one grace, not one grace each', { timeout: 30_000 }, async () => {
    // The first upgrade gets its 101 and stays open (a tunnel nobody cuts); the second is never
    // answered, so the pool's close waits for it until the grace destroys the pool.
    const held: Socket[] = [];
    const upstream = createServer();
    upstream.on('upgrade', (_request: IncomingMessage, socket: Socket) => {
      held.push(socket);
      socket.on('error', () => undefined);
      if (held.length === 1) socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, DEFAULT_POOL_SETTINGS);
    const { pick } = countingPick(address);
    const gateway = await upgradingGateway(transport, pick, { timeoutMs: 30_000 });
    try {
      gateway.open();
      expect(await until(() => gateway.results.length === 1, 10_000)).toBe(true);
      gateway.open();
      expect(await until(() => held.length === 2, 10_000)).toBe(true);
      const graceMs = 1_500;
      const started = performance.now();
      await transport.close(graceMs);
      const tookMs = performance.now() - started;
      // One grace (1.5 s) and room for a loaded machine; a grace for the pool and another for the tunnels take 3 s.
      expect(tookMs).toBeGreaterThanOrEqual(graceMs - 50);
      expect(tookMs).toBeLessThan(graceMs + 1_000);
    } finally {
      for (const socket of held) socket.destroy();
      upstream.closeAllConnections();
      await Promise.all([gateway.close(), new Promise((resolve) => upstream.close(resolve))]);
    }
  });
});
