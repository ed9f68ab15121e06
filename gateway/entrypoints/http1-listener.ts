import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../src/logger.ts';
import { CLOSE_WATCHER, type ClientRequest, type ClientResponse, type WatchedResponse } from '../context.ts';
import { connectionOf, connectionStateOf, Http1Connections } from './http1-connections.ts';
import {
  answerHoldingSocket,
  linger,
  lingerAfterLastAnswer,
  refuseConnect,
  refuseConnection,
  refuseRequest,
  refuseTakenOverHead,
  refuseTakenOverHostless,
  refuseTakenOverVersion,
  refuseUpgradeWhileDraining,
  sparingLingering,
  type RefusalReport,
} from './http1-refusal.ts';
import { listenOn } from './listen.ts';
import { markCutByDrain } from './drain-cut.ts';
import { continueOnFirstRead, meetsExpectation } from './expectation.ts';
import { refusedFraming, refusedHostless, refusedVersion } from './http1-framing.ts';
import { toOriginForm } from '../router/request-target.ts';

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

/**
 * Header fields in one request head that the listeners (HTTP/1.1 and HTTP/2) serve; a head of more
 * is answered 431 `header-too-large`, as one over maxHeaderSize is, and logged and counted. Node 20's
 * HTTP/1.1 parser otherwise kept the first 2,000 fields (`maxHeadersCount`) and dropped the rest
 * silently: the gateway routed, authenticated and forwarded a request other than the one sent.
 * (Node 24's refuses a head past `maxHeadersCount` itself, as a parse error: 431 by 'clientError'.)
 * Over HTTP/1.1 a field takes as little as 4 bytes, so the default maxHeaderSize (16 KiB) holds
 * about 4,000; over HTTP/2, pseudo-headers count, and each field counts at least 33 bytes against
 * maxHeaderSize, so there it binds only under a maxHeaderSize over ~32 KiB.
 */
export const MAX_HEADER_FIELDS = 1_000;

/** Whether a request head has more than MAX_HEADER_FIELDS fields (node keeps at least one more, see the constructor). */
function tooManyFields(request: IncomingMessage): boolean {
  return request.rawHeaders.length > 2 * MAX_HEADER_FIELDS;
}

/** The status the listener refuses a parsed request head with in its place (a head of too many fields, a version other than 1.x, HTTP/1.1 without Host, a body framing it cannot pass on), or undefined to serve it. */
function headRefusal(request: IncomingMessage): 400 | 431 | 501 | 505 | undefined {
  return tooManyFields(request) ? 431 : (refusedVersion(request) ?? refusedHostless(request) ?? refusedFraming(request));
}

/** Handlers an entry point calls; none may throw or reject. */
export interface ListenerHandlers {
  request(request: ClientRequest, response: ClientResponse): void;
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Told of each answer the listener gave by itself to bytes that failed to parse, to a CONNECT request
   * or an Expect other than `100-continue` (HTTP/1.1 and HTTP/2), to an upgrade while draining (HTTP/1.1), and of each HTTP/2 stream reset or
   * connection closed for a head over the limits (access log, metrics); never called on a request's own path.
   */
  refused: RefusalReport;
}

/** `process.nextTick` target: arguments instead of a closure per request. */
function dispatchLater(listener: GatewayListener, handlers: ListenerHandlers, request: IncomingMessage, response: ServerResponse): void {
  listener.dispatch(handlers, request, response);
}

/** Where a response holds the connections that track it, for the shared 'close' listener. */
const CONNECTIONS = Symbol('switchboard.connections');
/** Set on a response once it has been handed to the gateway (dispatched). */
const DISPATCHED = Symbol('switchboard.dispatched');
/** Where a response holds its connection's socket: Node lets go of it (`req.socket` null) before the 'close' of an answer sent whole before its request's body. */
const SOCKET = Symbol('switchboard.socket');
type ListenedResponse = ServerResponse & { [CONNECTIONS]?: Http1Connections; [DISPATCHED]?: boolean; [SOCKET]?: Socket };

/** Every response's 'close' listener (`this` is the response); it also tells the upstream attempt, which then needs none of its own. */
function onResponseClose(this: ListenedResponse & WatchedResponse): void {
  const socket = this[SOCKET]!;
  this[CONNECTIONS]?.closed(this, socket);
  this[CLOSE_WATCHER]?.clientClosed();
  if (this.writableFinished && !this.req.complete) dropBodyLeftUnread(this.req, socket);
}

