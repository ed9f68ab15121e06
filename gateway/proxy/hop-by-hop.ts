import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies strip (nginx, Envoy). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Connection header values that name no header of their own. */
const PLAIN_CONNECTION = new Set(['keep-alive', 'close', 'Keep-Alive', 'Close']);

/**
 * Copies `headers` without hop-by-hop headers, including any named in `Connection`, and without
 * HTTP/2 pseudo-headers (`:method`, `:path`, `:scheme`, `:authority`: the request line and Host
 * carry them upstream). `keep` names ones to let through anyway (`upgrade` and `connection` for a
 * WebSocket handshake).
 */
export function withoutHopByHop(headers: IncomingHttpHeaders, keep?: ReadonlySet<string>): OutgoingHttpHeaders {
  const named = headers.connection;
  // `keep-alive` and `close` (nearly every Connection header) name nothing beyond the fixed set.
  const extra = named && !PLAIN_CONNECTION.has(named as string) ? new Set(String(named).toLowerCase().split(',').map((token) => token.trim())) : undefined;
  const result: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */) continue;
    if ((HOP_BY_HOP.has(name) || extra?.has(name)) && !keep?.has(name)) continue;
    result[name] = value;
  }
  return result;
}

/**
 * The headers of a request as it goes upstream: without hop-by-hop headers and without `Expect`,
 * which the gateway answers itself (node:http sends `100 Continue`, or 417 for any other
 * expectation, before the handler runs), as nginx does; undici refuses to send it anyway.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, keep?: ReadonlySet<string>): OutgoingHttpHeaders {
  const result = withoutHopByHop(headers, keep);
  delete result.expect;
  return result;
}
