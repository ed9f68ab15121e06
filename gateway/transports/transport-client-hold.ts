import { upstreamErrorCode, type GatewayErrorClass } from '../proxy/upstream-error.ts';

/**
 * How long the gateway must have held an upstream's answer still for its client (the client took
 * nothing, so the gateway stopped reading the upstream) for a later break of that answer to be the
 * client's (`client-slow-read`). An upstream with a send timeout (nginx's `send_timeout`, Go's
 * `WriteTimeout`, a socket timeout) closes a connection it could write nothing to for that long,
 * seconds at least; the holds of a client that reads at its link's pace, shorter than the upstream,
 * last from one drain of the client's socket to the next, and must not excuse an upstream that dies
 * during one of them.
 */
export const SLOW_READ_HOLD_MS = 1_000;

/**
 * The holds of one answer for its client (`begin` when a write to the client asks the transport to
 * stop reading the upstream, `end` at the client's 'drain'), and what they make of a break of the
 * answer. A break during a hold of `SLOW_READ_HOLD_MS` or more, or at any time after one, is the
 * client's: the upstream's close (HTTP/1.1: its FIN) reaches the gateway only after what the upstream
 * had written before it, which the socket buffers on both sides held (megabytes on a fast network),
 * read at the client's pace once it reads again; no time after the hold bounds that, and a bound in
 * bytes would need the buffer sizes of the upstream's host. An instance that dies later in such an
 * answer is thus not blamed for it (its other requests still tell); one whose answer breaks while its
 * client reads, or holds it still for less, is.
 */
export class ClientHold {
  /** When the running hold began (`performance.now()` ms), or -1 while the client reads. */
  private since = -1;
  /** A hold of `SLOW_READ_HOLD_MS` or more ended. */
  private heldLong = false;

  /**
   * `afterHold`: a break after a long hold ended is excused too (HTTP/1.1, whose close comes behind
   * what the instance wrote before it). Over HTTP/2 the session is read on while one stream is held,
   * so a stream's reset arrives as it is sent: only a break during a long hold is the client's, and
   * a stream whose client paused once (a long gRPC stream) is still the instance's for the rest of its life.
   */
  constructor(private readonly afterHold = true) {}

  /** The transport stopped reading the upstream for the client at `now`; a hold already running goes on. */
  begin(now: number): void {
    if (this.since < 0) this.since = now;
  }

  /** The client took what it had (its 'drain') at `now`: the transport reads the upstream again. */
  end(now: number): void {
    if (this.since >= 0 && now - this.since >= SLOW_READ_HOLD_MS) this.heldLong = true;
    this.since = -1;
  }

  /**
   * `client-slow-read` for a `reset-after-headers` at `now` that the holds excuse, else `errorClass`.
   * Only a close or reset is excused: an answer that turned malformed (HTTP/1.1 framing the parser
   * refused, a bad TLS record) is the instance's however long its client held it, as no send timeout
   * garbles what it cuts.
   */
  classOf(errorClass: GatewayErrorClass, now: number, error?: unknown): GatewayErrorClass {
    if (errorClass !== 'reset-after-headers' || isMalformedAnswer(error)) return errorClass;
    return (this.afterHold && this.heldLong) || (this.since >= 0 && now - this.since >= SLOW_READ_HOLD_MS) ? 'client-slow-read' : errorClass;
  }
}

/** An upstream's answer broken by what it sent, not by its close: undici's parser refused it (`HPE_…`, `HTTPParserError`), or TLS did (`ERR_SSL_…`). */
function isMalformedAnswer(error: unknown): boolean {
  const code = upstreamErrorCode(error);
  return (error as Error | null)?.name === 'HTTPParserError' || (typeof code === 'string' && (code.startsWith('HPE_') || code.startsWith('ERR_SSL_')));
}
