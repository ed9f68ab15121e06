import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { tieSockets } from './tie-sockets.ts';

/**
 * A TCP relay to `port` whose `silence()` makes the connections open so far go quiet both ways
 * without closing them (a path dropped by a failover, a NAT or a load balancer); later
 * connections are relayed as usual.
 */
export async function silenceableRelay(port: number): Promise<{ server: Server; port: number; silence(): void }> {
  const open = new Set<{ silent: boolean }>();
  const server = createServer((client) => {
    const state = { silent: false };
    open.add(state);
    const upstream = createConnection({ host: '127.0.0.1', port });
    client.on('data', (chunk) => state.silent || upstream.write(chunk));
    upstream.on('data', (chunk) => state.silent || client.write(chunk));
    tieSockets(client, upstream, () => open.delete(state));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    silence: () => {
      for (const state of open) state.silent = true;
    },
  };
}
