import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { AnswerReplacer, HeldAnswer } from '../../context.ts';
import { ENTITY_TAG, httpDateMs } from './cache-conditional.ts';

/** The part of a body one byte range selects: its first and last byte, both included (RFC 9110 §14.1.2). */
interface BytePart {
  readonly first: number;
  readonly last: number;
}

/** A `Range` value in the `bytes` unit (case-insensitive, RFC 9110 §14.1): the range set after it. */
const BYTES_UNIT = /^bytes=/i;
/** One range-spec (RFC 9110 §14.1.1): `first-last`, `first-` or the suffix `-length`. */
const RANGE_SPEC = /^(?:(\d+)-(\d*)|-(\d+))$/;

/**
 * Whether the decimal `digits` stand for a number below `other`'s, exactly: as Numbers, two past
 * 2^53 may round to one (`9007199254740993-9007199254740992`, an invalid range, would read as valid).
 */
function isBelow(digits: string, other: string): boolean {
  const a = digits.replace(/^0+/, '');
  const b = other.replace(/^0+/, '');
  return a.length !== b.length ? a.length < b.length : a < b;
}

/**
 * The part of a body `length` bytes long that a `Range` value asks for, clamped to the body;
 * 'unsatisfiable' when it starts at or past the end (or is a suffix of zero bytes, RFC 9110
 * §14.1.1); undefined when the value is to be ignored (RFC 9110 §14.2): not the `bytes` unit, not
 * valid (`5-2`, `abc`), an empty body, or more than one range. Several ranges would be a
 * multipart/byteranges answer (nginx's); this cache sends the whole answer instead, which RFC 9110
 * allows and which no set of many or overlapping ranges can make bigger or costlier (CVE-2011-3192).
 */
export function requestedPart(range: string, length: number): BytePart | 'unsatisfiable' | undefined {
  if (length === 0 || !BYTES_UNIT.test(range)) return undefined;
  let spec: string | undefined;
  // A list may hold empty elements (RFC 9110 §5.6.1): `bytes=0-4,` is one range.
  for (const element of range.slice(6).split(',')) {
    const trimmed = element.trim();
    if (trimmed === '') continue;
    if (spec !== undefined) return undefined;
    spec = trimmed;
  }
  const match = spec === undefined ? null : RANGE_SPEC.exec(spec);
  if (match === null) return undefined;
  const [, firstText, lastText, suffixText] = match;
  if (suffixText !== undefined) {
    const suffix = Number(suffixText);
    return suffix === 0 ? 'unsatisfiable' : { first: Math.max(0, length - suffix), last: length - 1 };
  }
  if (lastText !== '' && isBelow(lastText!, firstText!)) return undefined;
  const first = Number(firstText);
  const last = lastText === '' ? Number.POSITIVE_INFINITY : Number(lastText);
  if (first >= length) return 'unsatisfiable';
  return { first, last: Math.min(last, length - 1) };
}

/**
 * Whether a request's `If-Match` and `If-Unmodified-Since` hold for a stored answer with `stored`
 * headers (RFC 9110 §13.2.2, steps 1 and 2, which come before the range): `If-Match` is `*` or lists
 * its `ETag` by the strong comparison; without `If-Match`, its `Last-Modified` is not later than
 * `If-Unmodified-Since` (a value that is no HTTP-date is ignored, RFC 9110 §13.1.4). A client that
 * resumes a download this way asks for the part of the version it holds: another version's bytes
 * spliced onto it would corrupt it, where the whole answer only starts it again.
 */
export function preconditionsHold(request: IncomingHttpHeaders, stored: OutgoingHttpHeaders): boolean {
  const ifMatch = request['if-match'];
  if (ifMatch !== undefined) {
    if (ifMatch.trim() === '*') return true;
    const etag = typeof stored.etag === 'string' ? stored.etag.trim() : undefined;
    if (etag === undefined || etag.startsWith('W/')) return false;
    return (ifMatch.match(ENTITY_TAG) ?? []).some((tag) => tag === etag);
  }
  const since = request['if-unmodified-since'];
  if (since === undefined) return true;
  const sinceMs = httpDateMs(since);
  if (!Number.isFinite(sinceMs)) return true;
  const lastModified = stored['last-modified'];
  // No Last-Modified: nothing shows the answer unmodified since then.
  return typeof lastModified === 'string' && Date.parse(lastModified) <= sinceMs;
}

