import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { CompressEncoding, CompressSettings } from '../../config/types.ts';

/**
 * The coding the client prefers among `offered` (the server's order breaks ties), by RFC 9110
 * §12.5.3: a coding's own q-value, else that of `*`; q=0 refuses; `x-gzip` is `gzip`. Undefined
 * (send identity) when the request has no Accept-Encoding, when it accepts none of `offered`, or
 * when it lists `identity` with a higher q-value than the best of them.
 */
export function negotiateEncoding(acceptEncoding: string | undefined, offered: readonly CompressEncoding[]): CompressEncoding | undefined {
  if (acceptEncoding === undefined) return undefined;
  const weights = new Map<string, number>();
  for (const entry of acceptEncoding.split(',')) {
    const [rawName = '', ...parameters] = entry.split(';');
    const name = rawName.trim().toLowerCase();
    if (name === '') continue;
    let weight = 1;
    for (const parameter of parameters) {
      const match = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(parameter);
      if (match) weight = Math.min(1, Number(match[1]));
    }
    const key = name === 'x-gzip' ? 'gzip' : name;
    // A coding listed twice: its highest weight (a lenient reading of a malformed header).
    weights.set(key, Math.max(weights.get(key) ?? 0, weight));
  }
  const any = weights.get('*');
  let best: CompressEncoding | undefined;
  let bestWeight = 0;
  for (const coding of offered) {
    const weight = weights.get(coding) ?? any ?? 0;
    if (weight > bestWeight) {
      best = coding;
      bestWeight = weight;
    }
  }
  const identity = weights.get('identity');
  return identity !== undefined && identity > bestWeight ? undefined : best;
}

/**
 * Statuses whose answer has no body to compress (a 205 must have none: RFC 9110 §15.3.6, and an
 * encoder would send one, the coding's header and end), or one a cache or range request relies on
 * byte for byte.
 */
const UNTOUCHED_STATUSES: ReadonlySet<number> = new Set([101, 204, 205, 206, 304]);

/**
 * Whether the media type `type` (parameters already removed, lower-case) matches `pattern`: `text/*`,
 * `application/*+json` (any subtype with that structured syntax suffix, RFC 6839) or an exact type.
 */
function matchesType(type: string, pattern: string): boolean {
  if (pattern.endsWith('/*')) return type.startsWith(pattern.slice(0, -1));
  const wildcard = pattern.indexOf('/*+');
  if (wildcard === -1) return type === pattern;
  const prefix = pattern.slice(0, wildcard + 1);
  const suffix = pattern.slice(wildcard + 2);
  return type.length > prefix.length + suffix.length && type.startsWith(prefix) && type.endsWith(suffix);
}

/** Whether `settings` lets a body of Content-Type `contentType` be compressed. */
export function compressibleType(contentType: unknown, settings: CompressSettings): boolean {
  if (typeof contentType !== 'string') return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (type === '') return false;
  if (settings.excludedContentTypes !== undefined) return !settings.excludedContentTypes.some((pattern) => matchesType(type, pattern));
  return settings.contentTypes.some((pattern) => matchesType(type, pattern));
}

/**
 * Whether an answer may be compressed at all, whatever the client accepts: not to a Range request,
 * an upgrade or a gRPC call; not a 1xx/204/205/206/304; not one already encoded, marked
 * `Cache-Control: no-transform`, of a type `settings` leaves out, or with a Content-Length below
 * `minBytes`. Only an answer that passes varies with Accept-Encoding. An answer to HEAD passes as
 * the GET's would: its head must say what the GET's says (RFC 9110 §9.3.2), though it has no body.
 */
export function mayCompress(requestHeaders: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, settings: CompressSettings): boolean {
  if (status < 200 || UNTOUCHED_STATUSES.has(status) || !requestMayBeCompressed(requestHeaders) || !headersAllowCoding(headers)) return false;
  if (!compressibleType(headers['content-type'], settings)) return false;
  const length = headers['content-length'];
  return length === undefined || !(Number(length) < settings.minBytes);
}

/** Whether the answer to this request may be compressed: not to a Range request, an upgrade or a gRPC call. */
function requestMayBeCompressed(requestHeaders: IncomingHttpHeaders): boolean {
  if (requestHeaders.range !== undefined || requestHeaders.upgrade !== undefined) return false;
  return requestHeaders['content-type']?.startsWith('application/grpc') !== true;
}

/** Whether answer headers let the gateway add a coding: none there already, no `Cache-Control: no-transform`. */
function headersAllowCoding(headers: OutgoingHttpHeaders): boolean {
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && String(encoding).trim().toLowerCase() !== 'identity') return false;
  const cacheControl = headers['cache-control'];
  return cacheControl === undefined || !/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(String(cacheControl));
}

/**
 * Whether a 304 may stand for a 200 this middleware compressed, and so must carry the Vary and ETag
 * that 200 had (RFC 9110 §15.4.5). A 304 seldom says its Content-Type or length: unless it names a
 * type `settings` leaves out, or a length below `minBytes`, it is taken to stand for a compressed
 * answer. A length of 0 says nothing: servers that send `Content-Length: 0` on a 304 mean the 304's
 * own empty body (ASP.NET Core MVC 2.0's static files, Play 1 and ReactPHP's http did), not the 200's.
 */
export function notModifiedMayStandForCompressed(requestHeaders: IncomingHttpHeaders, headers: OutgoingHttpHeaders, settings: CompressSettings): boolean {
  if (!requestMayBeCompressed(requestHeaders) || !headersAllowCoding(headers)) return false;
  const length = Number(headers['content-length'] ?? Number.NaN);
  if (length > 0 && length < settings.minBytes) return false;
  return headers['content-type'] === undefined || compressibleType(headers['content-type'], settings);
}

/** Weakens a strong ETag (`"x"` to `W/"x"`): a compressed answer's bytes are not the upstream's. */
export function weakenEtag(headers: OutgoingHttpHeaders): void {
  const etag = headers.etag;
  if (typeof etag === 'string' && !etag.startsWith('W/')) headers.etag = `W/${etag}`;
}

/** Adds `Accept-Encoding` to the answer's Vary, unless it is there already or Vary is `*`. */
export function varyOnAcceptEncoding(headers: OutgoingHttpHeaders): void {
  const vary = headers.vary;
  if (vary === undefined || vary === '') {
    headers.vary = 'Accept-Encoding';
    return;
  }
  const text = Array.isArray(vary) ? vary.join(', ') : String(vary);
  const names = text.split(',').map((name) => name.trim().toLowerCase());
  if (names.includes('*') || names.includes('accept-encoding')) return;
  headers.vary = `${text}, Accept-Encoding`;
}
