// A small request body the gateway answers before it has all arrived over HTTP/1.1: read and
// dropped, its connection kept for the next request, as nginx's ngx_http_discard_request_body does,
// within bounds of size and time so that no client holds the connection with a body it never ends.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { connectionStateOf } from './http1-connections.ts';
import { linger, lingerAfterLastAnswer } from './http1-refusal.ts';

/**
 * The largest body (its `content-length`) an answer given before it has arrived reads and drops,
 * keeping the connection: a form, a small JSON document. A larger one, or one of unknown length
 * (chunked), closes the connection after the answer instead of being read on.
 */
export const DROPPED_BODY_MAX_BYTES = 16 * 1024;

/**
 * How long after the answer such a body has to arrive whole. A client that sends it more slowly
 * (or never) has its connection closed once the answer is out, lingering (nginx's lingering close):
 * the answer already said nothing of closing, which HTTP/1.1 allows a server (RFC 9112 §9.6).
 */
export const DROPPED_BODY_WAIT_MS = 1_000;

/**
 * Whether the answer about to be written to `request` (on `socket`), whose body has not all been
 * parsed yet, reads and drops that body and keeps the connection: true when its `content-length`
 * announces at most DROPPED_BODY_MAX_BYTES and the connection is to live on after the answer
 * (HTTP/1.1 keep-alive, no close decided by the client, a drain or an earlier answer, no `expect`). The body is
 * read from now on and dropped. When it is not whole DROPPED_BODY_WAIT_MS later, the requests read
 * behind it are not served and the connection closes once the answer is sent, lingering. False for
 * any other body, which the caller closes the connection after (and nothing is armed).
 */
export function dropsSmallBody(request: IncomingMessage, response: ServerResponse, socket: Socket): boolean {
  const headers = request.headers;
  if (headers['transfer-encoding'] !== undefined || headers['content-length'] === undefined) return false;
  // Node holds the body to its content-length, a number of digits (it refused any other at the head).
  if (Number(headers['content-length']) > DROPPED_BODY_MAX_BYTES) return false;
  // Node closes after an answer to an `Expect: 100-continue` it did not continue: the close is left to the caller.
  if (headers.expect !== undefined || !response.shouldKeepAlive || response.hasHeader('connection') || connectionStateOf(socket).closing) return false;
  connectionStateOf(socket).droppingBody = request;
  // A response header hook may still close the connection after this answer (`connection: close`):
  // Node then lingers instead of destroying the socket with the rest of the body on its way.
  lingerAfterLastAnswer(socket);
  request.resume();
  setTimeout(closeUnlessArrived, DROPPED_BODY_WAIT_MS, request, response, socket).unref();
  return true;
}

/** The bound of a dropped body: nothing when it arrived whole or the connection is gone; else the connection closes after the answer. */
function closeUnlessArrived(request: IncomingMessage, response: ServerResponse, socket: Socket): void {
  const state = connectionStateOf(socket);
  if (request.complete || socket.destroyed) {
    // Let go of it: the connection may live long after.
    if (state.droppingBody === request) state.droppingBody = undefined;
    return;
  }
  // Node's parser reads on: a request pipelined behind the body must go nowhere (RFC 9112 §9.6).
  state.closing = true;
  if (response.writableFinished) linger(socket);
  else response.once('finish', () => linger(socket));
}
