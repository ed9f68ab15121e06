import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Socket } from 'node:net';
import { LISTENER_ANSWER, type AnsweredResponse, type GatewayContext, type HeldAnswer } from '../context.ts';
import { connectionStateOf } from '../entrypoints/http1-connections.ts';
import { lingerAfterLastAnswer } from '../entrypoints/http1-refusal.ts';
import { dropsSmallBody } from '../entrypoints/http1-unread-body.ts';
import { stopBodyAfterAnswer } from '../entrypoints/http2-request.ts';
import { sendHeldAnswer } from '../transports/transport-response-body.ts';
import { applyHeaderHooks, forgetRefusedHead } from './answer-headers.ts';
import { errorPageFor } from './error-page.ts';
import { sendGrpcErrorAnswer } from './grpc-answer.ts';
import { isGrpcRequest } from './grpc-status.ts';
import { announcesBody } from './request-body-framing.ts';
import { STATUS_BY_CLASS, type GatewayErrorClass } from './upstream-error.ts';

const MESSAGES: Readonly<Record<GatewayErrorClass, string>> = {
  'no-route': 'no route matches this request',
  'no-instances': 'the service has no registered instances',
  'no-healthy-instances': 'no healthy upstream',
  'connect-refused': 'the upstream refused the connection',
  'connect-timeout': 'the upstream did not accept the connection in time',
  'reset-before-headers': 'the upstream closed the connection before answering',
  'reset-after-headers': 'the upstream closed the connection while answering',
  'upstream-protocol': 'the upstream sent an invalid HTTP response',
  'http2-protocol-error': 'the HTTP/2 exchange with the upstream ended in a protocol error before its answer',
  'upstream-refused': 'the upstream refused the request as excessive (HTTP/2 ENHANCE_YOUR_CALM) before answering',
  'upstream-tls': 'the TLS handshake with the upstream failed (certificate not trusted, name mismatch or expired)',
  'unsupported-protocol': "the gateway cannot proxy HTTP to this instance's protocol",
  'pool-overflow': 'the gateway has as many connections to the upstream as it may open, all busy',
  'pool-closed': 'the gateway closed its connections to the upstream (it is shutting down)',
  'http-5xx': 'the upstream failed',
  'grpc-error': 'the upstream failed',
  'headers-timeout': 'the upstream did not answer in time',
  'body-timeout': 'the upstream stopped sending its response',
  'deadline-exceeded': "the call's deadline passed",
  cancelled: 'the client closed the request',
  'client-body-error': 'the request body ended before its announced length',
  'client-slow-read': 'the upstream closed the connection while answering a client that had stopped reading',
  'body-too-large': 'the request body is larger than this route allows',
  'header-too-large': 'the request head is larger than the upstream accepts',
  'request-rejected': 'the request cannot be forwarded as sent',
  'repeated-refusal': 'the upstream refused the request before answering, as an instance tried before had',
  'grpc-web-unsupported': 'the upstream answered a gRPC-Web call as plain gRPC',
  internal: 'internal gateway error',
};

/**
 * Records as the request's outcome the answer its listener gave in its place, when it gave one
 * (`LISTENER_ANSWER`: the request's body failed to parse, or came too slowly), the one the client
 * got, whatever the attempt met after it; true when there was one. Only for an attempt that failed.
 */
export function recordListenerAnswer(context: GatewayContext): boolean {
  const answered = (context.response as AnsweredResponse)[LISTENER_ANSWER];
  if (answered === undefined) return false;
  context.outcome.status = answered.status;
  context.outcome.errorClass = answered.error;
  context.outcome.bytesOut = answered.bytes;
  return true;
}

/**
 * Records the outcome of an answer that can no longer be sent. A response destroyed because its
 * listener answered in its place records that answer: else the request read `499 cancelled`, as if
 * the client had gone, while it was answered 400 or 408. A response destroyed before any head went
 * out had its client go away first (a forwardAuth or a rate limit's wait outlasted it): it records
 * `499 cancelled`, as the proxy does for a client that leaves while the upstream thinks and as nginx
 * logs a client that closed first, never the 502 or 429 the client did not get.
 */
function recordUnsent(context: GatewayContext, status: number, error: string | undefined): void {
  const response = context.response;
  if (response.destroyed && recordListenerAnswer(context)) return;
  const gone = response.destroyed && !response.headersSent;
  context.outcome.status = gone ? STATUS_BY_CLASS.cancelled : status;
  context.outcome.errorClass = gone ? 'cancelled' : error;
}

/** How a provider's name (`zk:host:port/root`, `etcd:…`, `file:…`) begins, by the kind of registry a client may be told of. */
const REGISTRY_KINDS: Readonly<Record<string, string>> = { zk: 'zookeeper', etcd: 'etcd', file: 'file' };

