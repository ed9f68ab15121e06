import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { Http1Transport } from './transport-http1.ts';

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

describe('Http1Transport', () => {
  const servers: Server[] = [];
  let transport: Http1Transport | undefined;
  afterEach(async () => {
    await transport?.close();
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("keeps an idle socket as long as the backend's Keep-Alive hint says, beyond the keep-alive used without a hint", async () => {
    // The backend keeps idle sockets 10 s and says so (`Keep-Alive: timeout=10`); it counts connections.
    const connections: Socket[] = [];
    const backend = createServer((_request, response) => response.end('ok'));
    backend.keepAliveTimeout = 10_000;
    backend.on('connection', (socket: Socket) => connections.push(socket));
    servers.push(backend);
    const address = `127.0.0.1:${await listen(backend)}`;
    const idleWithoutHintMs = 50;
    transport = new Http1Transport({ host: '127.0.0.1', address, connectTimeoutMs: 1_000, tls: undefined }, { keepAliveTimeoutMs: idleWithoutHintMs, keepAliveMaxTimeoutMs: 60_000, connections: 1 });
    const upstream = transport;
    const gateway = createServer((request, response) => {
      const context: GatewayContext = initialContext(request, response);
      const pick = { kind: 'endpoint', address, instance: {}, done: () => undefined } as unknown as PickedEndpoint;
      void upstream.attempt(context, pick, { headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }, null);
    });
    servers.push(gateway);
    const port = await listen(gateway);

    expect((await sendTestRequest(port, '/')).status).toBe(200);
    // Idle for many times the hint-less keep-alive (a capped hint closed the socket after 50 ms here).
    await new Promise((resolve) => setTimeout(resolve, 10 * idleWithoutHintMs));
    expect((await sendTestRequest(port, '/')).status).toBe(200);
    expect(connections).toHaveLength(1);
    expect(connections[0]!.destroyed).toBe(false);
  });
});
