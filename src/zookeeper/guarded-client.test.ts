import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../logger.ts';
import { createGuardedClient } from './guarded-client.ts';

/**
 * A stand-in server that answers a client's connect request with a handshake whose session id
 * reads, when misparsed as a reply header, as an unknown error code (what a real server's
 * random session id does).
 */
async function startHandshakeServer(): Promise<{ server: Server; port: number; requests: Buffer[]; closed: Promise<void> }> {
  const requests: Buffer[] = [];
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  const server = createServer((socket: Socket) => {
    socket.on('data', (chunk) => {
      requests.push(chunk);
      if (requests.length > 1) return;
      const body = Buffer.alloc(36);
      body.writeInt32BE(0, 0); // protocol version
      body.writeInt32BE(3_000, 4); // negotiated timeout
      body.writeUInt32BE(0x12345678, 8); // session id (high)
      body.writeUInt32BE(0xabcdef01, 12); // session id (low): read as "err" by a confused parser
      body.writeInt32BE(16, 16); // password length
      const frame = Buffer.alloc(4);
      frame.writeInt32BE(body.length, 0);
      // Answer after the client had time to send its close request.
      setTimeout(() => socket.write(Buffer.concat([frame, body])), 20);
    });
    socket.on('close', () => markClosed());
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, requests, closed };
}

describe('createGuardedClient', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
  });

  it('survives a raw close() racing the handshake, which crashes an unguarded client with "Unknown code"', async () => {
    const fake = await startHandshakeServer();
    server = fake.server;
    const guarded = createGuardedClient(`127.0.0.1:${fake.port}`, { sessionTimeoutMs: 3_000 }, rootLogger);
    guarded.connect();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const socket = (guarded.client as unknown as { connectionManager: { socket: Socket } }).connectionManager.socket;
    socket.once('connect', () => guarded.client.close());
    // The guard turns the parser's throw into a dropped socket: the server sees the connection end.
    await fake.closed;
    await guarded.retire(100);
    expect(fake.requests.length).toBeGreaterThanOrEqual(1);
  });

  it('retires a client mid-handshake without sending a close request and without reconnecting', async () => {
    const fake = await startHandshakeServer();
    server = fake.server;
    let connections = 0;
    fake.server.on('connection', () => (connections += 1));
    const guarded = createGuardedClient(`127.0.0.1:${fake.port}`, { sessionTimeoutMs: 3_000, spinDelayMs: 10 }, rootLogger);
    guarded.connect();
    await once(fake.server, 'connection');
    await guarded.retire(1_000);
    await fake.closed;
    // Give a (wrong) reconnect the time it would need to show up.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(connections).toBe(1);
    const CLOSE_SESSION_OP = Buffer.from([0xff, 0xff, 0xff, 0xf5]);
    expect(Buffer.concat(fake.requests).includes(CLOSE_SESSION_OP)).toBe(false);
  });
});
