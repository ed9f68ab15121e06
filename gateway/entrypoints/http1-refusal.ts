// The HTTP/1.1 listener's answer to bytes that fail to parse (Node's 'clientError'), to a CONNECT
// request, to an unmet Expect, to a head of too many fields and to an upgrade while it drains, and the report of that answer: the gateway answers it before any
// request reaches routing, so the access log and the request metrics learn of it only from here
// (as nginx logs its own 400/431 answers, and Envoy its downstream protocol errors with the DPE flag).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../src/logger.ts';
import { LISTENER_ANSWER, type AnsweredResponse } from '../context.ts';

/**
 * An answer the listener gives by itself: its status, reason phrase, `error` code and JSON body with
 * the body's byte count, and the `allow` field a 405 carries (RFC 9110 §15.5.6: a server MUST send one).
 */
export interface ListenerAnswer {
  readonly status: number;
  readonly text: string;
  readonly error: string;
  readonly body: string;
  readonly bytes: number;
  readonly allow: string | undefined;
}

function answerOf(status: number, text: string, error: string, allow?: string): ListenerAnswer {
  const body = JSON.stringify({ error, status, message: text });
  return { status, text, error, body, bytes: Buffer.byteLength(body), allow };
}

/**
 * The methods a 405 to CONNECT or TRACE lists in `allow`: the gateway forwards every method but
 * CONNECT and TRACE (unless `forwardTrace`), extension methods included, which no list can name, so
 * it names the standard ones it serves: RFC 9110 §9's but CONNECT and TRACE, in their order there,
 * and PATCH (RFC 5789).
 */
export const FORWARDED_METHODS = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH';

const ANSWERS = {
  400: answerOf(400, 'Bad Request', 'bad-request'),
  405: answerOf(405, 'Method Not Allowed', 'method-not-allowed', FORWARDED_METHODS),
  408: answerOf(408, 'Request Timeout', 'request-timeout'),
  417: answerOf(417, 'Expectation Failed', 'expectation-failed'),
  431: answerOf(431, 'Request Header Fields Too Large', 'header-too-large'),
  501: answerOf(501, 'Not Implemented', 'unsupported-transfer-coding'),
  503: answerOf(503, 'Service Unavailable', 'draining'),
  505: answerOf(505, 'HTTP Version Not Supported', 'http-version-not-supported'),
} as const;

/** The answer the listeners (HTTP/1.1 and HTTP/2) give with `status`, made once; no request id (none was parsed, or the handler never had the request). */
export function listenerAnswer(status: keyof typeof ANSWERS): ListenerAnswer {
  return ANSWERS[status];
}

/** `answer` as HTTP/1.1 bytes written straight to a socket, closing the connection; `body` as `bodyFor` gives it (its `content-length` stays the answer's). */
function rawAnswer(answer: ListenerAnswer, body: string): string {
  const allow = answer.allow === undefined ? '' : `allow: ${answer.allow}\r\n`;
  return `HTTP/1.1 ${answer.status} ${answer.text}\r\ncontent-type: application/json\r\ncontent-length: ${answer.bytes}\r\n${allow}connection: close\r\n\r\n${body}`;
}

/**
 * The body an answer to a request with `method` carries: none to a HEAD (RFC 9110 §9.3.2: its
 * answer is the head alone, `content-length` included), so it is logged with 0 bytes.
 */
export function bodyFor(method: string | undefined, answer: ListenerAnswer): { readonly body: string; readonly bytes: number } {
  return method === 'HEAD' ? { body: '', bytes: 0 } : answer;
}

/** Parse errors answered with their own status, else 400 `bad-request`. */
const CLIENT_ERRORS: Readonly<Record<string, ListenerAnswer>> = {
  HPE_HEADER_OVERFLOW: ANSWERS[431],
  ERR_HTTP_REQUEST_TIMEOUT: ANSWERS[408],
};

/**
 * The answer to a request whose body the client ended short of its length (`Content-Length`, or a
 * chunked body without its last chunk): the class the transports give a body that breaks off
 * (`client-body-error`). Its connection's end is all the gateway sees, the same whether the
 * client only ended its side or closed it (both a FIN), so it is no `cancelled` 499: nginx logs
 * this case 400 too ("client prematurely closed connection").
 */
const BODY_ENDED = answerOf(400, 'Bad Request', 'client-body-error');

/** Whether `error` is the connection's end in the middle of `request`'s body (Node's parser at EOF), not bytes that failed to parse. */
function bodyEnded(error: NodeJS.ErrnoException, request: IncomingMessage | undefined): boolean {
  return error.code === 'HPE_INVALID_EOF_STATE' && request !== undefined && !request.complete;
}