/**
 * The message of a `no-instances` answer: the class's own, or, while registries have not connected
 * yet and none has given the service an instance set (`unconnected`, provider names), that it is
 * too early to tell, so an operator looks at the registry, not for missing agents. Only the kinds
 * of registry: the client is not told the registry's address (the admin API's explain is).
 */
export function noInstancesMessage(unconnected: readonly string[]): string {
  if (unconnected.length === 0) return MESSAGES['no-instances'];
  const kinds = [...new Set(unconnected.map((name) => REGISTRY_KINDS[name.slice(0, name.indexOf(':'))] ?? 'registry'))];
  return `${unconnected.length === 1 ? 'registry' : 'registries'} ${kinds.join(', ')} not yet connected: no instance set loaded yet`;
}

/** The human text of each class's gateway answer (the JSON `message`, or a gRPC caller's `grpc-message`). */
export function errorMessageOf(errorClass: GatewayErrorClass): string {
  return MESSAGES[errorClass];
}

/**
 * Answers the client on the gateway's behalf with the class's status and a small JSON body
 * carrying the request id and `message` (the class's own by default); records the outcome. Does
 * nothing once headers were sent.
 */
export function sendGatewayError(context: GatewayContext, errorClass: GatewayErrorClass, message = MESSAGES[errorClass]): void {
  const status = STATUS_BY_CLASS[errorClass];
  sendErrorAnswer(context, status, errorClass, message, status === 503 ? { 'retry-after': '1' } : {});
}

/**
 * Writes one gateway answer: `status` with the JSON body `{error, message, status, requestId,
 * service}` and `extraHeaders`, and records it as the request's outcome. Does nothing once headers
 * were sent. The one shape of every answer the gateway gives in an upstream's place. A gRPC caller
 * (`content-type: application/grpc*`) gets the same refusal as a gRPC status instead (HTTP 200,
 * Trailers-Only, `grpc-status` mapped from `status` and `error`: see `grpcStatusOf`), so that every
 * refusal (rate limit, access, breaker, no instance) reads right to a real gRPC client. An `errors`
 * page around the answer for `status` (`errorPageFor`) replaces the JSON body and its type. Never
 * throws for a response header hook: one that fails the answer turns it into a 500 `internal`.
 */
export function sendErrorAnswer(context: GatewayContext, status: number, error: string, message: string, extraHeaders: Readonly<Record<string, string>> = {}): void {
  const response = context.response;
  if (response.headersSent || response.destroyed) return recordUnsent(context, status, error);
  // An answer of the gateway's own in this failure's place (a `cache`'s stale one): sent as an
  // upstream's would be; the failed attempts were counted against their instances already.
  const replacement = context.answerReplacer?.(status, {}, error);
  if (replacement !== undefined) return sendHeldInstead(context, replacement);
  try {
    writeErrorAnswer(context, status, error, message, extraHeaders);
  } catch (failure) {
    // A response header hook threw, or set a header the response refused: nothing was sent, so the
    // client still gets a whole answer, this gateway's own failure (500 `internal`, as on an
    // upstream's answer), made without the hooks, which would fail it again (the runner's answer
    // to a failure runs them too).
    if (response.headersSent || response.destroyed) throw failure;
    context.log.error({ err: failure instanceof Error ? failure.message : String(failure), error }, "a response header hook failed the gateway's answer");
    context.responseHeaderHooks.length = 0;
    writeErrorAnswer(context, 500, 'internal', MESSAGES.internal, {});
  }
}

/** Sends an `AnswerReplacer`'s answer in place of an error answer: the hooks, then as a held upstream answer (`sendHeldAnswer`); a hook that fails it makes it the 500 `internal`. */
function sendHeldInstead(context: GatewayContext, replacement: HeldAnswer): void {
  const headers = { ...replacement.headers };
  try {
    applyHeaderHooks(context, replacement.status, headers);
  } catch (failure) {
    context.log.error({ err: failure instanceof Error ? failure.message : String(failure), status: replacement.status }, "a response header hook failed the gateway's answer");
    context.responseHeaderHooks.length = 0;
    context.answerReplacer = undefined;
    return sendErrorAnswer(context, 500, 'internal', MESSAGES.internal);
  }
  context.outcome.status = replacement.outcomeStatus ?? replacement.status;
  sendHeldAnswer(context, replacement.status, headers, replacement.body);
}

/**
 * Writes an answer the gateway gives by itself that is no error (a redirect, a `respond` answer):
 * `status`, `headers` and `body` after the request's response header hooks, which edit `headers` in
 * place; records the status and the bytes sent. A hook that fails it turns it into `sendErrorAnswer`'s
 * 500 `internal`, made without the hooks. Writes nothing once headers were sent or the response was
 * destroyed (as `sendErrorAnswer`).
 */
