import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies strip (nginx, Envoy),
 * and `HTTP2-Settings`, which belongs to one connection's h2c upgrade (RFC 7540 §3.2.1) whether or
 * not the client named it in `Connection` as it must: an HTTP/2 upstream refuses a request that
 * carries it (RFC 9113 §8.2.2; node:http2 will not send it).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);

/**
 * Whether `name` (lower case) is in `HOP_BY_HOP`. Called for every header of every request and
 * response (up to three passes each), so it tests the length first: most header names have a
 * length no hop-by-hop name has, and the rest cost one or two string compares instead of a Set
 * lookup (which hashes the name; the profile put Set and Map lookups at ~1 µs per request).
 */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return name === 'te';
    case 7:
      return name === 'upgrade' || name === 'trailer';
    case 10:
      return name === 'connection' || name === 'keep-alive';
    case 14:
      return name === 'http2-settings';
    case 16:
      return name === 'proxy-connection';
    case 17:
      return name === 'transfer-encoding';
    case 18:
      return name === 'proxy-authenticate';
    case 19:
      return name === 'proxy-authorization';
    default:
      return false;
  }
}

/**
 * Whether a `Connection` value names no header of its own: `keep-alive` or `close`, as nearly every
 * one is. Compared as strings, not looked up in a Set: each value is a fresh string, which a Set
 * lookup would hash first (on the profile, ~0.15 µs per response).
 */
function isPlainConnection(value: string): boolean {
  return value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close';
}

/**
 * The extra headers a `Connection` value names, or undefined when it names none beyond the fixed set.
 * `Host` is never among them: it is no connection option (RFC 9110 §7.6.1) but the target's
 * authority, which routing read, and removed it would leave the upstream the instance's address
 * in its place, though the route says `pass` (Go's reverse proxy, and so Traefik, keep it too: Host
 * is no entry of the header map they clean).
 */
function namedByConnection(named: string | string[] | number | undefined): Set<string> | undefined {
  if (!named || (typeof named === 'string' && isPlainConnection(named))) return undefined;
  const names = new Set(String(named).toLowerCase().split(',').map((token) => token.trim()));
  names.delete('host');
  return names;
}

/**
 * Copies `headers` without hop-by-hop headers, including any named in `Connection`, and without
 * HTTP/2 pseudo-headers (`:method`, `:path`, `:scheme`, `:authority`: the request line and Host
 * carry them upstream). `keep` names ones to let through anyway (`upgrade` and `connection` for a
 * WebSocket handshake).
 */
export function withoutHopByHop(headers: IncomingHttpHeaders, keep?: ReadonlySet<string>): OutgoingHttpHeaders {
  const extra = namedByConnection(headers.connection);
  const result: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */) continue;
    if ((isHopByHop(name) || extra?.has(name)) && !keep?.has(name)) continue;
    result[name] = value;
  }
  return result;
}

/**
 * The headers of a request as it goes upstream: without hop-by-hop headers and without `Expect`,
 * which the gateway answers itself (its listeners send `100 Continue`, or 417 for any other
 * expectation, before the handler runs), as nginx does; undici refuses to send it anyway.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, keep?: ReadonlySet<string>): OutgoingHttpHeaders {
  const result = withoutHopByHop(headers, keep);
  delete result.expect;
  return result;
}

/**
 * The client's headers as a request context starts with them (`context.upstream.headers`): what
 * `upstreamRequestHeaders` keeps, copied in one pass, so that the HTTP/1.1 transport can usually
 * send that object itself (see `sendableUpstreamHeaders`) instead of copying it a second time.
 * Built with a loop, not `{ ...headers }`: on Node 20, V8 gives an object made by spread a map of
 * its own, so each header added to it afterwards (forwarding headers, the request id) builds a new
 * map (measured at 2–9 µs per request against 0.1 µs here).
 */
export function clientUpstreamHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const extra = namedByConnection(headers.connection);
  const result: IncomingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* : */ || name === 'expect' || isHopByHop(name) || extra?.has(name)) continue;
    result[name] = value;
  }
  return result;
}

/**
 * `headers` itself when it holds nothing `upstreamRequestHeaders` would drop (the usual case: the
 * context's copy was made by `clientUpstreamHeaders` and middleware added ordinary headers), else
 * that filtered copy. The result may be the caller's object, so edit it only where that is meant.
 * A header a middleware set to `undefined` may stay: undici skips undefined values itself, so the
 * scan reads names only (a value read per name is a megamorphic keyed load).
 */
export function sendableUpstreamHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */ || name === 'expect' || isHopByHop(name)) return upstreamRequestHeaders(headers);
  }
  return headers;
}

/**
 * An upstream response's headers as the client gets them: `headers` itself when it holds no
 * hop-by-hop header (nor one `Connection` names) and no pseudo-header, else `withoutHopByHop`'s
 * copy. undici parses a fresh object per response that only the attempt holds, so the result may be
 * edited (header hooks add to it). Copied rather than edited with `delete`: deleting a property that
 * is not the last one added turns the object into a slow dictionary, which this scan, header hooks
 * and node:http's `writeHead` then pay for (micro-benchmark, Node 20, five headers from a Node
 * backend then iterated once: ~490 ns with `delete`, ~120 ns with the copy).
 */
export function responseHeadersForClient(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const extra = namedByConnection(headers.connection);
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */ || isHopByHop(name) || extra?.has(name)) return withoutHopByHop(headers);
  }
  return headers;
}
