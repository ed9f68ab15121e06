import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants, createServer, type Http2Server, type Http2ServerRequest, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { headerListSize } from '../../src/http2-limits.ts';
import type { Logger } from '../../src/logger.ts';
import { LISTENER_ANSWER, type AnsweredResponse, type ClientRequest, type ClientResponse } from '../context.ts';
import { continueOnFirstRead, meetsExpectation } from './expectation.ts';
import { MAX_HEADER_FIELDS, type ListenerLimits } from './http1-listener.ts';
import { bodyFor, listenerAnswer, type RefusalReport } from './http1-refusal.ts';
import { GatewayHttp2Request } from './http2-request.ts';
import { closeWithStream, GatewayHttp2Response } from './http2-response.ts';
import { holdSession, markCutByDrain } from './drain-cut.ts';

/** Streams one client may have open at once on a session (nginx's `http2_max_concurrent_streams` is 128). */
const MAX_CONCURRENT_STREAMS = 128;

/**
 * The maxHeaderListSize the sessions advertise, and node:http2 holds streams to: node's own ceiling
 * (MAX_MAX_HEADER_LIST_SIZE in its src/node_http_common.h), what it applies before the client has
 * acknowledged any value. Not `limits.maxHeaderSize`: node resets a stream over the acknowledged value
 * inside nghttp2's header callback and tells JavaScript nothing (no 'stream', 'frameError', 'error'
 * or diagnostics-channel message on Node 20 or 24), so such heads went unlogged and uncounted. The
 * gateway holds every head to the limit itself instead (`dispatch`). What reaches it stays bounded by
 * NODE_HEADER_PAIRS_CEILING fields and nghttp2's 8 CONTINUATION frames (a block of ~144 KB on the
 * wire), as for any client that has not acknowledged the SETTINGS (or never does). The price: a client that
 * heeds the advertised value (Go's) sends a head over the limit and gets the reset, where it failed
 * the request itself; either way the request fails, and now the gateway's log says so.
 */
const NODE_HEADER_LIST_CEILING = 16_777_215;

/**
 * node:http2's `maxHeaderListPairs`: past this many fields it resets the stream (ENHANCE_YOUR_CALM)
 * inside nghttp2's header callback and tells JavaScript nothing. Its default, 128, refused heads
 * between 128 and MAX_HEADER_FIELDS fields unseen, so it is raised above the gateway's own limit,
 * which answers (logs and counts) those; only a head past this ceiling stays node's silent reset.
 * The cost is memory node holds for a head being received: bounded by maxSessionMemory (10 MB).
 */
const NODE_HEADER_PAIRS_CEILING = 2 * MAX_HEADER_FIELDS;

/**
 * nghttp2's NGHTTP2_ERR_TOO_MANY_CONTINUATIONS (1.61, the CVE-2024-27316 "CONTINUATION flood" fix):
 * a header block spread over more than 8 CONTINUATION frames. nghttp2 ends the session for it, and
 * node:http2 destroys the session with this `errno` on its NghttpError (`ERR_HTTP2_ERROR`).
 */
const NGHTTP2_ERR_TOO_MANY_CONTINUATIONS = -905;

/** Where a session keeps its peer's address, read when it starts: a destroyed session no longer has its socket. */
const PEER = Symbol('switchboard.peer');
/** Where a session counts its streams that have not closed yet (each stream closes exactly once). */
const OPEN_STREAMS = Symbol('switchboard.openStreams');
type PeeredSession = ServerHttp2Session & { [PEER]?: string; [OPEN_STREAMS]?: number };
/** Where a stream keeps its session, for its 'close' (node has let go of `stream.session` by then). */
const SESSION = Symbol('switchboard.session');
type SessionStream = ServerHttp2Stream & { [SESSION]?: PeeredSession };

/**
 * The HTTP/2 side of an entry point: sessions on sockets handed over by the entry point (TLS with
 * ALPN `h2`, or plaintext after the prior-knowledge preface), requests in Node's compatibility API
 * (`GatewayHttp2Request`/`GatewayHttp2Response`) shaped like HTTP/1.1 for the rest of the gateway:
 * `:authority` becomes `host`, and a request with a body but no length is marked chunked so the
 * proxy sends its body. Pseudo-headers stay in `request.headers` (the upstream header filter drops
 * them). Limits: the header list size and field count, the request timeout, and an idle timeout per
 * session. A head over either never reaches the handler: its reset is told to `refused` (access log,
 * metrics); a 408 is left on its response (`LISTENER_ANSWER`) for the handler that has it to record.
 */
