import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext } from '../../context.ts';
import { applyHeaderHooks } from '../../proxy/answer-headers.ts';

/** The request headers that make a request conditional (RFC 9110 §13.1): one with any of them is the client's own to answer. */
const CONDITIONAL_REQUEST_HEADERS: readonly string[] = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range'];

/** The conditionals a cache asks itself when it revalidates (RFC 9111 §4.3.1); any other makes a request the client's own to pass on. */
const REVALIDATING_HEADERS: readonly string[] = ['if-none-match', 'if-modified-since'];

/** The stored headers a 304 carries (RFC 9110 §15.4.5: those a 200 would have sent that a cache needs to freshen its copy). */
const NOT_MODIFIED_HEADERS: readonly string[] = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'last-modified', 'vary'];

/**
 * Headers of a 304 that never replace a stored answer's (RFC 9111 §3.2): they describe the body the
 * 304 does not carry (the stored body is kept), as http-cache-semantics' `revalidatedPolicy` leaves
 * them; and `Accept-Ranges`, which on a stored 200 is the cache's own (it answers the ranges).
 */
const KEPT_ON_REFRESH: ReadonlySet<string> = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'content-range', 'accept-ranges']);

/** One entity-tag of a list (RFC 9110 §8.8.3): a quoted opaque tag, weak or not; a comma may sit inside the quotes. */
const ENTITY_TAG = /(?:W\/)?"[^"]*"/g;

/** The body of an answer from memory that has none: a 304, a 412, a 416. */
export const NO_BODY = Buffer.alloc(0);

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/**
 * An HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, or the obsolete RFC 850 and asctime forms a
 * recipient must still accept. `Date.parse` alone also takes `2025-06-01` or a bare year.
 */
const HTTP_DATE = new RegExp(
  `^(?:${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \\d{2}-${MONTH}-\\d{2} ${TIME} GMT|${DAY} ${MONTH} [ \\d]\\d ${TIME} \\d{4})$`,
);

/** The time of an HTTP-date in ms, or NaN for a value that is none (RFC 9110 §13.1.3: such an If-Modified-Since is ignored); asctime's is GMT too. */
export function httpDateMs(value: string): number {
  const text = value.trim();
  if (!HTTP_DATE.test(text)) return Number.NaN;
  return Date.parse(text.endsWith(' GMT') ? text : `${text} GMT`);
}

/** Whether `headers` make a request conditional (`If-None-Match`, `If-Modified-Since`, `If-Match`, `If-Unmodified-Since`, `If-Range`). */
export function isConditional(headers: IncomingHttpHeaders): boolean {
  return CONDITIONAL_REQUEST_HEADERS.some((name) => headers[name] !== undefined);
}

/**
 * Whether a conditional request asks of a stored answer what the cache's own revalidation would
 * (RFC 9111 §4.3.2): only `If-None-Match` (not `*`) or `If-Modified-Since`, and the stored answer
 * meets them (`isNotModified`), so a 304 to the cache's validators is the client's 304 too: a
 * returning client holding the stored answer, whose requests would otherwise never freshen it.
 */
export function asksAsCacheWould(request: IncomingHttpHeaders, status: number, stored: OutgoingHttpHeaders): boolean {
  if (CONDITIONAL_REQUEST_HEADERS.some((name) => request[name] !== undefined && !REVALIDATING_HEADERS.includes(name))) return false;
  if (request['if-none-match']?.trim() === '*') return false;
  return isNotModified(request, status, stored);
}

/** `headers` without `If-None-Match` and `If-Modified-Since`. */
export function withoutRevalidatingHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const rest = { ...headers };
  for (const name of REVALIDATING_HEADERS) delete rest[name];
  return rest;
}

/** An entity-tag without its weakness mark, for the weak comparison (RFC 9110 §8.8.3.2). */
function opaqueTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/**
 * Whether a request with `request` headers is answered 304 by a stored 2xx answer with `stored`
 * headers (RFC 9110 §13.2.2, steps 3 and 4 for GET and HEAD): `If-None-Match` lists the stored
 * ETag by the weak comparison, or is `*`; without `If-None-Match`, the stored `Last-Modified` is
 * not later than `If-Modified-Since` (a value that is no HTTP-date is ignored, as RFC 9110 §13.1.3 says).
 */
export function isNotModified(request: IncomingHttpHeaders, status: number, stored: OutgoingHttpHeaders): boolean {
  // Preconditions apply only to an answer that would be a 2xx (RFC 9110 §13.2.1).
  if (status < 200 || status >= 300) return false;
  const noneMatch = request['if-none-match'];
  if (noneMatch !== undefined) {
    if (noneMatch.trim() === '*') return true;
    const etag = stored.etag;
    if (typeof etag !== 'string') return false;
    const own = opaqueTag(etag.trim());
    return (noneMatch.match(ENTITY_TAG) ?? []).some((tag) => opaqueTag(tag) === own);
  }
  const since = request['if-modified-since'];
  const lastModified = stored['last-modified'];
  if (since === undefined || typeof lastModified !== 'string') return false;
  const sinceMs = httpDateMs(since);
  const modifiedMs = Date.parse(lastModified);
  return Number.isFinite(sinceMs) && Number.isFinite(modifiedMs) && modifiedMs <= sinceMs;
}