export function sendOwnAnswer(context: GatewayContext, status: number, headers: OutgoingHttpHeaders, body?: Buffer): void {
  const response = context.response;
  if (response.headersSent || response.destroyed) {
    // Nothing goes out: the request records what its client got (its listener's answer in its
    // place, or nothing: 499 `cancelled`), or this answer's status as the one it would have had.
    if (response.destroyed) return recordUnsent(context, status, undefined);
    context.outcome.status = status;
    return;
  }
  try {
    applyHeaderHooks(context, status, headers);
  } catch (failure) {
    context.log.error({ err: failure instanceof Error ? failure.message : String(failure), status }, "a response header hook failed the gateway's answer");
    context.responseHeaderHooks.length = 0;
    return sendErrorAnswer(context, 500, 'internal', MESSAGES.internal);
  }
  context.outcome.status = status;
  context.outcome.bytesOut = body?.length ?? 0;
  response.writeHead(status, headers);
  if (body === undefined) response.end();
  else response.end(body);
}

/**
 * The `connection` field of an answer the gateway gives by itself (a refusal, a 404, a 503) before
 * the request's body has all arrived over HTTP/1.x. A small body (`dropsSmallBody`: a
 * `content-length` of at most DROPPED_BODY_MAX_BYTES on a connection that lives on) is read and
 * dropped and the connection kept, as nginx discards a body it does not want: empty then, and the
 * connection closes only when that body is not whole within DROPPED_BODY_WAIT_MS. Any other body
 * (larger, chunked, or `keepSmallBody` false: a 413, whose body is the one refused) gets `close`,
 * and the connection lingers after the answer (as bodyLimit's 413 and the listener's 417 do), the
 * rest of the body read and dropped until the client stops sending. Node's server would otherwise
 * close the connection with the body unread, and the reset that follows throws away the answer
 * before a still-uploading client reads it. Empty for a request whose body is complete, or that
 * announced none: its connection lives on. Over HTTP/2 it is empty too, and the client is asked to
 * stop sending once the answer is complete (`stopBodyAfterAnswer`).
 */
export function closingUnreadBody(context: GatewayContext, keepSmallBody = true): Readonly<Record<string, string>> {
  const request = context.request as IncomingMessage;
  if (request.complete) return {};
  if (request.httpVersionMajor === 2) {
    stopBodyAfterAnswer(context.request as unknown as Http2ServerRequest);
    return {};
  }
  if (request.httpVersionMajor !== 1) return {};
  const headers = request.headers;
  if (!announcesBody(headers)) return {};
  // Node lets go of the request's socket (null) once its connection is gone: nothing lingers then.
  const socket = request.socket as Socket | null;
  if (socket && keepSmallBody && dropsSmallBody(request, context.response as ServerResponse, socket)) return {};
  if (socket) {
    // Node reads on after an answer with `connection: close`: a request pipelined behind the body
    // must go nowhere (RFC 9112 §9.6), as behind the listener's 417 (ConnectionState.closing).
    connectionStateOf(socket).closing = true;
    lingerAfterLastAnswer(socket);
  }
  return { connection: 'close' };
}

/** `sendErrorAnswer`'s answer on a response whose headers were not sent; throws when a header hook or a header fails it. */
function writeErrorAnswer(context: GatewayContext, status: number, error: string, message: string, extraHeaders: Readonly<Record<string, string>>): void {
  const response = context.response;
  context.outcome.status = status;
  context.outcome.errorClass = error;
  // A gRPC caller still streaming its request over HTTP/2 is asked to stop as a JSON answer's client
  // is (a client-streaming call refused by a middleware, or past its deadline): else it sends on. A
  // gRPC-Web call over HTTP/1.1 keeps its connection: `closingUnreadBody` would close it whenever the
  // answer came before node parsed a body sent whole with the headers, a new connection per refusal.
  if (isGrpcRequest(context.request.headers)) {
    const stopping = (context.request as IncomingMessage).httpVersionMajor === 2 ? closingUnreadBody(context) : {};
    return sendGrpcErrorAnswer(context, status, error, message, { ...extraHeaders, ...stopping });
  }
  // An `errors` page around the answer takes the JSON's place; the status and the other headers stay.
  const page = errorPageFor(context, status);
  const body = page?.body ?? JSON.stringify({ error, message, status, requestId: context.requestId, service: context.service || undefined });
  context.outcome.bytesOut = Buffer.byteLength(body);
  const headers: OutgoingHttpHeaders = {
    'content-type': page?.contentType ?? 'application/json',
    'content-length': context.outcome.bytesOut,
    'x-request-id': context.requestId,
    ...extraHeaders,
    // nginx closes after its 413 too: the body it refuses is not read on.
    ...closingUnreadBody(context, error !== 'body-too-large'),
  };
  applyHeaderHooks(context, status, headers);
  try {
    response.writeHead(status, headers);
  } catch (failure) {
    // Else the answer made without the hooks (`sendErrorAnswer`) would carry the refused header too.
    forgetRefusedHead(response, headers);
    throw failure;
  }
  response.end(body);
}
