import type { Server } from 'node:net';

/** Binds `server` to `host:port` (port 0 picks one; no host: every interface) and resolves with the bound port; rejects on a bind error. */
export function listenOn(server: Server, host: string | undefined, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
