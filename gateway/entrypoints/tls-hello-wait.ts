import type { Socket } from 'node:net';
import type { Logger } from '../../src/logger.ts';
import { serverNameReader, type ServerNameVerdict } from './tls-client-hello.ts';
import { recordTlsRefusal, type TlsRefusalReason } from './tls-refusals.ts';

/** What the first bytes of a connection to a TLS port are: what its ClientHello says of SNI, or `plain` (no TLS at all). */
export type FirstBytesVerdict = ServerNameVerdict | 'plain';

/**
 * For `peekSocket` on a TLS port, one per connection: `plain` as soon as the first byte starts no
 * TLS record (nor an SSLv2-style hello), as nginx tells plain HTTP from TLS, else the verdict of
 * `serverNameReader` once the whole ClientHello has arrived.
 */
export function firstBytesJudge(): (data: Buffer) => FirstBytesVerdict | undefined {
  const reader = serverNameReader();
  return (data) => (data[0] !== 0x16 && (data[0]! & 0x80) === 0 ? 'plain' : reader(data));
}

/**
 * The handshake deadlines of one TLS entry point's accepted sockets (https, tcp with `tls` or
 * `passthrough`): one per socket from its accept, for the wait for its ClientHello and whatever
 * follows until the entry point settles it. A socket not settled in time is counted as a timeout
 * (`recordTlsRefusal`, against its entry point alone: no instance has seen it), warned about and
 * destroyed, a client that never sends a whole ClientHello too; one that closes before its
 * ClientHello is whole is counted as `client-closed` (`noHello`).
 */
export class HandshakeDeadlines {
  private readonly timers = new Map<Socket, NodeJS.Timeout>();
  private readonly cut = new WeakSet<Socket>();

  constructor(
    private readonly entryPoint: string,
    private readonly log: Logger,
  ) {}

  /** Starts the deadline of `socket`, just accepted; set it before any other timer of the same length on it, so that it fires first. */
  start(socket: Socket, timeoutMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(socket);
      this.cut.add(socket);
      recordTlsRefusal(this.log, this.entryPoint, 'timeout', 'ERR_TLS_HANDSHAKE_TIMEOUT', socket);
      socket.destroy();
    }, timeoutMs);
    this.timers.set(socket, timer);
    socket.once('close', () => this.settle(socket));
  }

  /** Stops the deadline of `socket` (its handshake ended, or it closed); nothing when it has none. */
  settle(socket: Socket): void {
    clearTimeout(this.timers.get(socket));
    this.timers.delete(socket);
  }

  /**
   * For a wait for the ClientHello of `socket` that ended without one (`peekSocket` resolved
   * undefined): counts it as `client-closed` when the client ended it (a FIN, or a reset), not
   * when the deadline cut it (a timeout, already counted) nor a drain.
   */
  noHello(socket: Socket): void {
    if (this.wasCut(socket) || !(socket.readableEnded || socket.errored)) return;
    recordTlsRefusal(this.log, this.entryPoint, 'client-closed', (socket.errored as (Error & { code?: string }) | null)?.code, socket);
  }

  /** Ends the wait of `socket` for its ClientHello with a refusal: counted and warned about as `reason`, and closed. */
  refuse(socket: Socket, reason: TlsRefusalReason): void {
    this.settle(socket);
    recordTlsRefusal(this.log, this.entryPoint, reason, undefined, socket);
    socket.destroy();
  }

  /** Whether the deadline cut `socket` (what fails on it afterwards is that cut, already counted). */
  wasCut(socket: Socket): boolean {
    return this.cut.has(socket);
  }
}
