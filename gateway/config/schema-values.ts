import { z } from 'zod';
import { parseDurationMs } from '../../src/duration.ts';
import { replacementDotSegment } from '../middleware/rewrite/replacement-dot-segment.ts';
import { isHopByHop } from '../proxy/hop-by-hop.ts';
import { parseIpRanges } from './ip-range.ts';
import { ALLOW_UNSAFE_REGEX_KEY, regexBacktrackingRisk } from './regex-safety.ts';

/** Every key any section of the file knows: an unknown key found here is another section's (the hints name only keys valid at its place). */
export const KNOWN_KEYS = new Set<string>();

/** A strict object (an unknown key is an error, so typos never pass silently) whose keys feed `KNOWN_KEYS`. */
export function section<Shape extends z.ZodRawShape>(shape: Shape) {
  for (const key of Object.keys(shape)) KNOWN_KEYS.add(key);
  return z.strictObject(shape);
}

const DURATION_HINT = 'expected a duration such as "500ms", "2s", "1m", or a number of milliseconds';

/**
 * The longest duration the file takes where the gateway waits on it with a timer (a timeout, an
 * interval, a grace): 24 days. Node's timers hold at most 2^31 - 1 ms (about 24.8 days) and fire a
 * longer one after 1 ms instead, with only a TimeoutOverflowWarning: `keepAliveTimeout: 30d` closed
 * every idle connection at once. 24 days leaves room for what node or the gateway adds to a value.
 */
export const LONGEST_TIMER_DURATION_MS = 24 * 86_400_000;

/**
 * A duration that is only computed with, never waited on by a timer (an HSTS max-age, a rate's
 * period): `"500ms"`, `"2s"`, `"1.5m"`, `"1h"`, `"1y"` or a number of milliseconds; output in milliseconds.
 */
export const longDuration = z.union([z.number(), z.string()], { error: DURATION_HINT }).transform((value, context) => {
  // A bare number in a string is refused: "500" could mean seconds (nginx) or milliseconds (here).
  const ms = typeof value === 'number' ? value : /[a-z]\s*$/i.test(value) ? parseDurationMs(value) : undefined;
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) {
    context.addIssue({ code: 'custom', message: DURATION_HINT });
    return z.NEVER;
  }
  return Math.round(ms);
});

/** A duration the gateway waits on (`longDuration` up to `LONGEST_TIMER_DURATION_MS`); output in milliseconds. */
export const duration = longDuration.refine((ms) => ms <= LONGEST_TIMER_DURATION_MS, 'must be at most 24d (the longest a timer waits)');

// GiB too: a cache's `maxSize` or an upload's `bodyLimit` of production size is written so, and
// `1GiB` was refused as no size at all while `1024MiB` was taken.
const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};
const SIZE_HINT = 'expected a size such as 16384, "16KiB", "1MiB" or "1GiB"';

function sizeFrom(least: 0 | 1) {
  return z.union([z.number(), z.string()], { error: SIZE_HINT }).transform((value, context) => {
    const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim()) : undefined;
    const factor = match ? SIZE_UNITS[match[2]!.toLowerCase()] : 1;
    const bytes = typeof value === 'number' ? value : match && factor ? Number(match[1]) * factor : NaN;
    if (!Number.isInteger(bytes) || bytes < least) {
      context.addIssue({ code: 'custom', message: bytes === 0 ? 'must be above 0' : SIZE_HINT });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A byte size: a number of bytes or `"16KiB"`, `"16k"`, `"1MiB"`, `"1GiB"` (binary units), above 0; output in bytes. */
export const byteSize = sizeFrom(1);

/** A byte size that may be 0, for a threshold where 0 means "every one" (compress's `minSize`). */
export const byteSizeOrZero = sizeFrom(0);

/** A whole number at least `min`. */
export const count = (min: number, max = Number.MAX_SAFE_INTEGER) => z.int().min(min).max(max);

/** A percentage from 0 to 100. */
export const percent = z.number().min(0).max(100);

/** Where a listener binds: `host` undefined means every interface (Node's dual-stack default). */
export interface ListenAddress {
  readonly host: string | undefined;
  readonly port: number;
}

const LISTEN_HINT = 'expected "host:port", ":port", "[ipv6]:port" or a port number';

/** A listen address: `127.0.0.1:8080`, `[::1]:8080`, `:8080` or `8080` (port 0 picks a free port). */
export const listenAddress = z.union([z.int(), z.string()], { error: LISTEN_HINT }).transform((value, context): ListenAddress => {
  const match = typeof value === 'number' ? ['', '', String(value)] : /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3] ?? match[2]) : NaN;
  if (!match || !Number.isInteger(port) || port < 0 || port > 65_535) {
    context.addIssue({ code: 'custom', message: LISTEN_HINT });
    return z.NEVER;
  }
  const host = typeof value === 'number' ? undefined : (match[1] ?? match[2]) || undefined;
  return { host, port };
});

/**
 * An HTTP header name (RFC 9110 token), lowercased. A bad one is named in its message: as a
 * record's key (`set`, a fallback's `headers`) its place in the file is the name itself.
 */
export const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: (issue) => `${JSON.stringify(issue.input)} is not a valid header name (RFC 9110 §5.1: letters, digits and !#$%&'*+-.^_\`|~ only, no spaces or ":")` })
  .transform((name) => name.toLowerCase());