/**
 * Whether an `If-Range` lets a stored answer with `stored` headers answer a range (RFC 9110
 * §13.1.5): an entity-tag equal to its `ETag` by the strong comparison (neither weak), or an
 * HTTP-date equal to its `Last-Modified` where that is a strong validator, its `Date` at least a
 * second later (RFC 9110 §8.8.2.2, as an intermediate cache judges it: a representation modified in
 * the second it was sent may have changed again within that second). Anything else (another tag, a
 * weak one, a date that is none, a weak date) asks for the whole answer.
 */
export function ifRangeHolds(ifRange: string, stored: OutgoingHttpHeaders): boolean {
  const validator = ifRange.trim();
  if (validator.startsWith('"') || validator.startsWith('W/')) {
    const etag = stored.etag;
    return typeof etag === 'string' && !validator.startsWith('W/') && etag.trim() === validator;
  }
  const lastModified = stored['last-modified'];
  if (typeof lastModified !== 'string' || typeof stored.date !== 'string') return false;
  const since = httpDateMs(validator);
  const modified = Date.parse(lastModified);
  return Number.isFinite(since) && since === modified && Date.parse(stored.date) - modified >= 1_000;
}

/**
 * The answer a stored 200 (`status`, `headers`, `body`) makes for a request by its `Range`, as
 * nginx's range filter makes it for a cached one (RFC 9110 §14): `206` with `Content-Range` and the
 * part's `Content-Length`, or `416` with no body and a `Content-Range` that gives the length alone when
 * the range starts past the end; the whole answer when the request has no `Range`, is not a `GET` (RFC 9110
 * §14.2: a HEAD's is ignored), its `If-Match` or `If-Unmodified-Since` (`preconditionsHold`) or its
 * `If-Range` does not hold, or `requestedPart` ignores it (each with
 * the stored `Accept-Ranges: bytes`, `ResponseCache.store`). Any other status goes as it is.
 * `headers` is the caller's own, edited in place.
 */
export function rangeOfStored(method: string | undefined, request: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, body: Buffer): HeldAnswer {
  if (status !== 200) return { status, headers, body };
  const range = request.range;
  if (range === undefined || method !== 'GET') return { status, headers, body };
  if (!preconditionsHold(request, headers)) return { status, headers, body };
  const ifRange = request['if-range'];
  if (ifRange !== undefined && (typeof ifRange !== 'string' || !ifRangeHolds(ifRange, headers))) return { status, headers, body };
  const part = requestedPart(range, body.length);
  if (part === undefined) return { status, headers, body };
  // Digests of the whole content (RFC 9530's Content-Digest, RFC 1864's Content-MD5) match neither a part nor a 416's empty one; Repr-Digest still does.
  delete headers['content-digest'];
  delete headers['content-md5'];
  if (part === 'unsatisfiable') {
    headers['content-range'] = `bytes */${body.length}`;
    headers['content-length'] = '0';
    // No body: nothing for these to describe.
    delete headers['content-type'];
    delete headers['content-encoding'];
    return { status: 416, headers, body: Buffer.alloc(0) };
  }
  headers['content-range'] = `bytes ${part.first}-${part.last}/${body.length}`;
  headers['content-length'] = String(part.last - part.first + 1);
  return { status: 206, headers, body: body.subarray(part.first, part.last + 1) };
}

/**
 * `replace` (the cache's `AnswerReplacer`) whose stored 200s, sent in a fetch's place (`REVALIDATED`,
 * `STALE`), answer the request's `Range` as a hit does (`rangeOfStored`).
 */
export function answeringRanges(replace: AnswerReplacer, method: string | undefined, request: IncomingHttpHeaders): AnswerReplacer {
  return (status, headers, errorClass) => {
    const answer = replace(status, headers, errorClass);
    return answer === undefined ? undefined : rangeOfStored(method, request, answer.status, answer.headers, answer.body);
  };
}