/**
 * Whether a request's `If-Match` and `If-Unmodified-Since` hold for a stored answer of `status` with
 * `stored` headers (RFC 9110 §13.2.2, steps 1 and 2, which come before `If-None-Match`,
 * `If-Modified-Since` and the range): `If-Match` is `*` or lists its `ETag` by the strong comparison
 * (a weak or absent `ETag` never matches, as in nginx's `ngx_http_test_if_match`); without
 * `If-Match`, its `Last-Modified` is not later than `If-Unmodified-Since`, which is ignored when it
 * is no HTTP-date or the answer has no `Last-Modified` (RFC 9110 §13.1.4). Only a 2xx answer is
 * judged (RFC 9110 §13.2.1: preconditions are ignored where the answer would be no 2xx anyway).
 */
export function preconditionsHold(request: IncomingHttpHeaders, status: number, stored: OutgoingHttpHeaders): boolean {
  if (status < 200 || status >= 300) return true;
  const ifMatch = request['if-match'];
  if (ifMatch !== undefined) {
    if (ifMatch.trim() === '*') return true;
    const etag = typeof stored.etag === 'string' ? stored.etag.trim() : undefined;
    if (etag === undefined || etag.startsWith('W/')) return false;
    return (ifMatch.match(ENTITY_TAG) ?? []).some((tag) => tag === etag);
  }
  const since = request['if-unmodified-since'];
  const lastModified = stored['last-modified'];
  if (since === undefined || typeof lastModified !== 'string') return true;
  const sinceMs = httpDateMs(since);
  const modifiedMs = Date.parse(lastModified);
  return !Number.isFinite(sinceMs) || !Number.isFinite(modifiedMs) || modifiedMs <= sinceMs;
}

/** The headers of a 304 that stands for the stored answer with `stored` headers: its validators, freshness, `Vary`, `Date` and `Content-Location`. */
export function notModifiedHeaders(stored: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const name of NOT_MODIFIED_HEADERS) {
    const value = stored[name];
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

/**
 * The upstream's headers that a 304 made of its fetched answer keeps beside `NOT_MODIFIED_HEADERS`:
 * its `Age`, and its `Set-Cookie` (an answer with one is never stored, so no 304 from memory stands
 * for it; the upstream's own 304 would carry it, and a session renewed on every answer must reach a
 * client revalidating its copy).
 */
const KEPT_ON_FETCHED_NOT_MODIFIED: readonly string[] = ['age', 'set-cookie'];

/**
 * Makes the headers of an answer on its way to the client (`outgoing`, the response header hooks run
 * over them, edited in place) those of a 304 standing for it: of the upstream's own (`upstream`), only
 * those `notModifiedHeaders` keeps, its `Age` and its `Set-Cookie`, and nothing that describes a
 * body; the request's response header hooks run again over them for the 304 (a status header,
 * CORS, the request id), as on a 304 from memory. Which headers a hook set cannot be told from the
 * upstream's by value: an upstream that echoes the request id it got sends the value the hook sets.
 */
export function makeNotModified(outgoing: OutgoingHttpHeaders, upstream: OutgoingHttpHeaders, context: GatewayContext): void {
  for (const name of Object.keys(outgoing)) delete outgoing[name];
  for (const name of NOT_MODIFIED_HEADERS) {
    if (upstream[name] !== undefined) outgoing[name] = upstream[name];
  }
  for (const name of KEPT_ON_FETCHED_NOT_MODIFIED) {
    if (upstream[name] !== undefined) outgoing[name] = upstream[name];
  }
  // These hooks ran over this answer's head a moment ago; they set headers and do nothing else.
  applyHeaderHooks(context, 304, outgoing);
}

/**
 * `outgoing`, the headers of a fetched answer as they go to the client, edited in place into a
 * 412's as one from memory has them (`answerFromMemory`): none of the upstream's (its validators and
 * freshness would let a cache downstream keep the error), `Content-Length: 0`, and what the
 * request's response header hooks set (the request id, CORS, the cache status), run again over
 * them for the 412. Which headers a hook set cannot be told from the upstream's by value: an
 * upstream that echoes the request id it got sends the value the hook sets.
 */
export function makePreconditionFailed(outgoing: OutgoingHttpHeaders, context: GatewayContext): void {
  for (const name of Object.keys(outgoing)) delete outgoing[name];
  outgoing['content-length'] = '0';
  // These hooks ran over this answer's head a moment ago; they set headers and do nothing else.
  applyHeaderHooks(context, 412, outgoing);
}

/**
 * The stored answer's headers freshened by a 304's (RFC 9111 §3.2): each header the 304 has
 * replaces or joins the stored one, except those about the body it does not carry. A stored `Age`
 * goes: the 304 is the answer now received, its own `Age` (if any) the one that counts.
 */
export function refreshedHeaders(stored: OutgoingHttpHeaders, notModified: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ...stored };
  delete headers.age;
  for (const [name, value] of Object.entries(notModified)) {
    if (value !== undefined && !KEPT_ON_REFRESH.has(name)) headers[name] = value;
  }
  return headers;
}
