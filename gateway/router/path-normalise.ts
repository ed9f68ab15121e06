/** What to do with `%2F`, `%5C` and a raw `\` in a path (Envoy's `path_with_escaped_slashes_action`). */
export type EscapedSlashAction = 'keep' | 'reject';

/** How paths are normalised before routing. */
export interface PathNormalisation {
  /** Merge runs of `/` into one (nginx `merge_slashes on`). */
  readonly mergeSlashes: boolean;
  /** `keep` leaves `%2F`/`%5C` encoded and encodes a raw `\` as `%5C` (a segment may hold a slash), `reject` answers 400. */
  readonly escapedSlashes: EscapedSlashAction;
}

/** Why a request target cannot be normalised; each answers 400. */
export type PathErrorCode = 'invalid-percent-encoding' | 'nul-in-path' | 'escaped-slash';

/** A target the normaliser refused. */
export interface PathError {
  readonly error: PathErrorCode;
}

const PERCENT = 37;
const SLASH = 47;
const DOT = 46;
const QUESTION = 63;
/**
 * A raw `\` in a path is read as `%5C`, the escaped backslash, and falls under `escapedSlashes`
 * with it: kept (and sent upstream as `%5C`) or refused with 400 `escaped-slash`. RFC 3986 allows
 * no raw `\` in a URI, but Node's parser takes one, and readers disagree on what it is: the WHATWG
 * URL parser (browsers, Node's `new URL(req.url, base)`, Chromium's GURL, which Envoy's
 * `normalize_path` uses) reads it as `/`; nginx on Unix, HAProxy and Go read it as a character, and
 * nginx 1.22 and HAProxy 2.6 forward it raw. Left raw here, the gateway would route and guard
 * `/public/..\admin` under `/public` while a WHATWG upstream serves `/admin`. Sent as `%5C`, it is
 * a character to every reader (WHATWG keeps `%5C`, and `..%5C` is no dot segment), so routing,
 * rewrites, access control and the upstream read one path; Go's net/url writes a raw `\` it
 * forwards as `%5C` too (`EscapedPath`), and so Traefik's proxy does. Reading it as `/` before dot
 * segments, as Envoy does, would make them agree as well, but would change the resource for every
 * upstream that reads `\` as a character, and would let a backslash the client disguised split a
 * segment that `%5C`, the one it escaped, never splits: one contract, `escapedSlashes`, for both.
 */
const BACKSLASH = 92;
const HEX_DIGITS = '0123456789ABCDEF';

/**
 * Normalises the path of an origin-form target (`/path?query`) as nginx and Envoy do before
 * matching, so that a route and the rules on it cannot be bypassed by spelling:
 * - percent-encoded unreserved characters (RFC 3986 §2.3: ALPHA DIGIT `-._~`) are decoded, other
 *   escapes stay encoded with uppercase hex (§6.2.2.1); a `%` without two hex digits, and NUL (raw
 *   or `%00`), are refused;
 * - `%2F` and `%5C` are kept encoded (they never split a segment) or refused, per `escapedSlashes`,
 *   and a raw `\` is read as `%5C` (why: at `BACKSLASH`);
 * - `.` and `..` segments are removed (§5.2.4 remove_dot_segments, never above the root; a path
 *   ending in a dot segment keeps its trailing slash);
 * - runs of `/` are merged when `mergeSlashes` is on.
 * The query is left as it is. A target that needs none of this (no `%`, no `\`, no `/.`, no `//`,
 * no NUL in its path) is returned unchanged without allocating; one not starting with `/` (`*`) too.
 */
export function normalisePath(target: string, options: PathNormalisation): string | PathError {
  if (target.charCodeAt(0) !== SLASH) return target;
  let end = target.length;
  let clean = true;
  for (let index = 0; index < end; index += 1) {
    const code = target.charCodeAt(index);
    if (code === QUESTION) {
      end = index;
      break;
    }
    if (code === PERCENT || code === BACKSLASH || code === 0) clean = false;
    else if (code === SLASH) {
      const next = target.charCodeAt(index + 1);
      if (next === DOT || (next === SLASH && options.mergeSlashes)) clean = false;
    }
  }
  if (clean) return target;
  const decoded = decodeUnreserved(target, end, options.escapedSlashes);
  if (typeof decoded !== 'string') return decoded;
  const path = removeDotSegments(decoded, options.mergeSlashes);
  return end === target.length ? path : path + target.slice(end);
}

