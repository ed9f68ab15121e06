import type { Server } from 'node:net';
import type { EntryPointConfig } from '../config/types.ts';
import type { TlsCertificates } from './tls-store.ts';

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

/**
 * Binds an entry point's front listener to its configured address and resolves with the bound
 * port; its certificates (if any) are watched from then on. On a bind error they are closed
 * before the rejection, so nothing is left running.
 */
export async function listenEntryPoint(front: Server, config: EntryPointConfig, certificates: TlsCertificates | undefined): Promise<number> {
  let port: number;
  try {
    port = await listenOn(front, config.listen.host, config.listen.port);
  } catch (error) {
    certificates?.close();
    throw error;
  }
  certificates?.watch();
  return port;
}
