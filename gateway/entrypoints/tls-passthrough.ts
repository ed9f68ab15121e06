import type { Socket } from 'node:net';
import type { Logger } from '../../src/logger.ts';
import { peekSocket } from './socket-peek.ts';
import { firstBytesJudge, HandshakeDeadlines } from './tls-hello-wait.ts';

/**
 * TLS passthrough, as nginx's `ssl_preread` and Traefik's TCP routers with `tls.passthrough` do it:
 * the returned function reads the ClientHello of an accepted socket without terminating TLS, puts
 * the bytes it read back (`peekSocket`), and hands the socket to `accepted` with the server name
 * the client sent, undefined when it sent none or its first byte starts no TLS record (then at
 * once, without waiting for more). The instance then gets the whole TLS stream, ClientHello first,
 * byte for byte. The wait shares the TLS entry points' handshake deadline rule
 * (`HandshakeDeadlines`: `timeoutMs` from the accept, counted and warned as a timeout of the entry
 * point); a socket that closes first is counted as `client-closed`. Neither reaches `accepted`, so no service or
 * instance answers for them.
 */
export function passthroughReader(entryPoint: string, timeoutMs: number, log: Logger, accepted: (socket: Socket, serverName: string | undefined) => void): (socket: Socket) => void {
  const deadlines = new HandshakeDeadlines(entryPoint, log);
  return (socket) => {
    deadlines.start(socket, timeoutMs);
    // Its own timeout is the deadline's, set after it: the deadline fires first and counts the connection.
    void peekSocket(socket, timeoutMs, firstBytesJudge()).then((verdict) => {
      if (verdict === undefined) return deadlines.noHello(socket);
      if (verdict === 'too-large') return deadlines.refuse(socket, 'client-hello-too-large');
      deadlines.settle(socket);
      accepted(socket, typeof verdict === 'object' ? verdict.serverName : undefined);
    });
  };
}
