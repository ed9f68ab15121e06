import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../../src/logger.ts';
import type { EntryPointConfig } from '../config/types.ts';
import { sniffPreface } from './h2c-sniff.ts';
import { GatewayListener, type ListenerHandlers, type ListenerLimits } from './http1-listener.ts';
import { refusePlainHttpOnTls } from './http1-refusal.ts';
import { Http2Sessions } from './http2-sessions.ts';
import { listenEntryPoint } from './listen.ts';
import { peekSocket } from './socket-peek.ts';
import { tlsServers } from './tls-servers.ts';
import type { NamedCertificates } from './tls-named.ts';
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
 * ClientHello's SNI picks the TLS server (see `tlsServers` in tls-servers.ts), whose ALPN result picks HTTP/2 or
 * HTTP/1.1. Every path ends in the same `handlers`. Rejects (nothing left running) on a bad
 * certificate or a bind error. With `named`, the configuration's named certificates are served too.
 */
export async function startEntryPoint(config: EntryPointConfig, handlers: ListenerHandlers, limits: ListenerLimits, log: Logger, named?: NamedCertificates): Promise<EntryPoint> {
  const http1 = new GatewayListener(handlers, limits, log);
  if (config.protocol === 'http' && !config.h2c) {
    const port = await http1.listen(config.listen.host, config.listen.port);
    return { name: config.name, port, get inFlight() { return http1.inFlight; }, drain: (deadlineMs) => http1.drain(deadlineMs) };
  }
  http1.attach();
  const http2 = new Http2Sessions((request, response) => handlers.request(request, response), handlers.refused, limits, log);
  const certificates = config.protocol === 'https' ? await TlsCertificates.load(config, log) : undefined;
  if (certificates) named?.attach(config.name, certificates);
  // Sockets accepted but not yet handed to HTTP/1.1 or HTTP/2 (first bytes, TLS handshake).
  const pending = new Set<Socket>();
  let draining = false;
  /** Serves `socket` (`accepted` itself, or the TLS socket made from it) with the protocol it chose. */
  const handOver = (accepted: Socket, socket: Socket, protocol: string | false | null | undefined) => {
    pending.delete(accepted);
    if (draining) return void socket.destroy();
    if (protocol === 'h2' || protocol === 'h2c') http2.accept(socket);
    else http1.accept(socket);
  };
  const tls =
    certificates &&
    tlsServers(
      config,
      certificates,
      { ALPNProtocols: config.http2 ? ['h2', 'http/1.1'] : ['http/1.1'], handshakeTimeout: limits.headersTimeoutMs },
      log,
      (socket, accepted) => handOver(accepted, socket, socket.alpnProtocol),
      (socket) => refusePlainHttpOnTls(socket),
    );
  // No Nagle towards the client, as the plain HTTP/1.1 listener (node:http's default) and tcp entry
  // points have it: an answer written in parts (a head, then an HTTP/2 instance's DATA) would have its
  // second part wait for the client's delayed ACK of the first (40 ms on Linux).
  const front: Server = createNetServer({ noDelay: true }, (socket) => {
    pending.add(socket);
    socket.once('close', () => pending.delete(socket));
    if (tls) {
      tls.handOver(socket, limits.headersTimeoutMs);
    } else {
      void peekSocket(socket, limits.headersTimeoutMs, sniffPreface).then((protocol) => protocol && handOver(socket, socket, protocol));
    }
  });

  const port = await listenEntryPoint(front, config, certificates);
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
