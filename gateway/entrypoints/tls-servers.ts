import type { Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TlsOptions, type TLSSocket } from 'node:tls';
import type { Logger } from '../../src/logger.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { peekSocket } from './socket-peek.ts';
import { serverNameReader } from './tls-client-hello.ts';
import { firstBytesJudge, HandshakeDeadlines } from './tls-hello-wait.ts';
import { recordTlsRefusal, tlsFailureOf } from './tls-refusals.ts';
import type { TlsCertificates } from './tls-store.ts';

/** The two TLS servers of an entry point with `tls`; see `tlsServers`. */
export interface TlsServers {
  readonly withSni: TlsServer;
  readonly withoutSni: TlsServer;
  /**
   * Reads the ClientHello of an accepted `socket` (within `timeoutMs`) and hands the socket to
   * the server its SNI calls for; a socket that closes or stalls first is dropped.
   */
  handOver(socket: Socket, timeoutMs: number): void;
}

/**
 * Told of every finished handshake: the TLS socket, and the accepted TCP socket it was made from
 * (which the entry point tracks from accept to hand-over, and which closes with it).
 */
export type SecureConnectionHandler = (socket: TLSSocket, accepted: Socket) => void;

/** A TCP connection by its four-tuple, the same on the accepted socket and on the TLS socket made from it. */
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress} ${socket.remotePort} ${socket.localAddress} ${socket.localPort}`;
}

/**
 * What knows the peer of a refused handshake's TLS socket: the socket itself, or, once node:tls has
 * destroyed it, the accepted socket it wraps (node:tls' `_parent`). Node destroys a connection whose
 * client certificate failed verification before it reports it, and a destroyed socket has forgotten
 * its peer; the accepted one remembers it, since `handOver` read it for the connection's key.
 */
function peerOf(socket: TLSSocket): Pick<Socket, 'remoteAddress'> {
  if (socket.remoteAddress !== undefined) return socket;
  return acceptedOf(socket);
}

/** The accepted socket a TLS socket wraps (node:tls' `_parent`), or the TLS socket itself when it wraps none. */
function acceptedOf(socket: TLSSocket): Socket {
  return (socket as TLSSocket & { readonly _parent?: Socket })._parent ?? socket;
}

/**
 * Two TLS servers that never listen, fed by an entry point's TCP listener. Node's SNICallback
 * adds the chosen certificate to the connection beside the server's own, and OpenSSL then serves
 * whichever matches the client's preferred signature scheme, so an RSA certificate chosen by SNI
 * loses to an ECDSA default (nodejs/node#54235). Hence `withSni` has no certificate of its own
 * (SNI alone decides, unknown names get the default), and `withoutSni`, for clients that send no
 * server name, has only the default certificate (kept current with `setSecureContext`). `options`
 * adds what the entry point's protocol needs (ALPN, half-open sockets, the handshake timeout:
 * `handOver`'s `timeoutMs` again, which node:tls starts only at the hand-over and restarts at each
 * byte, so it never fires before the deadline `handOver` started at the accept; without it node:tls
 * would take 120 s, which a `limits.headersTimeout` longer than that would let fire first);
 * the config's `tls.minVersion` and `tls.ciphers` apply to both. Every finished handshake goes to `secure`, with the
 * accepted socket it came from: node:tls hands out only the TLS socket, and an entry point that took
 * that for the accepted one kept the accepted socket as "still in its handshake" for good, so a drain
 * cut every open TLS connection at once instead of letting it finish.
 * A handshake that fails, or is not finished `handOver`'s `timeoutMs` after the connection came (its
 * ClientHello's wait and OpenSSL's handshake share that time), closes its connection; it and a
 * plain-text connection are counted and warned about (`recordTlsRefusal`). With
 * `plainText`, a connection whose first byte starts no TLS record (nor an SSLv2-style hello, which
 * OpenSSL refuses itself), as nginx tells plain HTTP from TLS, goes there instead of to OpenSSL;
 * the check reads the first byte of the bytes `handOver` peeks anyway, once.
 */
export function tlsServers(
  config: EntryPointConfig,
  certificates: TlsCertificates,
  options: TlsOptions & { readonly allowHalfOpen?: boolean },
  log: Logger,
  secure: SecureConnectionHandler,
  plainText?: (socket: Socket) => void,
): TlsServers {
  const common: TlsOptions = {
    ...options,
    ...(config.tls?.minVersion ? { minVersion: config.tls.minVersion } : {}),
    // On the server's context, which the handshake keeps when SNI swaps in a certificate's context: OpenSSL picks the cipher from the connection's own list.
    ...(config.tls?.ciphers ? { ciphers: config.tls.ciphers } : {}),
    // Node asks for a certificate and, with rejectUnauthorized, ends a connection whose certificate is missing or unverified.
    ...(config.tls?.clientAuth ? { requestCert: true, rejectUnauthorized: config.tls.clientAuth.mode === 'require' } : {}),
  };
  const withSni = createTlsServer({ ...common, SNICallback: certificates.sniCallback });
  const defaultOptions = () => ({
    ...common,
    cert: certificates.defaultCertificate.cert,
    key: certificates.defaultCertificate.key,
    ...(certificates.clientCa ? { ca: certificates.clientCa.text } : {}),
  });
  const withoutSni = createTlsServer(defaultOptions());
  certificates.onDefaultChange(() => withoutSni.setSecureContext(defaultOptions()));
  // Handed over and not yet secure, by four-tuple (node:tls keeps the accepted socket to itself).
  const handshaking = new Map<string, Socket>();
  // Each accepted socket's handshake deadline until it is secure or closed; a TLS socket over one it cut is reported by node:tls as reset.
  const deadlines = new HandshakeDeadlines(config.name, log);
  const onSecure = (socket: TLSSocket) => {
    const key = connectionKey(socket);
    const accepted = handshaking.get(key);
    handshaking.delete(key);
    deadlines.settle(accepted ?? acceptedOf(socket));
    secure(socket, accepted ?? socket);
  };
  for (const server of [withSni, withoutSni]) {
    server.on('secureConnection', onSecure);
    // Node only reports a handshake that failed or timed out: the socket stays open (a client that
    // sent its ClientHello and then nothing held a connection, and its accepted socket here, for good).
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      if (deadlines.wasCut(acceptedOf(socket))) return void socket.destroy();
      const { reason, code } = tlsFailureOf(error, socket);
      recordTlsRefusal(log, config.name, reason, code, peerOf(socket));
      socket.destroy();
    });
  }
  return {
    withSni,
    withoutSni,
    handOver(socket, timeoutMs) {
      // One deadline from the accept for the whole handshake: the wait for a whole ClientHello, then OpenSSL's.
      deadlines.start(socket, timeoutMs);
      // Its own timeout is the deadline's, set after it: the deadline fires first and counts the connection.
      void peekSocket(socket, timeoutMs, plainText ? firstBytesJudge() : serverNameReader()).then((verdict) => {
        if (!verdict) return deadlines.noHello(socket);
        if (verdict === 'too-large') return deadlines.refuse(socket, 'client-hello-too-large');
        if (verdict === 'plain') {
          deadlines.settle(socket);
          recordTlsRefusal(log, config.name, 'plain-http', undefined, socket);
          return plainText?.(socket);
        }
        const key = connectionKey(socket);
        handshaking.set(key, socket);
        socket.once('close', () => handshaking.get(key) === socket && handshaking.delete(key));
        (verdict === 'none' ? withoutSni : withSni).emit('connection', socket);
      });
    },
  };
}