export class Http2Sessions {
  readonly server: Http2Server<typeof IncomingMessage, typeof ServerResponse, typeof GatewayHttp2Request, typeof GatewayHttp2Response>;
  private readonly sessions = new Set<ServerHttp2Session>();
  /**
   * Requests whose stream has not closed yet: a count, not a Set of them. A Set that lives as
   * long as the server is in the old generation, and each time its table is rebuilt the dead old
   * table still points at the young responses it held; a scavenge cannot tell it is dead, so those
   * responses, their streams and all they hold were promoted, ~2.5 KB a request, and scavenges
   * cost 4× the bare proxy's (bench/proxy/README.md, round 12).
   */
  private open = 0;
  private readonly responseClosed = (): void => {
    this.open -= 1;
  };
  private draining = false;

  constructor(
    handler: (request: ClientRequest, response: ClientResponse) => void,
    private readonly refused: RefusalReport,
    private readonly limits: ListenerLimits,
    private readonly log: Logger,
  ) {
    this.server = createServer(
      {
        settings: { maxHeaderListSize: NODE_HEADER_LIST_CEILING, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
        maxHeaderListPairs: NODE_HEADER_PAIRS_CEILING,
        Http2ServerRequest: GatewayHttp2Request,
        Http2ServerResponse: GatewayHttp2Response,
      },
      (request, response) => this.dispatch(handler, request, response, false),
    );
    // node:http2 answers these itself unless they are listened to: CONNECT with 405, an Expect other
    // than `100-continue` with 417, and `100-continue` with a 100 before any limit is checked. Taken
    // over, they are held to the limits first and answered as the gateway's own (logged, counted).
    this.server.on('connect', (request: Http2ServerRequest, response: ClientResponse) => this.answerItself(request, response, 405));
    // node:http2 takes only `100-continue` exactly for one (to 'checkContinue'); both events are
    // held to the listeners' one rule, meetsExpectation, as the HTTP/1.1 listener does.
    const onExpectation = (request: Http2ServerRequest, response: ClientResponse) => {
      if (meetsExpectation(request.headers.expect)) this.dispatch(handler, request, response, true);
      else this.answerItself(request, response, 417);
    };
    this.server.on('checkContinue', onExpectation);
    this.server.on('checkExpectation', onExpectation);
    this.server.on('session', (session: PeeredSession) => {
      this.sessions.add(session);
      session[PEER] = session.socket.remoteAddress ?? '';
      session[OPEN_STREAMS] = 0;
      session.on('stream', (stream: SessionStream) => {
        session[OPEN_STREAMS]! += 1;
        stream[SESSION] = session;
        // A module-level listener and a slot on the stream: no closure per stream.
        stream.on('close', streamClosed);
      });
      session.once('close', () => this.sessions.delete(session));
      this.closeWhenIdle(session);
      if (this.draining) session.close();
    });
    this.server.on('sessionError', (error: NodeJS.ErrnoException, session: PeeredSession) => this.onSessionError(error, session));
  }

  /**
   * A session ended by an error. One spread over too many CONTINUATION frames is a head refused
   * before any stream exists (nghttp2 sends GOAWAY and node destroys the session): it is reported
   * as a head too large is, 431 `header-too-large` with the connection's peer, so it is logged and
   * counted like one over maxHeaderSize (RFC 9113 §10.5.1 names 431 for a header section larger
   * than a server will handle; nghttp2 stops at 8 frames of up to 16 KB each).
   */
  private onSessionError(error: NodeJS.ErrnoException, session: PeeredSession): void {
    this.log.debug({ err: error.message }, 'HTTP/2 session error');
    if (error.code !== 'ERR_HTTP2_ERROR' || error.errno !== NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) return;
    const { status, error: code } = listenerAnswer(431);
    this.refused({ status, error: code, bytes: 0, clientAddress: session[PEER] ?? '', method: undefined, target: undefined });
  }

  /**
   * Closes `session` (GOAWAY, then the connection) once it has carried no frame for keepAliveTimeout
   * (headersTimeout if longer) with no stream open, as an idle HTTP/1.1 keep-alive connection is
   * closed. Not node's `server.setTimeout`, which destroys a session silent that long even with a
   * stream open: a request waiting for a slow upstream (a route's longer `timeouts.headers`) or a
   * stream whose answer pauses (server-sent events, a gRPC watch, `idleBody: 0`) was reset
   * (CANCEL) where HTTP/1.1 keeps it; the upstream timeouts bound those. Any frame either way
   * (node refreshes the timer) starts the wait over, a slow reader's WINDOW_UPDATEs and the data
   * they let through included.
   */
  private closeWhenIdle(session: PeeredSession): void {
    session.setTimeout(Math.max(this.limits.keepAliveTimeoutMs, this.limits.headersTimeoutMs), () => {
      if (session[OPEN_STREAMS]! > 0) return this.closeWhenIdle(session);
      session.close();
    });
  }

  /** Serves HTTP/2 on `socket` (already past TLS, or holding the prior-knowledge preface). */
  accept(socket: Duplex): void {
    if (this.draining) return void socket.destroy();
    this.server.emit('connection', socket);
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.open;
  }

  /**
   * Sends GOAWAY on every session (open streams finish, no new ones start) and resolves with
   * `closed`; after `deadlineMs` destroys the sessions that are left.
   */
  async drain(deadlineMs: number, closed: Promise<void>): Promise<void> {
    this.draining = true;
    for (const session of this.sessions) session.close();
    const deadline = setTimeout(() => {
      if (this.sessions.size > 0) this.log.warn({ inFlight: this.open, sessions: this.sessions.size }, 'drain deadline reached; closing HTTP/2 sessions');
      for (const session of this.sessions) {
        markCutByDrain(session);
        session.destroy();
      }
    }, deadlineMs);
    await closed;
    clearTimeout(deadline);
  }

  /**
   * Resets the stream of a head over the limits and reports it; false (nothing done) for one within.
   * Every head, counted as node counts and refused as node refuses past maxHeaderListSize (which is set
   * to node's ceiling, NODE_HEADER_LIST_CEILING): the limit holds from the first request, which a client
   * sends before it has acknowledged any SETTINGS, and each refusal is seen. A loop over the headers:
   * 20-70 ns a head of 7 to 20 fields (Node 20 and 24), of the ~110 µs of CPU an HTTP/2 request costs.
   * A head of more than MAX_HEADER_FIELDS fields is refused alike (node's own ceiling is set above it).
   */
  private refusedOversized(request: Http2ServerRequest): boolean {
    if (!this.overLimits(request.rawHeaders)) return false;
    // Read before the reset: a closed stream no longer knows its session's peer.
    const clientAddress = request.socket.remoteAddress ?? '';
    request.stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // HTTP/2 answers no status here, yet the line and the metric need one: 431 header-too-large, as
    // the same limit answers over HTTP/1.1 (RFC 9113 §10.5.1 names 431 for a header section larger
    // than a server will handle), so one search or alert finds both protocols and it counts as the
    // client's fault (4xx), where 0 would count as `unknown`; `bytes` 0 says no answer was sent. As
    // over HTTP/1.1, nothing of the head is reported: not its method, nor its path.
    const { status, error } = listenerAnswer(431);
    this.refused({ status, error, bytes: 0, clientAddress, method: undefined, target: undefined });
    return true;
  }

  /**
   * Answers a head within the limits that no route may serve with `status` (405 for CONNECT, which
   * the gateway does not tunnel; 417 for an expectation it cannot meet, as RFC 9110 §10.1.1 lets it) and a
   * JSON body, ending the stream, and reports it with the head's method and target (`:path`, or a
   * CONNECT's `:authority`). No handler sees the request, and no upstream.
   */
  private answerItself(request: Http2ServerRequest, response: ClientResponse, answer: 405 | 417): void {
    if (this.refusedOversized(request)) return;
    const clientAddress = request.socket.remoteAddress ?? '';
    const refusal = listenerAnswer(answer);
    const { status, error } = refusal;
    const { body, bytes } = bodyFor(request.method, refusal);
    response.writeHead(status, refusal.allow === undefined ? { 'content-type': 'application/json' } : { 'content-type': 'application/json', allow: refusal.allow });
    response.end(body);
    this.refused({ status, error, bytes, clientAddress, method: request.method, target: request.url ?? request.headers[':authority'] });
  }

  /** Hands a request within the limits to `handler`; `expectsContinue`: sends its `100 Continue` when its body is first read. */
  private dispatch(handler: (request: ClientRequest, response: ClientResponse) => void, request: Http2ServerRequest, response: ClientResponse, expectsContinue: boolean): void {
    if (this.refusedOversized(request)) return;
    if (expectsContinue) continueOnFirstRead(request, response);
    // Trailers are a header list too, which node:http2, told its ceilings, no longer holds to the limits:
    // one over them is reset as node reset it before. The request's handler sees a client stream cut short
    // (its line says so); the trailers reach no upstream, as the proxy forwards none of a request's.
    if (!request.stream.endAfterHeaders) {
      request.stream.once('trailers', (_trailers: unknown, _flags: number, rawTrailers: string[]) => {
        // The answer may be in flight by now, and `close` ends the writable side before its RST_STREAM,
        // yet no END_STREAM precedes it: node's compatibility response answers with `waitForTrailers`,
        // so its last DATA frame leaves the stream open, and a closed stream sends no trailers. The
        // client sees its answer reset, not ended (a stream answered with `respond()` would end first).
        if (this.overLimits(rawTrailers)) request.stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      });
    }
    const headers = request.headers;
    // RFC 9113 §8.3.1: `:authority` is the host; a Host header beside it must not differ, so it is replaced.
    const authority = headers[':authority'];
    if (authority !== undefined) headers.host = authority;
    // A body of unknown length is what HTTP/1.1 calls chunked; the proxy reads these headers to decide whether to send a body.
    if (!request.stream.endAfterHeaders && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked';
    this.open += 1;
    holdSession(response, request.stream.session!);
    // The stream's 'close', not the response's: node:http2's response closes for a HEAD request
    // whose stream closed first only if `end()` is called, so such a response is closed here too
    // (`closeWithStream`). A stream closes exactly once.
    if (request.method === 'HEAD') {
      request.stream.once('close', () => {
        this.open -= 1;
        closeWithStream.call(response as GatewayHttp2Response);
      });
    } else request.stream.on('close', this.responseClosed);
    // A request whose HEADERS frame ended its stream has arrived whole. `request.complete` would not
    // say so until its (empty) body is read, which the proxy never does for a request without one, so
    // its timer would answer a slow upstream's GET 408, or cut a long answer (server-sent events).
    if (this.limits.requestTimeoutMs > 0 && !request.stream.endAfterHeaders) this.limitRequestTime(request, response);
    handler(request, response);
  }

  /** Whether a header or trailer section (`rawHeaders`, name and value in turn) is over maxHeaderSize or MAX_HEADER_FIELDS. */
  private overLimits(rawHeaders: readonly string[]): boolean {
    return rawHeaders.length > 2 * MAX_HEADER_FIELDS || headerListSize(rawHeaders) > this.limits.maxHeaderSize;
  }

  /**
   * `limits.requestTimeout` for a stream: a request whose body has not fully arrived in time gets
   * 408, left on its response as `LISTENER_ANSWER` (or a reset once answering began).
   */
  private limitRequestTime(request: Http2ServerRequest, response: ClientResponse): void {
    if (request.complete) return;
    const timer = setTimeout(() => {
      if (request.complete) return;
      if (!response.headersSent) {
        // The handler still has the request (its proxy waits for the body): it records this answer,
        // the one the client got, as the outcome, not what its attempt ends with (499 cancelled, or
        // the status of an upstream that answered once the body stopped). Set first, for any listener.
        const { status, error, body, bytes } = listenerAnswer(408);
        (response as AnsweredResponse)[LISTENER_ANSWER] = { status, error, bytes };
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(body);
      }
      // The reset fails the body still coming (GatewayHttp2Request): the proxy aborts the upstream
      // request instead of sending it the last chunk of a body cut short.
      request.stream.close(constants.NGHTTP2_CANCEL);
    }, this.limits.requestTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    request.once('end', clear);
    response.once('close', clear);
  }
}

/** A stream's 'close': its session has one stream fewer open. */
function streamClosed(this: SessionStream): void {
  this[SESSION]![OPEN_STREAMS]! -= 1;
}