/** One answer the listener gave by itself to a request no handler saw, told once it is written (an HTTP/2 head over maxHeaderSize: once its stream is reset). */
export interface ListenerRefusal {
  /**
   * 400, 408 or 431 (also a head of more than MAX_HEADER_FIELDS fields, and an HTTP/2 head over
   * maxHeaderSize, whose stream was reset with no status), 405 for a CONNECT request, 417 for an `Expect` other than `100-continue`,
   * 501 for a transfer coding other than `chunked` (also 400 for one on HTTP/1.0: `refusedFraming`), 505 for a request line of
   * HTTP/0.9 or HTTP/2.0 and up, 503 for an HTTP/1.1
   * upgrade (WebSocket) while the listener drains.
   */
  readonly status: number;
  /** The answer's `error` code: `bad-request`, `client-body-error` (a body the connection's end cut short), `request-timeout`, `header-too-large`, `method-not-allowed`, `expectation-failed`, `unsupported-transfer-coding`, `http-version-not-supported` or `draining`. */
  readonly error: string;
  /** Bytes of the answer's JSON body as sent: 0 for a reset HTTP/2 stream, and for an answer to a HEAD (`bodyFor`). */
  readonly bytes: number;
  /** The connection's peer address (no header was read to say otherwise). */
  readonly clientAddress: string;
  /**
   * Method and target of the refused request when Node parsed its head (its body is what failed);
   * undefined when the failure was in the head itself, so nothing of a head too large is ever read.
   */
  readonly method: string | undefined;
  readonly target: string | undefined;
}

/** Where the connection's refusal goes; must not throw. */
export type RefusalReport = (refusal: ListenerRefusal) => void;

/**
 * Answers a connection whose bytes failed to parse (`error`) with a JSON 400, 408 or 431 and closes
 * it, or cuts it when no answer fits. `inFlight` are its requests already dispatched to the gateway;
 * `unfinished` is the request whose body failed, when its head was parsed but it was never
 * dispatched. A dispatched request whose body is what failed gets the answer itself when it is the
 * only one in flight and nothing of its answer was sent (as nginx answers a broken chunked body);
 * the connection then ends, so its upstream attempt is aborted as the client's fault, never
 * completed with a truncated body. Otherwise (an answer already begun, or complete requests ahead
 * of it) the connection is cut. A complete request is answered first, so that the answer follows it
 * in order, as HTTP/1.1 pipelining requires. `report` is told of an answer written for a request no
 * handler saw; a dispatched request's answer is left on its response (`LISTENER_ANSWER`) for its
 * handler to log and count.
 */
export function refuseConnection(
  error: NodeJS.ErrnoException,
  socket: Duplex,
  inFlight: readonly ServerResponse[],
  unfinished: IncomingMessage | undefined,
  log: Logger,
  report: RefusalReport,
): void {
  if ((socket as Socket).writable === false || error.code === 'ECONNRESET') return void socket.destroy();
  const broken = inFlight.find((response) => !response.req.complete);
  const refusal = bodyEnded(error, broken?.req ?? unfinished) ? BODY_ENDED : (CLIENT_ERRORS[error.code ?? ''] ?? ANSWERS[400]);
  const { status, error: code } = refusal;
  log.debug({ code: error.code, status }, 'refused a malformed request');
  /** Writes the answer; told to `report`, or left on `inPlaceOf`, the dispatched request it answers (its handler records it as its outcome). */
  const answer = (inPlaceOf?: ServerResponse) => {
    if ((socket as Socket).writable === false) return void socket.destroy();
    // Read before the end: a socket that is gone no longer knows its peer.
    const clientAddress = (socket as Socket).remoteAddress ?? '';
    const { body, bytes } = bodyFor((inPlaceOf?.req ?? unfinished)?.method, refusal);
    socket.end(rawAnswer(refusal, body));
    if (inPlaceOf) (inPlaceOf as AnsweredResponse)[LISTENER_ANSWER] = { status, error: code, bytes };
    else report({ status, error: code, bytes, clientAddress, method: unfinished?.method, target: unfinished?.url });
  };
  if (broken) return inFlight.length === 1 && !broken.headersSent ? answer(broken) : void socket.destroy(error);
  let pending = inFlight.length;
  if (pending === 0) return answer();
  for (const response of inFlight) {
    response.once('close', () => {
      pending -= 1;
      if (pending === 0) answer();
    });
  }
}

