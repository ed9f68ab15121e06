import type { Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TlsOptions, type TLSSocket } from 'node:tls';
import type { Logger } from '../../src/logger.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { peekSocket } from './socket-peek.ts';
import { serverNameReader } from './tls-client-hello.ts';
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
 * Two TLS servers that never listen, fed by an entry point's TCP listener. Node's SNICallback
 * adds the chosen certificate to the connection beside the server's own, and OpenSSL then serves
 * whichever matches the client's preferred signature scheme, so an RSA certificate chosen by SNI
 * loses to an ECDSA default (nodejs/node#54235). Hence `withSni` has no certificate of its own
 * (SNI alone decides, unknown names get the default), and `withoutSni`, for clients that send no
 * server name, has only the default certificate (kept current with `setSecureContext`). `options`
 * adds what the entry point's protocol needs (ALPN, half-open sockets, the handshake timeout);
 * the config's `tls.minVersion` applies to both. Every finished handshake goes to `secure`.
 */
export function tlsServers(
  config: EntryPointConfig,
  certificates: TlsCertificates,
  options: TlsOptions & { readonly allowHalfOpen?: boolean },
  log: Logger,
  secure: (socket: TLSSocket) => void,
): TlsServers {
  const common: TlsOptions = { ...options, ...(config.tls?.minVersion ? { minVersion: config.tls.minVersion } : {}) };
  const withSni = createTlsServer({ ...common, SNICallback: certificates.sniCallback });
  const defaultOptions = () => ({ ...common, cert: certificates.defaultCertificate.cert, key: certificates.defaultCertificate.key });
  const withoutSni = createTlsServer(defaultOptions());
  certificates.onDefaultChange(() => withoutSni.setSecureContext(defaultOptions()));
  for (const server of [withSni, withoutSni]) {
    server.on('secureConnection', secure);
    server.on('tlsClientError', (error: Error) => log.debug({ entryPoint: config.name, err: error.message }, 'TLS handshake failed'));
  }
  return {
    withSni,
    withoutSni,
    handOver(socket, timeoutMs) {
      void peekSocket(socket, timeoutMs, serverNameReader()).then((verdict) => verdict && (verdict === 'none' ? withoutSni : withSni).emit('connection', socket));
    },
  };
}