/** Statuses whose answers carry no body (RFC 9110 §15.3.5, §15.3.6, §15.4.5). */
export const BODYLESS_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);

/**
 * Headers that frame a message's body. Set by hand they would disagree with the body the gateway
 * sends: an answer cut short or run into the next one on a kept-alive connection, or an upload
 * refused as the client's fault (400 `client-body-error`) whenever it has a body.
 */
const FRAMING_HEADERS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding']);

/** The message a header edit changes: a request the gateway sends upstream, or an answer it sends the client. */
export type EditedMessage = 'request' | 'answer';

/**
 * Why the gateway cannot send header `name` (lower case) with `value` in an `edited` message, or
 * undefined when it can. The framing headers would disagree with the body it sends. The hop-by-hop
 * ones (RFC 9110 §7.6.1) belong to one connection, and the gateway keeps its own on both sides: set
 * on a request they were removed unseen with the client's own; on an answer, `Trailer` made
 * node:http refuse to write every answer with a `Content-Length` (the client's connection cut, the
 * instance blamed), and `TE`, `Upgrade` and the `Proxy-*` ones speak of a connection the gateway has
 * not made. An answer may say `Connection: close`, which node:http honours (the connection closes
 * after it), and nothing else: `keep-alive` would keep open a connection the gateway or its client
 * closes (a body left unread, a drain, a client's own `close`), and `Keep-Alive` would announce
 * another idle timeout than the one the gateway closes connections after (it announces that one).
 */
export function headerEditProblem(name: string, value: string, edited: EditedMessage): string | undefined {
  if (FRAMING_HEADERS.has(name)) return `cannot set ${name}: the gateway frames the body itself`;
  if (!isHopByHop(name)) return undefined;
  if (edited === 'answer' && name === 'connection') {
    return /^close$/i.test(value) ? undefined : `cannot set connection to ${JSON.stringify(value)} on an answer, only to close (the connection then closes after it): the gateway keeps the others alive itself, and would have to keep open one it closes`;
  }
  if (edited === 'answer' && name === 'keep-alive') return 'cannot set keep-alive on an answer: the gateway announces its own, the limits.keepAliveTimeout after which it closes an idle connection';
  return `cannot set ${name}: a hop-by-hop header belongs to one connection, and the gateway keeps its own (RFC 9110 §7.6.1)`;
}

/** Refuses, in the headers an `edited` message is given (a `set`, a static answer's `headers`), what `headerEditProblem` names. */
export function refuseUnsendableHeaders(edited: EditedMessage): (headers: Readonly<Record<string, string>>, context: z.RefinementCtx) => void {
  return (headers, context) => {
    for (const [name, value] of Object.entries(headers)) {
      const problem = headerEditProblem(name, value, edited);
      if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
    }
  };
}

/** A header value: strings, numbers and booleans (YAML reads `1` as a number) as text; CR, LF and NUL refused. */
export const headerValue = z
  .union([z.string(), z.number(), z.boolean()], { error: 'expected a header value (text)' })
  .transform(String)
  .refine((value) => !/[\r\n\0]/.test(value), 'must not contain CR, LF or NUL');

/**
 * A header value the gateway sends on a request or an answer (`set` edits, a fallback's headers, the trace exporter's): as
 * `headerValue`, and only characters an HTTP header can carry as Node writes it (tab, printable
 * ASCII, U+0080–U+00FF). Any other made every answer that carried it fail as it was written: the
 * client's connection was cut, after an upstream's answer or the gateway's own. No space or tab at
 * either end.
 */