/**
 * The answer that still holds `socket` (Node's private `_httpMessage`): an earlier request's on the
 * same connection, still being written. Node hands an upgraded socket over while such answers are
 * queued; the upgrade path waits for them and the listener passes 'drain' on to them.
 */
export function answerHoldingSocket(socket: Duplex): ServerResponse | undefined {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * How long a connection the listener closes after an answer (a refusal's, or a draining
 * connection's last) is still read, its bytes dropped: at most this long after the client's last
 * bytes, and this long in all (nginx's lingering_timeout and lingering_time).
 */
const LINGER_IDLE_MS = 5_000;
const LINGER_MAX_MS = 30_000;

/** A lingering connection's bytes: dropped. */
function dropInput(): void {}

/** True while `sparingLingering` runs its action: a lingering socket's `destroy` is then not carried out. */
let sparing = false;

/**
 * A lingering socket's `destroy` (`this` is the socket): its own, but while `sparingLingering`
 * runs. Node's server counts a lingering socket idle (its answer is written, no request is being
 * read), so its `closeIdleConnections` would destroy it, bytes the client is still sending then
 * reaching a closed socket, which resets the connection, as `linger` is there to prevent.
 */
function destroyUnlessSparing(this: Socket, error?: Error): Socket {
  if (sparing) return this;
  return (Object.getPrototypeOf(this) as Socket).destroy.call(this, error);
}

/**
 * Runs `act` (Node's `server.closeIdleConnections()`, or `server.close()`, which calls it) with
 * the lingering sockets spared: they end by themselves (`linger`), or when the drain's deadline
 * cuts every connection (`closeAllConnections`, outside of this).
 */
export function sparingLingering(act: () => void): void {
  sparing = true;
  try {
    act();
  } finally {
    sparing = false;
  }
}

/**
 * Lets `socket`, its answer ended, live on until the client closes its side (the socket is then
 * done), or LINGER_IDLE_MS passes without a byte from it, or LINGER_MAX_MS in all, what it still
 * sends read and dropped meanwhile. A socket closed with bytes unread makes the kernel reset the
 * connection, and the reset throws away whatever of the answer (and of the answers before it) the
 * client had not yet received, as nginx's lingering close keeps from happening.
 */
export function linger(socket: Socket): void {
  if (!socket.writableEnded) socket.end();
  socket.destroy = destroyUnlessSparing;
  socket.setTimeout(LINGER_IDLE_MS, () => socket.destroy());
  const cap = setTimeout(() => socket.destroy(), LINGER_MAX_MS);
  socket.once('close', () => clearTimeout(cap));
}

/** Ends a socket Node has let go of with `answer`, and lingers: its bytes are read and dropped here. */
function endLingering(socket: Socket, answer: string): void {
  socket.on('data', dropInput);
  socket.resume();
  socket.end(answer);
  linger(socket);
}

/** nginx's answer to plain HTTP on a TLS port (its internal 497, sent as a 400 with this message). */
const PLAIN_HTTP_ON_TLS_BODY = JSON.stringify({ error: 'plain-http-on-tls-port', status: 400, message: 'The plain HTTP request was sent to HTTPS port' });

/**
 * Answers a connection to a TLS port whose first byte starts no TLS record (`tlsServers` tells it
 * apart) with a JSON 400 `plain-http-on-tls-port` and `connection: close`, then lingers: the client
 * most likely sent plain HTTP to an https URL's port, and learns why instead of seeing a reset.
 */
export function refusePlainHttpOnTls(socket: Socket): void {
  endLingering(socket, `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(PLAIN_HTTP_ON_TLS_BODY)}\r\nconnection: close\r\n\r\n${PLAIN_HTTP_ON_TLS_BODY}`);
}

/** Node's server closes a socket with `destroySoon()` once an answer that ends the connection is sent: in its place, `this` lingers, Node's parser still reading it (the requests it finds there are not served). */
function lingerInsteadOfDestroy(this: Socket): void {
  linger(this);
}

/**
 * Has `socket`, a connection the listener closes after an answer of its own choosing (a refused
 * expectation, a drain's last answer), linger once that answer is sent, where Node's server would
 * destroy it: a body announced, or requests pipelined behind the answer, may still be on their way.
 */
export function lingerAfterLastAnswer(socket: Socket): void {
  socket.destroySoon = lingerInsteadOfDestroy;
}

/**
 * Answers a CONNECT request (Node's 'connect': it has let go of the socket) with a JSON 405
 * `method-not-allowed`, since the gateway tunnels nothing, as `refuseTakenOver` does.
 */
export function refuseConnect(request: IncomingMessage, socket: Duplex, report: RefusalReport): Promise<boolean> {
  return refuseTakenOver(request, socket, ANSWERS[405], report);
}

/**
 * Answers an upgrade (WebSocket) request that arrives while the listener drains (Node's 'upgrade':
 * it has let go of the socket) with a JSON 503 `draining`, as `refuseTakenOver` does: a client
 * told so may open its WebSocket on another gateway, where one cut unanswered cannot tell a
 * drain from a failure.
 */
export function refuseUpgradeWhileDraining(request: IncomingMessage, socket: Duplex, report: RefusalReport): Promise<boolean> {
  return refuseTakenOver(request, socket, ANSWERS[503], report);
}

/** Answers an HTTP/1.1 upgrade request without Host (`refusedHostless`) with a JSON 400 `bad-request`, as `refuseTakenOver` does. */
export function refuseTakenOverHostless(request: IncomingMessage, socket: Duplex, report: RefusalReport): Promise<boolean> {
  return refuseTakenOver(request, socket, ANSWERS[400], report);
}

/** Answers an upgrade request whose request line is of another major version than 1 (`refusedVersion`) with a JSON 505 `http-version-not-supported`, as `refuseTakenOver` does. */
export function refuseTakenOverVersion(request: IncomingMessage, socket: Duplex, report: RefusalReport): Promise<boolean> {
  return refuseTakenOver(request, socket, ANSWERS[505], report);
}

/**
 * Answers an upgrade or CONNECT request of more than MAX_HEADER_FIELDS fields (Node has let go of
 * the socket) with a JSON 431 `header-too-large`, as `refuseTakenOver` does: the head is refused
 * before anything else is said of it, as over HTTP/2.
 */
export function refuseTakenOverHead(request: IncomingMessage, socket: Duplex, report: RefusalReport): Promise<boolean> {
  return refuseTakenOver(request, socket, ANSWERS[431], report);
}

/**
 * Answers a request whose socket Node has let go of with `refusal` and closes the connection, once
 * the answers to the requests pipelined before it are sent; `report` is told. Bytes sent after its
 * head (a tunnel's, a WebSocket's) are read and dropped until the client closes its side, so that
 * the answers reach it. Resolves false, the request unanswered, when the connection is gone by
 * then, or one of those answers closed it (RFC 9112 §9.6: nothing after such an answer is processed).
 */
async function refuseTakenOver(request: IncomingMessage, socket: Duplex, refusal: ListenerAnswer, report: RefusalReport): Promise<boolean> {
  for (let held = answerHoldingSocket(socket); held; held = answerHoldingSocket(socket)) {
    // Node's own 'finish' listener, added first, hands the socket to the next queued answer, if any.
    await new Promise<void>((resolve) => {
      held.once('finish', resolve);
      held.once('close', resolve);
    });
    if (socket.destroyed) return false;
  }
  // The last earlier answer closed the connection (Connection: close, HTTP/1.0, a drain, a 417).
  if ((socket as Socket).writable === false) return (socket.destroy(), false);
  const { status, error } = refusal;
  const { body, bytes } = bodyFor(request.method, refusal);
  // Read before the end: a socket that is gone no longer knows its peer.
  const clientAddress = (socket as Socket).remoteAddress ?? '';
  endLingering(socket as Socket, rawAnswer(refusal, body));
  report({ status, error, bytes, clientAddress, method: request.method, target: request.url });
  return true;
}

/**
 * Answers a request the listener refuses after Node parsed its head, in its place among pipelined
 * answers, and tells `report`: 417 `expectation-failed` to an `Expect` the gateway does not meet
 * (`meetsExpectation`), 431 `header-too-large` to a head of more than MAX_HEADER_FIELDS fields, 501
 * `unsupported-transfer-coding` or 400 `bad-request` to a body framing it cannot pass on
 * (`refusedFraming`), 505 `http-version-not-supported` to a request line of another major version
 * than 1 (`refusedVersion`). The connection closes after it, lingering: the client may send the body it
 * announced, or never send it.
 */
export function refuseRequest(request: IncomingMessage, response: ServerResponse, status: 400 | 417 | 431 | 501 | 505, report: RefusalReport): void {
  const refusal = ANSWERS[status];
  const { error } = refusal;
  const { body, bytes } = bodyFor(request.method, refusal);
  const clientAddress = request.socket.remoteAddress ?? '';
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': refusal.bytes, connection: 'close' });
  lingerAfterLastAnswer(request.socket);
  response.end(body);
  report({ status, error, bytes, clientAddress, method: request.method, target: request.url });
}
