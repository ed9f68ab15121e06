import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import zookeeper, { type Event } from 'node-zookeeper-client';
import { afterEach, describe, expect, it } from 'vitest';
import { rootLogger } from '../logger.ts';
import { createGuardedClient, type GuardedClient } from './guarded-client.ts';
import { isZooKeeperError } from './zookeeper-errors.ts';
import { ZooKeeperFrameSplitter } from './zookeeper-frames.ts';
import { readerFor } from './zookeeper-ops.ts';
import { ADD_WATCH_OPCODE } from './zookeeper-recursive-watch.ts';

const GET_DATA_OPCODE = 4;
const NO_NODE = -101;

function frame(body: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

function reply(xid: number, err: number, zxid = 42n): Buffer {
  const body = Buffer.alloc(16);
  body.writeInt32BE(xid, 0);
  body.writeBigInt64BE(zxid, 4);
  body.writeInt32BE(err, 12);
  return frame(body);
}

function notification(type: number, path: string): Buffer {
  const bytes = Buffer.from(path, 'utf8');
  const body = Buffer.alloc(16 + 12 + bytes.length);
  body.writeInt32BE(-1, 0);
  body.writeBigInt64BE(-1n, 4);
  body.writeInt32BE(0, 12);
  body.writeInt32BE(type, 16);
  body.writeInt32BE(3, 20); // SyncConnected
  body.writeInt32BE(bytes.length, 24);
  bytes.copy(body, 28);
  return frame(body);
}

/**
 * A stand-in server: answers the handshake, then each request by its opcode. `addWatch` gets
 * `addWatchError`: 0 is followed by a creation notification; an error is answered as ZooKeeper's
 * UnimplementedRequestProcessor does (zxid -1, then the connection closed). A getData gets
 * NO_NODE, anything else OK. Records the paths of the `addWatch` requests.
 */
async function startScriptedServer(addWatchError: number): Promise<{ server: Server; port: number; addWatchPaths: string[]; connections: () => number }> {
  const addWatchPaths: string[] = [];
  let connections = 0;
  const server = createServer((socket: Socket) => {
    connections += 1;
    const frames = new ZooKeeperFrameSplitter();
    let handshaken = false;
    socket.on('data', (chunk: Buffer) =>
      frames.push(chunk, (request) => {
        if (!handshaken) {
          handshaken = true;
          const body = Buffer.alloc(36);
          body.writeInt32BE(3_000, 4);
          body.writeBigInt64BE(0x1234n, 8);
          body.writeInt32BE(16, 16);
          socket.write(frame(body));
          return true;
        }
        const xid = request.readInt32BE(4);
        const type = request.readInt32BE(8);
        if (type === ADD_WATCH_OPCODE) {
          addWatchPaths.push(request.subarray(16, 16 + request.readInt32BE(12)).toString('utf8'));
          if (addWatchError === 0) socket.write(Buffer.concat([reply(xid, 0), notification(zookeeper.Event.NODE_CREATED, '/svc/a/i1')]));
          else socket.end(reply(xid, addWatchError, -1n));
        } else socket.write(reply(xid, type === GET_DATA_OPCODE ? NO_NODE : 0));
        return true;
      }),
    );
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, addWatchPaths, connections: () => connections };
}

describe('recursive watches through a guarded client', () => {
  let server: Server | undefined;
  let client: GuardedClient | undefined;
  afterEach(async () => {
    await client?.retire(100);
    server?.close();
  });

  async function connect(port: number): Promise<GuardedClient> {
    client = createGuardedClient(`127.0.0.1:${port}`, { sessionTimeoutMs: 3_000 }, rootLogger);
    const connected = once(client.client, 'connected');
    client.connect();
    await connected;
    return client;
  }

  it('sends addWatch through the library, reports the notification that follows its reply, and keeps later replies in step', async () => {
    const fake = await startScriptedServer(0);
    server = fake.server;
    const reader = readerFor((await connect(fake.port)).client);
    const events: string[] = [];
    reader.listen!((event: Event) => events.push(`${event.getName()} ${event.getPath()}`));

    await reader.addRecursiveWatch!('/svc');
    expect(fake.addWatchPaths).toEqual(['/svc']);
    // The library would have dropped the connection on a reply to an opcode it does not know;
    // the next request still gets its own answer on the same connection.
    await expect(reader.getData('/svc/a/i1')).rejects.toSatisfy((error) => isZooKeeperError(error, 'NO_NODE'));
    expect(fake.connections()).toBe(1);
    // Sent before that answer, so handled by now.
    expect(events).toEqual(['NODE_CREATED /svc/a/i1']);
  });

  it('rejects UNIMPLEMENTED for a server without addWatch (before ZooKeeper 3.6), and keeps the last zxid it had', async () => {
    const fake = await startScriptedServer(zookeeper.Exception.UNIMPLEMENTED);
    server = fake.server;
    const guarded = await connect(fake.port);
    const reader = readerFor(guarded.client);
    await expect(reader.getData('/svc')).rejects.toSatisfy((error) => isZooKeeperError(error, 'NO_NODE'));
    await expect(reader.addRecursiveWatch!('/svc')).rejects.toSatisfy((error) => isZooKeeperError(error, 'UNIMPLEMENTED'));
    // The reply's zxid of -1 would be sent as the last zxid seen on the next connection.
    const manager = (guarded.client as unknown as { connectionManager: { zxid: Buffer } }).connectionManager;
    expect(manager.zxid.readBigInt64BE(0)).toBe(42n);
  });

  it('rejects UNIMPLEMENTED on a client that cannot send addWatch', async () => {
    // Never connected: nothing to close.
    const bare = zookeeper.createClient('127.0.0.1:1');
    await expect(readerFor(bare).addRecursiveWatch!('/svc')).rejects.toSatisfy((error) => isZooKeeperError(error, 'UNIMPLEMENTED'));
  });
});
