import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../src/logger.ts';
import { listenOn } from './listen.ts';

/** Client-facing limits of the listener. */
export interface ListenerLimits {
  /** Largest request head in bytes; larger gets 431. */
  maxHeaderSize: number;
  /** Time for the client to send the whole request head; slower gets 408. */
  headersTimeoutMs: number;
  /** Time for the whole request; 0 disables it (long uploads, streaming). */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
}

/** Handlers the listener calls; both must never reject. */
export interface ListenerHandlers {
  request(request: IncomingMessage, response: ServerResponse): void;
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
}

const CLIENT_ERRORS: Readonly<Record<string, [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

/**
 * The client-facing HTTP/1.1 listener: limits on request heads, a JSON answer to malformed
 * requests (the connection is closed; others are unaffected), and a graceful `drain()`.
 */
export class GatewayListener {
  readonly server: Server;
  private readonly active = new Set<ServerResponse>();
  /** Upgraded (WebSocket) sockets: the HTTP server no longer tracks them, but they keep it from closing. */
  private readonly upgraded = new Set<Duplex>();
  private draining = false;

  constructor(handlers: ListenerHandlers, limits: ListenerLimits, private readonly log: Logger) {
    this.server = createServer(
      {
        maxHeaderSize: limits.maxHeaderSize,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
      },
      (request, response) => {
        this.active.add(response);
        response.once('close', () => this.active.delete(response));
        if (this.draining) response.setHeader('connection', 'close');
        handlers.request(request, response);
      },
    );
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.draining) return void socket.destroy();
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
      handlers.upgrade(request, socket, head);
    });
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(error, socket));
  }

  /** Listens on `host:port` (port 0 picks one; no host: every interface) and resolves with the bound port. */
  listen(host: string | undefined, port: number): Promise<number> {
    return listenOn(this.server, host, port);
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.active.size;
  }

  /**
   * Stops accepting, lets in-flight requests and open WebSockets finish (their connections close
   * afterwards), and after `deadlineMs` cuts whatever is left. Resolves when the listener is closed.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    for (const response of this.active) if (!response.headersSent) response.setHeader('connection', 'close');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = setTimeout(() => {
      if (this.active.size + this.upgraded.size > 0) {
        this.log.warn({ inFlight: this.active.size, upgraded: this.upgraded.size }, 'drain deadline reached; closing connections');
      }
      this.server.closeAllConnections();
      for (const socket of this.upgraded) socket.destroy();
    }, deadlineMs);
    // Keep-alive connections that finish a response close at once while draining.
    const sweep = setInterval(() => this.server.closeIdleConnections(), 50);
    await closed;
    clearTimeout(deadline);
    clearInterval(sweep);
  }

  private onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    if ((socket as Socket).writable === false || error.code === 'ECONNRESET') return void socket.destroy();
    const [status, text] = CLIENT_ERRORS[error.code ?? ''] ?? [400, 'Bad Request'];
    const body = JSON.stringify({ error: 'bad-request', status, message: text });
    this.log.debug({ code: error.code, status }, 'refused a malformed request');
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }
}
