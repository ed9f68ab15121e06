import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { spliceSockets } from './socket-splice.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A connected pair of real TCP sockets on loopback: `near` (accepted, half-open like an entry point's) and `far`. */
async function socketPair(): Promise<{ near: Socket; far: Socket }> {
  const server = createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const far = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const near = await accepted;
  await new Promise((resolve) => (far.connecting ? far.once('connect', resolve) : resolve(undefined)));
  sockets.push(near, far);
  return { near, far };
}

/** Resolves once `condition` holds, checking on every turn of the event loop; rejects after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('spliceSockets', () => {
  it("delivers the bytes still in the client socket's write buffer when the upstream sends its FIN", async () => {
    // client peer <-> client (the gateway's side) ... upstream (the gateway's side) <-> upstream peer
    const { near: client, far: clientPeer } = await socketPair();
    const { near: upstreamPeer, far: upstream } = await socketPair();
    // The upstream socket is not half-open, as undici's is not: its peer's FIN closes it at once.
    upstream.allowHalfOpen = false;
    upstreamPeer.allowHalfOpen = false;
    let closed = false;
    spliceSockets(client, upstream, 0, { closed: () => (closed = true) });

    // The client peer reads nothing. 4 KB at a time, each waited for until the gateway's side has
    // read it and written it on, fill the kernel's buffers towards the client peer until the
    // client socket holds a few bytes itself (below its high-water mark, so the upstream goes on
    // being read): then the upstream sends its FIN.
    clientPeer.pause();
    const chunk = Buffer.alloc(4 << 10, 'x');
    let sent = 0;
    while (client.writableLength === 0) {
      upstreamPeer.write(chunk);
      sent += chunk.length;
      await until(() => upstream.bytesRead === sent, 'the chunk to reach the gateway');
    }
    expect(client.writableLength).toBeLessThan(client.writableHighWaterMark);
    upstreamPeer.end();
    await until(() => upstream.readableEnded, "the upstream's FIN to reach the gateway");

    let received = 0;
    clientPeer.on('data', (data: Buffer) => (received += data.length));
    await new Promise((resolve) => {
      clientPeer.once('end', resolve);
      clientPeer.resume();
    });
    expect(received).toBe(sent);
    await until(() => closed, 'both sockets to close');
  });
});
