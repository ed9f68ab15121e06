import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { GatewayContext, HeldAnswer, ResponseBodyTap } from '../../context.ts';
import { httpDateMs, makeNotModified, makePreconditionFailed, NO_BODY } from './cache-conditional.ts';

/** The part of a body one byte range selects: its first and last byte, both included (RFC 9110 §14.1.2). */
export interface BytePart {
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
 * The part of a 200 `length` bytes long (`status`, `headers`) that a request answers with, as nginx's
 * range filter chooses it (RFC 9110 §14): undefined for the whole answer when the request has no
 * `Range`, is not a `GET` (RFC 9110 §14.2: a HEAD's is ignored), its `If-Range` does not hold, or
 * `requestedPart` ignores it; any other status is whole too. Its `If-Match` and
 * `If-Unmodified-Since` are judged before (`preconditionsHold`, RFC 9110 §13.2.2) by the caller.
 */
export function answeredPart(method: string | undefined, request: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, length: number): BytePart | 'unsatisfiable' | undefined {
  if (status !== 200) return undefined;
  const range = request.range;
  if (range === undefined || method !== 'GET') return undefined;
  const ifRange = request['if-range'];
  if (ifRange !== undefined && (typeof ifRange !== 'string' || !ifRangeHolds(ifRange, headers))) return undefined;
  return requestedPart(range, length);
}

/**
 * Makes the headers of a 200 `length` bytes long those of its `part` (edited in place) and returns
 * that answer's status: `206` with `Content-Range` and the part's `Content-Length`, or `416` with a
 * `Content-Range` that gives the length alone and a length of 0.
 */
export function describePart(part: BytePart | 'unsatisfiable', length: number, headers: OutgoingHttpHeaders): 206 | 416 {
  // Digests of the whole content (RFC 9530's Content-Digest, RFC 1864's Content-MD5) match neither a part nor a 416's empty one; Repr-Digest still does.
  delete headers['content-digest'];
  delete headers['content-md5'];
  if (part === 'unsatisfiable') {
    headers['content-range'] = `bytes */${length}`;
    headers['content-length'] = '0';
    // No body: nothing for these to describe.
    delete headers['content-type'];
    delete headers['content-encoding'];
    return 416;
  }
  headers['content-range'] = `bytes ${part.first}-${part.last}/${length}`;
  headers['content-length'] = String(part.last - part.first + 1);
  return 206;
}

/**
 * The answer a stored 200 (`status`, `headers`, `body`) makes for a request by its `Range`
 * (`answeredPart`, `describePart`), as nginx's range filter makes it for a cached one: the part, a
 * `416` with no body, or the whole answer (each with the stored `Accept-Ranges: bytes`,
 * `ResponseCache.store`). Any other status goes as it is. `headers` is the caller's own, edited in place.
 */
export function rangeOfStored(method: string | undefined, request: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, body: Buffer): HeldAnswer {
  const part = answeredPart(method, request, status, headers, body.length);
  if (part === undefined) return { status, headers, body };
  const answered = describePart(part, body.length, headers);
  if (part === 'unsatisfiable') return { status: answered, headers, body: NO_BODY };
  return { status: answered, headers, body: body.subarray(part.first, part.last + 1) };
}

/** The body length an answer's `headers` declare (`Content-Length`), infinite when they declare none (or not a number). */
function declaredLength(headers: OutgoingHttpHeaders): number {
  const declared = headers['content-length'];
  return typeof declared === 'string' && /^\d+$/.test(declared) ? Number(declared) : Number.POSITIVE_INFINITY;
}

/**
 * The tap of an answer not to be stored that the client gets only a part of (a range, a 304, a
 * HEAD's head): it keeps nothing, but reads the body on to its end while it is at most `bytes` long,
 * since an upstream connection closed unread costs a new one (a TLS handshake) for the next request,
 * more than reading a small body does; past `bytes` (or a body declared longer, `length`), the rest
 * is left unread: a `bytes=0-1` probe of a 2 GB video neither reads the video nor waits for it.
 */
function drainingUpTo(bytes: number, length: number): ResponseBodyTap {
  const declared = Number.isFinite(length) ? length : 0;
  let seen = 0;
  return { chunk: (chunk) => void (seen += chunk.length), end() {}, abort() {}, keeping: () => Math.max(declared, seen) <= bytes };
}

/** `tap` (or, for an answer not to be stored, one draining up to `drainBytes`) sending the client only the bytes from `start` up to `end` of a body `length` bytes long, with `status`. */
function withPart(tap: ResponseBodyTap | undefined, drainBytes: number, status: number, start: number, end: number, length: number): ResponseBodyTap {
  return { ...(tap ?? drainingUpTo(drainBytes, length)), part: { status, start, end, length } };
}

/**
 * `tap` (or one draining up to `drainBytes`, `drainingUpTo`) with the part of the fetched whole answer (`status`, `headers` as
 * they go to the client, edited in place to the part's) that the client's `Range` asks for
 * (`answeredPart`: the fresh answer's validators judge its `If-Range`), as nginx's range filter cuts
 * it from a cacheable fetch; only when the answer's length is known (`Content-Length`): without
 * it, the whole answer goes, which RFC 9110 §14.2 allows. The request's `If-Match` and
 * `If-Unmodified-Since` were judged before, on the same answer (`preconditionFailedTap`).
 */
export function partTap(tap: ResponseBodyTap | undefined, method: string, request: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, drainBytes: number): ResponseBodyTap | undefined {
  const length = declaredLength(headers);
  if (length === Number.POSITIVE_INFINITY) return tap;
  const part = answeredPart(method, request, status, headers, length);
  if (part === undefined) return tap;
  const answered = describePart(part, length, headers);
  const [start, end] = part === 'unsatisfiable' ? [0, 0] : [part.first, part.last + 1];
  return withPart(tap, drainBytes, answered, start, end, length);
}

/**
 * `tap` (or one draining up to `drainBytes`) for a HEAD's answer fetched as a GET (`convertHead`): the client's
 * part of the body is none of it, the head going with the upstream's `status` and `headers` (the
 * GET's `Content-Length`). The response ends at once, the body read on for the tap while it is
 * being stored; one not to be stored is read on to its end while small (`drainingUpTo`), and past
 * that, or given up on past the bounds, left unread, as a `Range` probe's is (`partTap`). An answer without a body keeps `tap` as it is.
 */
export function headTap(tap: ResponseBodyTap | undefined, status: number, headers: OutgoingHttpHeaders, drainBytes: number): ResponseBodyTap | undefined {
  const length = declaredLength(headers);
  // No body to leave unread (a 304 to the client's conditional, a 204): its connection stays reusable.
  if (length === 0 || status === 204 || status === 304) return tap;
  return withPart(tap, drainBytes, status, 0, 0, length);
}

/**
 * `tap` sending the client a 304 for the fetched answer its own validators match (`headers` as
 * they go to the client, edited in place to the 304's, `makeNotModified`; the upstream's own in
 * `upstream`), as nginx's not_modified filter answers a cacheable fetch: a part with no bytes, as a
 * 416 is, so the whole body is still stored. Without `tap` (an answer not to be stored) the body is
 * read on to its end while it is at most `drainBytes` long (`drainingUpTo`: every revalidation by a
 * browser of a `private` page would otherwise cost an upstream connection), and left unread past that. An answer of unknown length is a part of a body that never ends before its end.
 */
export function notModifiedTap(tap: ResponseBodyTap | undefined, headers: OutgoingHttpHeaders, upstream: OutgoingHttpHeaders, context: GatewayContext, drainBytes: number): ResponseBodyTap {
  const length = declaredLength(headers);
  makeNotModified(headers, upstream, context);
  return withPart(tap, drainBytes, 304, 0, 0, length);
}

/**
 * `tap` (or one draining up to `drainBytes`) sending the client a 412 for the fetched answer that
 * fails its `If-Match` or `If-Unmodified-Since` (`preconditionsHold`), which the upstream was not
 * asked (nginx's not_modified filter on a cacheable fetch): `headers`, as they go to the client,
 * edited in place to the 412's (`makePreconditionFailed`); a part with no bytes, as a 304 is, so
 * the whole answer is still stored.
 */
export function preconditionFailedTap(tap: ResponseBodyTap | undefined, headers: OutgoingHttpHeaders, context: GatewayContext, drainBytes: number): ResponseBodyTap {
  const length = declaredLength(headers);
  makePreconditionFailed(headers, context);
  return withPart(tap, drainBytes, 412, 0, 0, length);
}