export const sentHeaderValue = headerValue
  .refine(isSendableHeaderText, 'must hold only tab, printable ASCII and Latin-1 characters (percent-encode other text)')
  // RFC 9110 §5.5: a field value's leading and trailing spaces and tabs are no part of it, and RFC 9113
  // §8.2.1 makes an HTTP/2 field value with them malformed: node:http2 drops the field, a stricter
  // HTTP/2 upstream may reset every request that carries one, a failure counted against the instance.
  .refine((value) => !/^[ \t]|[ \t]$/.test(value), 'must not start or end with a space or tab (no part of a header value; malformed in HTTP/2)');

/**
 * A header value a request's header is compared with (a route's `headers` condition): as
 * `sentHeaderValue`, since Node reads a request's header bytes as Latin-1, so a condition with any
 * other character (`日本`) could never match, whatever a client sent; nor one with a space or tab at
 * either end (`" a"`), which Node strips from every value.
 */
export const matchedHeaderValue = headerValue
  .refine(isSendableHeaderText, 'must hold only tab, printable ASCII and Latin-1 characters, as a request header read by Node does (it could never match)')
  // RFC 9110 §5.5: a field value's leading and trailing spaces and tabs are no part of it; Node strips them, and `headerHasValue` trims each listed element.
  .refine((value) => !/^[ \t]|[ \t]$/.test(value), 'must not start or end with a space or tab, which a request header never does (it could never match)');

/** Whether Node can write `value` in a header; CR, LF and NUL pass here, `headerValue` names them itself. */
function isSendableHeaderText(value: string): boolean {
  for (let index = 0; index < value.length; index += 1) {
    const code = value.charCodeAt(index);
    if (code > 0xff || code === 0x7f || (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d && code !== 0x00)) return false;
  }
  return true;
}

/** A host name or IP address with an optional port, as a literal Host header carries it. */
export const hostWithPort = z.string().regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?$/, 'is not a host name with an optional :port');

/** An IP address, a CIDR or `loopback` / `private`; output as the text given. */
export const ipRangeText = z.string().refine((text) => parseIpRanges(text) !== undefined, 'expected an IP address, a CIDR such as 10.0.0.0/8, "loopback" or "private"');

/** A JavaScript regular expression source that compiles. */
export const regexSource = z.string().min(1).superRefine((source, context) => {
  try {
    new RegExp(source);
  } catch (error) {
    context.addIssue({ code: 'custom', message: `is not a valid regular expression: ${(error as Error).message}` });
  }
});

/**
 * Refuses, at `path`, a pattern that can backtrack catastrophically on a client's path
 * (`regexBacktrackingRisk`), naming the opt-out: `allowUnsafeRegex: true` beside the pattern.
 * find-my-way refuses such route regexes the same way; Envoy and Traefik avoid them with RE2.
 */
export function refuseUnsafeRegex(context: z.RefinementCtx, source: string | undefined, path: readonly PropertyKey[]): void {
  const risk = source === undefined ? undefined : regexBacktrackingRisk(source);
  if (risk) context.addIssue({ code: 'custom', path: [...path], message: `${risk}; or set ${ALLOW_UNSAFE_REGEX_KEY}: true beside it to accept it` });
}

/**
 * `rewrite:` of a route and of a rewrite middleware: a regex on the upstream path, checked by
 * `refuseUnsafeRegex`, and its replacement, refused when its own text makes a `.` or `..` segment
 * in every path it rewrites (`replacementDotSegment`): each such request would be answered 400
 * `rewritten-dot-segment`, so the rewrite could serve none of them.
 */
export const rewriteSettings = section({ pattern: regexSource, replacement: z.string(), [ALLOW_UNSAFE_REGEX_KEY]: z.boolean().optional() })
  .superRefine((rewrite, context) => {
    if (!rewrite.allowUnsafeRegex) refuseUnsafeRegex(context, rewrite.pattern, ['pattern']);
    const segment = replacementDotSegment(rewrite.pattern, rewrite.replacement);
    if (segment !== undefined) context.addIssue({ code: 'custom', path: ['replacement'], message: dotSegmentMessage(segment) });
  })
  // The opt-out is about loading; the middleware's settings (its state key) stay the pattern and replacement.
  .transform(({ pattern, replacement }) => ({ pattern, replacement }));

function dotSegmentMessage(segment: string): string {
  const spelt = segment.includes('%') ? ' (a dot spelt %2E counts, as the router decodes it)' : '';
  return `makes the dot segment "${segment}"${spelt} in every path it rewrites, whatever the request, so each would be refused with 400 rewritten-dot-segment; write the path without it ("/a/../b" as "/b")`;
}