/**
 * Whether the path of `target` (before any `?`) holds a `.` or `..` segment, as a normalised path
 * never does, a dot spelt `%2E` or `%2e` counting as a dot: `normalisePath` decodes it (RFC 3986
 * §6.2.2.2, it is unreserved) before removing dot segments, and so do upstreams that decode escapes
 * first, so `/data/%2E%2E/admin` is `/admin` to both. Allocates nothing.
 */
export function hasDotSegment(target: string): boolean {
  const query = target.indexOf('?');
  const end = query === -1 ? target.length : query;
  for (let slash = target.indexOf('/'); slash !== -1 && slash < end; slash = target.indexOf('/', slash + 1)) {
    // Up to three dots after the slash: one or two then the segment's end make a dot segment.
    let after = slash + 1;
    let dots = 0;
    for (let width = dotWidth(target, after, end); width > 0 && dots < 3; width = dotWidth(target, after, end)) {
      after += width;
      dots += 1;
    }
    if (dots > 0 && dots < 3 && (after === end || target.charCodeAt(after) === SLASH)) return true;
  }
  return false;
}

/** 1 for a `.` at `index`, 3 for a `%2E` (either case), else 0; nothing at or past `end`. */
function dotWidth(target: string, index: number, end: number): number {
  if (index >= end) return 0;
  const code = target.charCodeAt(index);
  if (code === DOT) return 1;
  if (code !== PERCENT || index + 2 >= end) return 0;
  const low = target.charCodeAt(index + 2);
  return target.charCodeAt(index + 1) === 50 && (low === 69 || low === 101) ? 3 : 0;
}

/** `target` up to `end` with unreserved escapes decoded, the others in uppercase hex and a raw `\` as `%5C`. */
function decodeUnreserved(target: string, end: number, escapedSlashes: EscapedSlashAction): string | PathError {
  let out = '';
  let copied = 0;
  for (let index = 0; index < end; index += 1) {
    const code = target.charCodeAt(index);
    if (code === 0) return { error: 'nul-in-path' };
    if (code === BACKSLASH) {
      if (escapedSlashes === 'reject') return { error: 'escaped-slash' };
      out += `${target.slice(copied, index)}%5C`;
      copied = index + 1;
      continue;
    }
    if (code !== PERCENT) continue;
    const high = hexValue(target.charCodeAt(index + 1));
    const low = index + 2 < end ? hexValue(target.charCodeAt(index + 2)) : -1;
    if (high < 0 || low < 0) return { error: 'invalid-percent-encoding' };
    const byte = high * 16 + low;
    if (byte === 0) return { error: 'nul-in-path' };
    if ((byte === 0x2f || byte === 0x5c) && escapedSlashes === 'reject') return { error: 'escaped-slash' };
    out += target.slice(copied, index);
    out += isUnreserved(byte) ? String.fromCharCode(byte) : `%${HEX_DIGITS[high]}${HEX_DIGITS[low]}`;
    copied = index + 3;
    index += 2;
  }
  return copied === 0 ? target.slice(0, end) : out + target.slice(copied, end);
}

/** RFC 3986 §5.2.4 over segments; empty segments are dropped when merging slashes, except a trailing one. */
function removeDotSegments(path: string, mergeSlashes: boolean): string {
  const segments = path.split('/');
  const output: string[] = [];
  // segments[0] is the empty string before the leading slash.
  const last = segments.length - 1;
  let trailingSlash = false;
  for (let index = 1; index <= last; index += 1) {
    const segment = segments[index]!;
    if (segment === '.' || segment === '..') {
      if (segment === '..') output.pop();
      if (index === last) trailingSlash = true;
    } else if (segment === '' && index === last) {
      trailingSlash = true;
    } else if (segment !== '' || !mergeSlashes) {
      output.push(segment);
    }
  }
  if (output.length === 0) return '/';
  return `/${output.join('/')}${trailingSlash ? '/' : ''}`;
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || byte === 45 || byte === 46 || byte === 95 || byte === 126
  );
}
