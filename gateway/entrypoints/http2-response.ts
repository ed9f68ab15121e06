import { Http2ServerResponse } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';
import { isValidFinalStatus } from '../http-status.ts';

/** Headers RFC 9113 §8.2.2 forbids in HTTP/2; Node throws on them (`ERR_HTTP2_INVALID_CONNECTION_HEADERS`), from inside `end()`. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/**
 * Headers node:http2 takes one value of (its `kSingleValueHeaders`, lib/internal/http2/util.js):
 * given several it throws `ERR_HTTP2_HEADER_SINGLE_VALUE`, where node:http sends them all. An
 * upstream or an auth service that repeats one (two `Location`s) gets its first value through, as
 * Node's own HTTP/2 client keeps the first of a repeated one.
 */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range',
  'content-type', 'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match',
  'if-range', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range',
  'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
]);

/** What HTTP/2 can carry of header `name` (lower case) with `value`: undefined to drop it (connection-specific, or `te` other than `trailers`). */
function http2Value<V>(name: string, value: V): V | string | undefined {
  if (CONNECTION_SPECIFIC.has(name)) return undefined;
  if (name === 'te') return value === 'trailers' ? value : undefined;
  if (Array.isArray(value) && SINGLE_VALUE.has(name)) return value.length > 0 ? String(value[0]) : undefined;
  return value;
}

/** Set on a response that `closeWithStream` closed: its 'close' was emitted, and `end()` does nothing. */
const CLOSED_WITH_STREAM = Symbol('closedWithStream');

/**
 * The HTTP/2 response the gateway hands its middleware and proxy: the compatibility response with
 * headers made fit for HTTP/2 wherever they are set (an upstream's, a middleware's, the gateway's
 * own `connection: close`): connection-specific ones dropped and a repeated single-value one cut to
 * its first value, where node:http2 would throw (and a throw from an upstream's answer would reach
 * no handler). So no layer has to know which protocol the client speaks. With `destroyed`, which
 * the compatibility response lacks (the gateway checks it everywhere).
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
    const fit = http2Value(name.toLowerCase(), value);
    if (fit !== undefined) super.setHeader(name, fit);
  }

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders): this;
  override writeHead(statusCode: number, messageOrHeaders?: string | OutgoingHttpHeaders, maybeHeaders?: OutgoingHttpHeaders): this {
    // Checked first: node:http2 checks the status only after it has taken the headers, which
    // would stay behind for the next answer (the gateway's own error answer) and fail it too.
    if (!isValidFinalStatus(statusCode)) throw Object.assign(new RangeError(`HTTP/2 cannot answer status ${statusCode}`), { code: 'ERR_HTTP2_STATUS_INVALID' });
    // HTTP/2 has no reason phrase; Node ignores it with a warning.
    const headers = typeof messageOrHeaders === 'string' ? maybeHeaders : messageOrHeaders;
    return super.writeHead(statusCode, headers && http2Headers(headers));
  }

  override addTrailers(trailers: OutgoingHttpHeaders): void {
    // node:http2 throws on a connection-specific trailer only as it sends them, where nothing catches it.
    super.addTrailers(http2Headers(trailers));
  }
}

// A getter, not a field: the type declares `destroyed` as a property of Writable, which the compatibility response is not at run time.
Object.defineProperty(GatewayHttp2Response.prototype, 'destroyed', {
  get(this: GatewayHttp2Response): boolean {
    return this.stream.destroyed;
  },
});

/** Statuses whose headers end the stream in node:http2 (`respond()` forces END_STREAM), as a HEAD request's do. */
const BODILESS_STATUSES = new Set([204, 205, 304]);
const compatWritableEnded = Object.getOwnPropertyDescriptor(Http2ServerResponse.prototype, 'writableEnded')!.get!;

// The answer has ended once headers that end the stream are sent (a HEAD request's, a 204's), not
// only at `end()`: their stream can close before the gateway calls `end()` (an h2 upstream that
// sends END_STREAM in a later frame), and that close is a complete answer, not a client gone.
Object.defineProperty(GatewayHttp2Response.prototype, 'writableEnded', {
  get(this: GatewayHttp2Response): boolean {
    return compatWritableEnded.call(this) === true || (this.headersSent && (this.req.method === 'HEAD' || BODILESS_STATUSES.has(this.statusCode)));
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

/** `headers` as HTTP/2 can carry them (see `http2Value`): the same object when nothing changes, nearly always. */
function http2Headers(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  let result: OutgoingHttpHeaders | undefined;
  for (const name in headers) {
    const value = headers[name];
    const fit = http2Value(name.toLowerCase(), value);
    if (fit === value) continue;
    result ??= { ...headers };
    if (fit === undefined) delete result[name];
    else result[name] = fit;
  }
  return result ?? headers;
}

