import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions, type TLSSocket } from 'node:tls';
import type { Logger } from '../../src/logger.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { sniffPreface } from './h2c-sniff.ts';
import { GatewayListener, type ListenerHandlers, type ListenerLimits } from './http1-listener.ts';
import { Http2Sessions } from './http2-sessions.ts';
import { listenOn } from './listen.ts';
import { peekSocket } from './socket-peek.ts';
import { readServerName } from './tls-client-hello.ts';
import { TlsCertificates } from './tls-store.ts';

/** A running entry point. */
export interface EntryPoint {
  readonly name: string;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Requests being served right now, HTTP/1.1 and HTTP/2. */
  readonly inFlight: number;
  /**
   * Stops accepting, lets in-flight requests finish (HTTP/1.1 connections close after their
   * response, HTTP/2 sessions get GOAWAY), cuts what is left after `deadlineMs`, and stops
   * watching certificates. Resolves when every connection is closed.
   */
  drain(deadlineMs: number): Promise<void>;
}

/**
 * Starts the entry point `config` describes and resolves once it listens: plain HTTP/1.1 (the
 * listener binds itself), or a TCP listener that reads the first bytes of each connection and
 * hands it on: for `h2c`, the HTTP/2 preface picks HTTP/2 or HTTP/1.1; for `https`, the
 * ClientHello's SNI picks the TLS server (see `tlsServers`), whose ALPN result picks HTTP/2 or
 * HTTP/1.1. Every path ends in the same `handlers`. Rejects (nothing left running) on a bad
 * certificate or a bind error.
 */
export async function startEntryPoint(config: EntryPointConfig, handlers: ListenerHandlers, limits: ListenerLimits, log: Logger): Promise<EntryPoint> {
  const http1 = new GatewayListener(handlers, limits, log);
  if (config.protocol === 'http' && !config.h2c) {
    const port = await http1.listen(config.listen.host, config.listen.port);
    return { name: config.name, port, get inFlight() { return http1.inFlight; }, drain: (deadlineMs) => http1.drain(deadlineMs) };
  }
  http1.attach();
  const http2 = new Http2Sessions((request, response) => handlers.request(request, response), limits, log);
  const certificates = config.protocol === 'https' ? await TlsCertificates.load(config, log) : undefined;
  // Sockets accepted but not yet handed to HTTP/1.1 or HTTP/2 (first bytes, TLS handshake).
  const pending = new Set<Socket>();
  let draining = false;
  const handOver = (socket: Socket, protocol: string | false | null | undefined) => {
    pending.delete(socket);
    if (draining) return void socket.destroy();
    if (protocol === 'h2' || protocol === 'h2c') http2.accept(socket);
    else http1.accept(socket);
  };
  const tls = certificates && tlsServers(config, certificates, limits, log, handOver);
  const front: Server = createNetServer((socket) => {
    pending.add(socket);
    socket.once('close', () => pending.delete(socket));
    if (tls) {
      void peekSocket(socket, limits.headersTimeoutMs, readServerName).then((verdict) => verdict && (verdict === 'none' ? tls.withoutSni : tls.withSni).emit('connection', socket));
    } else {
      void peekSocket(socket, limits.headersTimeoutMs, sniffPreface).then((protocol) => protocol && handOver(socket, protocol));
    }
  });

  let port: number;
  try {
    port = await listenOn(front, config.listen.host, config.listen.port);
  } catch (error) {
    certificates?.close();
    throw error;
  }
  certificates?.watch();
  return {
    name: config.name,
    port,
    get inFlight() {
      return http1.inFlight + http2.inFlight;
    },
    async drain(deadlineMs) {
      draining = true;
      certificates?.close();
      // Nothing of a connection still in its first bytes or TLS handshake has reached the gateway.
      for (const socket of pending) socket.destroy();
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      await Promise.all([http1.drain(deadlineMs, closed), http2.drain(deadlineMs, closed)]);
    },
  };
}

/**
 * Two TLS servers that never listen, fed by the entry point's TCP listener. Node's SNICallback
 * adds the chosen certificate to the connection beside the server's own, and OpenSSL then serves
 * whichever matches the client's preferred signature scheme, so an RSA certificate chosen by SNI
 * loses to an ECDSA default (nodejs/node#54235). Hence `withSni` has no certificate of its own
 * (SNI alone decides, unknown names get the default), and `withoutSni`, for clients that send no
 * server name, has only the default certificate (kept current with `setSecureContext`).
 */
function tlsServers(
  config: EntryPointConfig,
  certificates: TlsCertificates,
  limits: ListenerLimits,
  log: Logger,
  handOver: (socket: Socket, protocol: string | false | null | undefined) => void,
) {
  const common: TlsOptions = {
    ALPNProtocols: config.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
    handshakeTimeout: limits.headersTimeoutMs,
    ...(config.tls?.minVersion ? { minVersion: config.tls.minVersion } : {}),
  };
  const withSni = createTlsServer({ ...common, SNICallback: certificates.sniCallback });
  const defaultOptions = () => ({ ...common, cert: certificates.defaultCertificate.cert, key: certificates.defaultCertificate.key });
  const withoutSni = createTlsServer(defaultOptions());
  certificates.onDefaultChange(() => withoutSni.setSecureContext(defaultOptions()));
  for (const server of [withSni, withoutSni]) {
    server.on('secureConnection', (socket: TLSSocket) => handOver(socket, socket.alpnProtocol));
    server.on('tlsClientError', (error: Error) => log.debug({ entryPoint: config.name, err: error.message }, 'TLS handshake failed'));
  }
  return { withSni, withoutSni };
}