/**
 * A request answered whole while its body still comes, and nobody reads it any more (an upstream
 * that answered 413 or 401 before reading an upload, and closed): its rest is read and dropped and
 * the connection closes, lingering, as after the gateway's own answers (`closingUnreadBody`) and as
 * nginx discards it. Left paused, the socket was read no more: a client that sends its whole body
 * before it reads the answer (Python's http.client, requests) waited for `requestTimeout` (5 min)
 * and then got a reset instead of the 413, and the request counted as in flight meanwhile, holding a
 * drain to its deadline. A body the gateway already drops (`droppingBody`) is left to that. A
 * connection already closing after this answer (a drain's `connection: close`) lingers already,
 * but a body an upstream attempt stopped reading still has to be read on there: the linger's idle
 * timeout otherwise reset it 5 s later.
 */
function dropBodyLeftUnread(request: IncomingMessage, socket: Socket): void {
  if (socket.destroyed) return;
  const state = connectionStateOf(socket);
  if (state.droppingBody === request) return;
  // Node's own discard of a body nobody consumed (its `resOnFinish`): the parser then drops what
  // comes instead of pushing it into a request its upstream attempt may have destroyed, which
  // would pause the socket again; the request let go of the socket (`req.socket` null), so the
  // socket is resumed here.
  request.unpipe();
  (request as IncomingMessage & { _dump?: () => void })._dump?.();
  socket.resume();
  if (state.closing) return;
  // Node's parser reads on: a request pipelined behind the body must go nowhere (RFC 9112 §9.6).
  state.closing = true;
  // An answer that ends the connection anyway (the client's `Connection: close`, as Python's
  // urllib.request sends, or HTTP/1.0) had Node's `destroySoon` destroy the socket once its end is
  // written, with the body still coming: a reset the client saw instead of the 413. It lingers too.
  socket.removeListener('finish', socket.destroy);
  linger(socket);
}

/**
 * The client-facing HTTP/1.1 listener: limits on request heads, a JSON answer to malformed
 * requests (the connection is closed; others are unaffected), and a graceful `drain()`. It either
 * listens itself (`listen`) or serves sockets another listener hands it (`attach`, then `accept`:
 * TLS connections that chose HTTP/1.1, plaintext ones without the HTTP/2 preface).
 */
export class GatewayListener {
  readonly server: Server;
  /** Connections with a request so far, while they live, and their open responses. */
  private readonly connections = new Http1Connections();
  /** Upgraded (WebSocket) sockets: the HTTP server no longer tracks them, but they keep it from closing. */
  private readonly upgraded = new Set<Duplex>();
  private draining = false;

