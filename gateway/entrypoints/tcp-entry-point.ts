import { createServer as createNetServer, type Socket } from 'node:net';
import type { Logger } from '../../src/logger.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { markCutByDrain } from './drain-cut.ts';
import type { EntryPoint } from './entry-point.ts';
import { listenEntryPoint } from './listen.ts';
import { passthroughReader } from './tls-passthrough.ts';
import { tlsServers } from './tls-servers.ts';
import type { NamedCertificates } from './tls-named.ts';
import { TlsCertificates } from './tls-store.ts';

/**
 * Takes one accepted client connection (paused, nothing read yet; TLS already terminated when the
 * entry point has `tls`, with the client's server name; with `passthrough`, the ClientHello's server
 * name, its bytes still to read) and resolves when the connection is closed.
 */
export type TcpConnectionHandler = (socket: Socket, serverName: string | undefined) => Promise<unknown>;

/**
 * Starts a tcp entry point and resolves once it listens: every connection goes to `handle`, in
 * clear or, with `tls`, after a TLS handshake whose certificate SNI chooses (the https entry
 * points' certificate store, reloaded the same way), or, with `passthrough`, once its ClientHello
 * has been read (`passthroughReader`), nothing of it consumed. Sockets are half-open capable, so a client's
 * FIN reaches the upstream while the answer still flows back, and send at once (TCP_NODELAY).
 * Draining stops accepting, lets open connections run until the deadline, then cuts them.
 * Rejects (nothing left running) on a bad certificate or a bind error. With `workers`, each worker
 * calls this and the cluster module shares the listening socket between them. With `named`, the
 * configuration's named certificates are served too.
 */
export async function startTcpEntryPoint(config: EntryPointConfig, handle: TcpConnectionHandler, handshakeTimeoutMs: number, log: Logger, named?: NamedCertificates): Promise<EntryPoint> {
  const certificates = config.tls ? await TlsCertificates.load(config, log) : undefined;
  if (certificates) named?.attach(config.name, certificates);
  const open = new Set<Socket>();
  // Accepted but still in the TLS handshake (or, passed through, before their ClientHello): nothing of theirs has reached an upstream yet.
  const pending = new Set<Socket>();
  let draining = false;
  let allClosed: (() => void) | undefined;
  const accept = (socket: Socket, serverName: string | undefined) => {
    if (draining) return void socket.destroy();
    socket.pause();
    open.add(socket);
    void handle(socket, serverName).finally(() => {
      open.delete(socket);
      if (open.size === 0) allClosed?.();
    });
  };
  // No ALPN: it would make OpenSSL refuse clients that offer protocols of their own.
  const tls = certificates && tlsServers(config, certificates, { allowHalfOpen: true, handshakeTimeout: handshakeTimeoutMs }, log, (socket, accepted) => {
    pending.delete(accepted);
    accept(socket, socket.servername || undefined);
  });
  const passthrough = config.passthrough
    ? passthroughReader(config.name, handshakeTimeoutMs, log, (socket, serverName) => {
        pending.delete(socket);
        accept(socket, serverName);
      })
    : undefined;
  // No Nagle towards the client, as towards the upstream: a reply the upstream wrote in two parts
  // would have its second part wait for the client's delayed ACK of the first (40 ms on Linux).
  const front = createNetServer({ allowHalfOpen: true, pauseOnConnect: !tls && !passthrough, noDelay: true }, (socket) => {
    if (!tls && !passthrough) return accept(socket, undefined);
    pending.add(socket);
    socket.once('close', () => pending.delete(socket));
    if (passthrough) passthrough(socket);
    else tls!.handOver(socket, handshakeTimeoutMs);
  });

  const port = await listenEntryPoint(front, config, certificates);
  return {
    name: config.name,
    port,
    get inFlight() {
      return open.size;
    },
    async drain(deadlineMs) {
      draining = true;
      certificates?.close();
      for (const socket of pending) socket.destroy();
      const stopped = new Promise<void>((resolve) => front.close(() => resolve()));
      if (open.size > 0) {
        const quiet = new Promise<void>((resolve) => (allClosed = resolve));
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)));
        await Promise.race([quiet, deadline]);
        clearTimeout(timer);
        // Past the deadline, what is still open is cut, marked so its line names the drain; each close takes its upstream down with it.
        // One that closed by itself and is still being recorded (its upstream's close to come) ended well: not marked.
        for (const socket of open) {
          if (socket.destroyed) continue;
          markCutByDrain(socket);
          socket.destroy();
        }
      }
      await stopped;
    },
  };
}
