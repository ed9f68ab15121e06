import { createServer, ServerResponse, type IncomingMessage } from 'node:http';
import { createServer as createHttp2Server } from 'node:http2';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import { initialContext } from '../middleware/middleware-testing.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { TransportSettings } from './transport.ts';
import { listenOnLoopback, startAttemptGateway, until } from './transport-http2-testing.ts';
import { UpstreamTransports } from './upstream-transports.ts';

const settings = (key: string): TransportSettings => ({ connectTimeoutMs: 1_000, tls: { ca: undefined, cert: undefined, key: undefined, verify: true, serverName: undefined }, key });
const http = { host: '127.0.0.1', protocol: 'http' as const };

describe('UpstreamTransports', () => {
  const transports = new UpstreamTransports();
  afterEach(() => transports.close());

  it('hands out one transport per protocol, address and settings key', () => {
    const first = transports.get(http, '127.0.0.1:1', settings('a'));
    // A key built anew per request (not the same string object) finds the same transport.
    expect(transports.get(http, ['127.0.0.1', '1'].join(':'), settings(['a'].join('')))).toBe(first);
    expect(transports.get(http, '127.0.0.1:2', settings('a'))).not.toBe(first);
    expect(transports.get(http, '127.0.0.1:1', settings('b'))).not.toBe(first);
    expect(transports.get({ host: '127.0.0.1', protocol: 'h2c' }, '127.0.0.1:1', settings('a'))).not.toBe(first);
  });

  it('makes a fresh transport after sweeping an idle one, and keeps the ones still in use', () => {
    const swept = transports.get(http, '127.0.0.1:1', settings('a'));
    expect(transports.sweep(-60_000)).toBe(1);
    const fresh = transports.get(http, '127.0.0.1:1', settings('a'));
    expect(fresh).not.toBe(swept);
    expect(transports.sweep(60_000)).toBe(0);
    expect(transports.get(http, '127.0.0.1:1', settings('a'))).toBe(fresh);
  });

  it('keeps a transport whose WebSocket tunnel is still open, however long unused, so the shutdown still waits for its line', { timeout: 30_000 }, async () => {
    // The upstream answers the upgrade with its 101 and keeps the tunnel open.
    const upstreamSockets: Socket[] = [];
    const upstream = createServer().on('upgrade', (_request: IncomingMessage, socket: Socket) => {
      upstreamSockets.push(socket.on('error', () => undefined));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    });
    const address = `127.0.0.1:${await listenOnLoopback(upstream)}`;
    const transport = transports.get(http, address, settings('tunnels'));
    const pick = { kind: 'endpoint', address, instance: {}, done: () => undefined, answered: () => undefined, hold: () => () => undefined } as unknown as PickedEndpoint;
    const gatewaySockets: Duplex[] = [];
    let upgraded = 0;
    const gateway = createServer().on('upgrade', (request: IncomingMessage, socket: Duplex) => {
      gatewaySockets.push(socket);
      const response = new ServerResponse(request);
      response.assignSocket(socket as Socket);
      void transport.upgrade(initialContext(request, response), pick, { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 }).then((result) => (upgraded += result.ok ? 1 : 0));
    });
    const client = connect(await listenOnLoopback(gateway), '127.0.0.1').on('error', () => undefined);
    try {
      client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      expect(await until(() => upgraded === 1, 10_000), 'the tunnel opened').toBe(true);
      // Swept, it would leave the shutdown's close, which then would not wait for the tunnel's line.
      expect(transports.sweep(-60_000)).toBe(0);
      // Cut as the drain deadline cuts it: the gateway destroys the client's socket.
      for (const socket of gatewaySockets) socket.destroy();
      expect(await until(() => transports.sweep(-60_000) === 1, 10_000), 'swept once the tunnel closed').toBe(true);
    } finally {
      client.destroy();
      for (const socket of [...upstreamSockets, ...gatewaySockets]) socket.destroy();
      await Promise.all([new Promise((resolve) => gateway.close(resolve)), new Promise((resolve) => upstream.close(resolve))]);
    }
  });
});

describe('UpstreamTransports.close (the shutdown)', () => {
  it.each(['http', 'h2c'] as const)('cuts a %s request the upstream never answers once the grace given has passed, as pool-closed', async (protocol) => {
    let received = 0;
    const silent = protocol === 'http' ? createServer(() => (received += 1)) : createHttp2Server().on('stream', () => (received += 1));
    const gateway = await startAttemptGateway();
    const transports = new UpstreamTransports();
    try {
      const transport = transports.get({ host: '127.0.0.1', protocol }, `127.0.0.1:${await listenOnLoopback(silent)}`, settings('a'));
      gateway.attempt = (context, pick) => transport.attempt(context, pick, { headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 }, null);
      const answer = gateway.send('/never');
      expect(await until(() => received === 1, 3_000), 'the upstream received the request').toBe(true);
      let closed = false;
      void transports.close(100).then(() => (closed = true));
      expect(await until(() => closed, 3_000), 'the transports closed').toBe(true);
      expect((await answer).status).toBe(503);
      expect(gateway.ended.map(({ result }) => (result.ok ? 'ok' : result.errorClass))).toEqual(['pool-closed']);
    } finally {
      await gateway.close();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
