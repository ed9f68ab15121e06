import { Http2ServerResponse } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';

/** Headers RFC 9113 §8.2.2 forbids in HTTP/2; Node throws on them (`ERR_HTTP2_INVALID_CONNECTION_HEADERS`), from inside `end()`. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * The HTTP/2 response the gateway hands its middleware and proxy: the compatibility response with
 * connection-specific headers dropped wherever they are set (an upstream's, a middleware's, the
 * gateway's own `connection: close`), so no layer has to know which protocol the client speaks,
 * and with `destroyed`, which the compatibility response lacks (the gateway checks it everywhere).
 */
export class GatewayHttp2Response extends Http2ServerResponse {
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

function withoutConnectionHeaders(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  let result: OutgoingHttpHeaders | undefined;
  for (const name in headers) {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) continue;
    result ??= { ...headers };
    delete result[name];
  }
  return result ?? headers;
}

