import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tieSockets } from './tie-sockets.ts';

/** A loopback relay in front of a cleartext HTTP/2 server that can silence the streams open so far. */
export interface StreamSilencingRelay {
  readonly server: Server;
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  /**
   * From now on drops the server's DATA frames on every response stream open so far (a long-lived
   * gRPC stream such as an etcd watch), while every other frame, and every later stream, is relayed:
   * a proxy that keeps a stream open after it stopped relaying it, as a dead upstream stream behind
   * an L7 proxy does. Pings and new calls on the same connection keep working.
   */
  silenceOpenStreams(): void;
  /** Destroys every socket and stops listening. */
  close(): Promise<void>;
}

const FRAME_HEADER_BYTES = 9;
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const END_STREAM = 0x1;

/**
 * Relays `127.0.0.1:port`, reading the server-to-client bytes as HTTP/2 frames. Only DATA frames are
 * ever dropped: HEADERS carry HPACK state the client must keep seeing, and DATA is all a quiet
 * stream sends. Frames dropped are never acknowledged with WINDOW_UPDATE, which costs the server
 * their size of its send window; tests send far less than the window.
 */
export async function startStreamSilencingRelay(port: number): Promise<StreamSilencingRelay> {
  const connections = new Set<{ open: Set<number>; silenced: Set<number>; sockets: Socket[] }>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port });
    const state = { open: new Set<number>(), silenced: new Set<number>(), sockets: [client, upstream] };
    connections.add(state);
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      const relayed: Buffer[] = [];
      while (pending.length >= FRAME_HEADER_BYTES) {
        const size = FRAME_HEADER_BYTES + pending.readUIntBE(0, 3);
        if (pending.length < size) break;
        const frame = pending.subarray(0, size);
        pending = pending.subarray(size);
        const type = frame[3]!;
        const flags = frame[4]!;
        const stream = frame.readUInt32BE(5) & 0x7fffffff;
        if (type === HEADERS && stream !== 0) state.open.add(stream);
        if ((type === DATA || type === HEADERS) && flags & END_STREAM) state.open.delete(stream);
        if (type === RST_STREAM) state.open.delete(stream);
        if (type === DATA && state.silenced.has(stream)) continue;
        relayed.push(frame);
      }
      if (relayed.length > 0) client.write(Buffer.concat(relayed));
    });
    tieSockets(client, upstream, () => connections.delete(state));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    silenceOpenStreams: () => {
      for (const state of connections) for (const stream of state.open) state.silenced.add(stream);
    },
    close: async () => {
      for (const state of connections) for (const socket of state.sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
