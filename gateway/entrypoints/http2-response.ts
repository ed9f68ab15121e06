import { Http2ServerResponse } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';

/** Headers RFC 9113 §8.2.2 forbids in HTTP/2; Node throws on them (`ERR_HTTP2_INVALID_CONNECTION_HEADERS`), from inside `end()`. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** Set on a response that `closeWithStream` closed: its 'close' was emitted, and `end()` does nothing. */
const CLOSED_WITH_STREAM = Symbol('closedWithStream');

/**
 * The HTTP/2 response the gateway hands its middleware and proxy: the compatibility response with
 * connection-specific headers dropped wherever they are set (an upstream's, a middleware's, the
 * gateway's own `connection: close`), so no layer has to know which protocol the client speaks,
 * and with `destroyed`, which the compatibility response lacks (the gateway checks it everywhere).
 */
export class GatewayHttp2Response extends Http2ServerResponse {
  declare [CLOSED_WITH_STREAM]: true | undefined;

  // Three parameters, not a rest array: this runs for every response.
  override end(callback?: () => void): this;
  override end(data: string | Uint8Array, callback?: () => void): this;
  override end(data: string | Uint8Array, encoding: BufferEncoding, callback?: () => void): this;
  override end(data?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (this[CLOSED_WITH_STREAM] === true) return this;
    return super.end(data as string, encoding as BufferEncoding, callback);
  }

  override setHeader(name: string, value: number | string | readonly string[]): void {
    if (CONNECTION_SPECIFIC.has(name.toLowerCase())) return;
    super.setHeader(name, value);
  }

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, messageOrHeaders?: string | OutgoingHttpHeaders, maybeHeaders?: OutgoingHttpHeaders): this {
    // HTTP/2 has no reason phrase; Node ignores it with a warning.
    const headers = typeof messageOrHeaders === 'string' ? maybeHeaders : messageOrHeaders;
    return super.writeHead(statusCode, headers && withoutConnectionHeaders(headers));
  }
}

// A getter, not a field: the type declares `destroyed` as a property of Writable, which the compatibility response is not at run time.
Object.defineProperty(GatewayHttp2Response.prototype, 'destroyed', {
  get(this: GatewayHttp2Response): boolean {
    return this.stream.destroyed;
  },
});

/**
 * The stream of a HEAD request closed (its 'close' listener, `this` is the response): node:http2's
 * response emits 'close' only from `end()` for a HEAD request whose stream closed first (a reset
 * before the answer ended), so the access log, the upstream attempt and the request timeout would
 * wait for an answer nobody reads. The response closes now, as an HTTP/1.1 one does when its client
 * goes away, and a later `end()` does nothing (it would emit 'close' a second time).
 */
export function closeWithStream(this: GatewayHttp2Response): void {
  if (this.writableEnded) return;
  this[CLOSED_WITH_STREAM] = true;
  this.emit('close');
}

function withoutConnectionHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  let result: OutgoingHttpHeaders | undefined;
  for (const name in headers) {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) continue;
    result ??= { ...headers };
    delete result[name];
  }
  return result ?? headers;
}