  constructor(handlers: ListenerHandlers, limits: ListenerLimits, private readonly log: Logger) {
    /** A request within the limits whose expectation, if any, is met: tracked, then dispatched. */
    const serve = (request: IncomingMessage, response: ServerResponse) => {
      if (connectionOf(request.socket)?.closing === true) return this.skip(request);
      this.connections.track(response);
      (response as ListenedResponse)[CONNECTIONS] = this.connections;
      (response as ListenedResponse)[SOCKET] = request.socket as Socket;
      (response as WatchedResponse)[CLOSE_WATCHER] = null;
      // A response closes once: `on` with one shared function instead of `once` with a closure per request.
      response.on('close', onResponseClose);
      if (this.draining) this.closeAfter(response);
      // Node emits 'request' from inside the parser, before it has parsed the rest of the bytes
      // already received: a smuggled or malformed request right behind this one (CL+TE, a bad
      // chunk of this very body) is found only after this callback returns. Dispatching after
      // the current read lets a parse error of that read refuse the connection first, so no
      // request of it reaches routing or an upstream. A tick is enough: the parser runs the
      // whole read synchronously (its callbacks skip the tick queue), and a tick costs far less
      // than an immediate, which also waits for the next turn of the event loop.
      process.nextTick(dispatchLater, this, handlers, request, response);
    };
    this.server = createServer(
      {
        maxHeaderSize: limits.maxHeaderSize,
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
        // Refused by `headRefusal` instead, logged and counted as the listener's other answers.
        requireHostHeader: false,
      },
      (request, response) => {
        const refusal = headRefusal(request);
        return refusal === undefined ? serve(request, response) : refuseHead(request, response, refusal);
      },
    );
    // Node's parser keeps this many fields of a head (one more than served, so that a head over the
    // limit is told apart); past it Node 20 drops the rest unseen, Node 24 fails the parse (431 by
    // 'clientError', nothing of the head known). It reads the value as each connection opens.
    this.server.maxHeadersCount = MAX_HEADER_FIELDS + 1;
    /** A head `headRefusal` refuses: its answer in its place among the answers, then the connection closes. */
    const refuseHead = (request: IncomingMessage, response: ServerResponse, status: 400 | 431 | 501 | 505) => {
      const state = connectionStateOf(request.socket);
      if (state.closing) return this.skip(request);
      state.closing = true;
      refuseRequest(request, response, status, handlers.refused);
    };
    // An upgrade while draining is answered 503 as a CONNECT is 405 (see below), not cut unanswered.
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.adopt(socket);
      if (tooManyFields(request)) return this.refuseTakenOver(refuseTakenOverHead, request, socket, handlers.refused);
      if (refusedVersion(request) !== undefined) return this.refuseTakenOver(refuseTakenOverVersion, request, socket, handlers.refused);
      if (refusedHostless(request) !== undefined) return this.refuseTakenOver(refuseTakenOverHostless, request, socket, handlers.refused);
      if (this.draining) return this.refuseTakenOver(refuseUpgradeWhileDraining, request, socket, handlers.refused);
      toOriginForm(request);
      handlers.upgrade(request, socket, head);
    });
    // Node cuts a CONNECT request's connection unanswered and unseen when this is not listened to,
    // and answers an Expect other than `100-continue` with a bare 417 when that is not: both are
    // answered here as the listener's own refusals (logged, counted).
    // A CONNECT that arrives while the listener drains is answered all the same: it closes its
    // connection, as a drain would, once the answers before it are sent (destroying the socket at
    // once took those answers with it). One behind an answer that closed the connection is not
    // answered, as a request pipelined there is not (see ConnectionState.closing).
    this.server.on('connect', (request: IncomingMessage, socket: Duplex) => {
      this.adopt(socket);
      this.refuseTakenOver(tooManyFields(request) ? refuseTakenOverHead : refuseConnect, request, socket, handlers.refused);
    });
    // An HTTP/1.1 request with an Expect field comes here instead of 'request': to 'checkContinue'
    // when it matches Node's regular expression for `100-continue`, else to 'checkExpectation'.
    // Both hold it to the listeners' one rule, meetsExpectation, as the HTTP/2 listener does.
    const onExpectation = (request: IncomingMessage, response: ServerResponse) => {
      const refusal = headRefusal(request);
      if (refusal !== undefined) return refuseHead(request, response, refusal);
      const state = connectionStateOf(request.socket);
      if (state.closing) return this.skip(request);
      if (meetsExpectation(request.headers.expect)) {
        continueOnFirstRead(request, response);
        return serve(request, response);
      }
      // Node reads on after a 417 with `connection: close`: what it reads behind it must go nowhere.
      state.closing = true;
      refuseRequest(request, response, 417, handlers.refused);
    };
    this.server.on('checkContinue', onExpectation);
    this.server.on('checkExpectation', onExpectation);
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(error, socket, handlers.refused));
  }

  /** Takes over a socket Node has let go of (an upgrade, a CONNECT): tracked for `drain`, its errors and 'drain' handled. */
  private adopt(socket: Duplex): void {
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
    // Node took its own error listener off the socket: a client's reset before the upgrade is
    // spliced (or while the gateway answers it) would otherwise be an uncaught 'error'.
    socket.on('error', ignoreUpgradedSocketError);
    // Node also took the listener that passes the socket's 'drain' on to the answer it holds: an
    // answer still written on this socket (a pipelined earlier one, an h2c offer served over
    // HTTP/1.1) that filled the socket's buffer would wait for a 'drain' that never came.
    socket.on('drain', passDrainToAnswer);
  }

  /**
   * Prepares the server to be handed sockets instead of listening: Node starts the connection
   * tracking that the headers and request timeouts and `closeIdleConnections` rely on only when
   * a server emits 'listening', so it is emitted here, once, without binding anything.
   */
  attach(): void {
    this.server.emit('listening');
  }

  /** Serves HTTP/1.1 on `socket` (after `attach`); while draining the socket is closed instead. */
  accept(socket: Duplex): void {
    if (this.draining) return void socket.destroy();
    this.server.emit('connection', socket);
  }

  /** Listens on `host:port` (port 0 picks one; no host: every interface) and resolves with the bound port. */
  listen(host: string | undefined, port: number): Promise<number> {
    return listenOn(this.server, host, port);
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.connections.inFlight;
  }

  /**
   * Stops accepting, lets in-flight requests and open WebSockets finish (their connections close
   * afterwards), and after `deadlineMs` cuts whatever is left. Resolves when the listener is closed,
   * or, for an attached one, when `closed` (the accepting listener's close) resolves.
   */
  async drain(deadlineMs: number, closed?: Promise<void>): Promise<void> {
    this.draining = true;
    // Only a connection's last response can close it: closing after an earlier one would throw away
    // the answers behind it, whose requests already reached an upstream. One whose head is already
    // sent cannot; the connection closes when idle, or after the next request's answer.
    for (const state of this.connections.states()) {
      const last = state.open.at(-1);
      if (last !== undefined && !last.headersSent) this.closeAfter(last);
    }
    // Node's close and its idle sweeps spare connections lingering after their last answer (a
    // drain's, a 417's): Node counts them idle, yet their client may still be sending. The
    // listening socket's close only, not node:http's: that also stops the checks that hold a
    // connection to headersTimeout and requestTimeout, so a connection that never sent its head
    // (not idle to Node: it may be sending one) held the drain to its deadline. They go on until
    // the drain ends, and a connection still without its head gets its 408 as at any other time.
    const ownClose = new Promise<void>((resolve) => NetServer.prototype.close.call(this.server, () => resolve()));
    closed ??= ownClose;
    const closeIdle = () => sparingLingering(() => this.server.closeIdleConnections());
    closeIdle();
    const deadline = setTimeout(() => {
      if (this.inFlight + this.upgraded.size > 0) {
        this.log.warn({ inFlight: this.inFlight, upgraded: this.upgraded.size }, 'drain deadline reached; closing connections');
      }
      for (const state of this.connections.states()) for (const response of state.open) markCutByDrain(response);
      this.server.closeAllConnections();
      for (const socket of this.upgraded) socket.destroy();
    }, deadlineMs);
    // Keep-alive connections that finish a response close at once while draining.
    const sweep = setInterval(closeIdle, 50);
    await closed;
    clearTimeout(deadline);
    clearInterval(sweep);
    // node:http's own close now: it stops those checks (the listening socket is closed already).
    sparingLingering(() => this.server.close());
  }

  /**
   * `response` is the last its connection answers: it says `connection: close`, and the requests
   * read behind it are not served (ConnectionState.closing), their answers having nowhere to go.
   * The connection lingers after it, as after the listener's refusals: a client still sending
   * (a big body pipelined behind) would have the close with its bytes unread reset the connection,
   * and with it the tail of this answer. The drain's deadline still cuts it (`closeAllConnections`).
   */
  private closeAfter(response: ServerResponse): void {
    response.setHeader('connection', 'close');
    connectionStateOf(response.req.socket).closing = true;
    lingerAfterLastAnswer(response.req.socket);
  }

  /** Refuses a request whose socket Node has let go of (`adopt`) with `refuse`; one it leaves unanswered is skipped. */
  private refuseTakenOver(refuse: typeof refuseConnect, request: IncomingMessage, socket: Duplex, report: RefusalReport): void {
    this.log.debug({ method: request.method }, 'a request the listener refuses waits for the answers before it');
    void refuse(request, socket, report).then((answered) => {
      if (!answered) this.skip(request);
    });
  }

  /**
   * A request read after an answer that closes its connection: neither tracked nor dispatched, its
   * body read and dropped (a body left unread would stop the reads of the connection, whose close
   * with bytes unread is a reset); Node drops its response with the connection.
   */
  private skip(request: IncomingMessage): void {
    request.resume();
    this.log.debug({ method: request.method }, 'a request after an answer that closes its connection is not served');
  }

  /** @internal */
  dispatch(handlers: ListenerHandlers, request: IncomingMessage, response: ServerResponse): void {
    if (connectionOf(request.socket)?.refused === true || response.destroyed) return;
    (response as ListenedResponse)[DISPATCHED] = true;
    toOriginForm(request);
    handlers.request(request, response);
  }

  /**
   * Node reports a parse error of a connection here (for whichever of its requests): requests of
   * that connection not yet dispatched never are, and `refuseConnection` answers or cuts it.
   */
  private onClientError(error: NodeJS.ErrnoException, socket: Duplex, refused: RefusalReport): void {
    const state = connectionStateOf(socket);
    if (state.refused) return;
    state.refused = true;
    // The body being dropped belongs to a request already answered: the error (the client ending
    // its side mid-body, a reset) is no request to answer, and the answer is left to be sent whole.
    if (state.droppingBody !== undefined && !state.droppingBody.complete) return void ((socket as Socket).writable === false || error.code === 'ECONNRESET' ? socket.destroy() : socket.end());
    const inFlight = state.open.filter((response) => (response as ListenedResponse)[DISPATCHED] === true);
    // A request read but not dispatched that is still incomplete is the one whose body failed (a
    // connection has at most one request being read); a complete one goes unanswered with it.
    const unfinished = state.open.find((response) => (response as ListenedResponse)[DISPATCHED] !== true && !response.req.complete)?.req;
    refuseConnection(error, socket, inFlight, unfinished, this.log, refused);
  }
}

/** An upgraded socket's error: the socket is destroyed with it, and whoever joined it to an upstream has its own listener. */
function ignoreUpgradedSocketError(): void {}

/** An upgraded socket drained (its 'drain' listener, `this` is the socket): the answer it still holds, if any, may write again. */
function passDrainToAnswer(this: Duplex): void {
  const answer = answerHoldingSocket(this);
  if (answer && !answer.finished) answer.emit('drain');
}
