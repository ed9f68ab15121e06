import type { IncomingHttpHeaders } from 'node:http';
import type { CacheStaleSettings, StaleTrigger } from '../../config/types.ts';
import type { HeldAnswer } from '../../context.ts';
import { answerFromMemory } from './cache-hit.ts';
import type { CachedAnswer } from './cache-store.ts';

/**
 * The gateway's failures that stand for nginx's `error` (no instance could be reached: refused,
 * reset (`upstream-refused`, an HTTP/2 instance refusing an ordinary head, included) or garbled
 * before the head, a failed TLS handshake, none registered or healthy, an open
 * breaker, every connection busy) and `timeout` (connect or response headers). The client's own
 * failures (`cancelled`, a bad body) and the gateway's (`internal`) are none of them.
 */
const TRIGGER_BY_ERROR_CLASS: Readonly<Record<string, StaleTrigger>> = {
  'connect-refused': 'error',
  'reset-before-headers': 'error',
  'upstream-protocol': 'error',
  'http2-protocol-error': 'error',
  'upstream-refused': 'error',
  'upstream-tls': 'error',
  'no-instances': 'error',
  'no-healthy-instances': 'error',
  'circuit-open': 'error',
  'pool-overflow': 'error',
  'connect-timeout': 'timeout',
  'headers-timeout': 'timeout',
};

const TRIGGER_BY_STATUS: Readonly<Record<number, StaleTrigger>> = { 500: 'http_500', 502: 'http_502', 503: 'http_503', 504: 'http_504' };

/**
 * The failure an upstream's answer (`status`), or the gateway's own in its place (`errorClass`),
 * stands for, or undefined when it is none a stale answer may be sent for.
 */
export function staleTriggerOf(status: number, errorClass: string | undefined): StaleTrigger | undefined {
  return errorClass === undefined ? TRIGGER_BY_STATUS[status] : TRIGGER_BY_ERROR_CLASS[errorClass];
}

/** A Cache-Control directive's value as a number of seconds, true for one present without a value, undefined when absent. */
function directive(control: string, name: string): number | true | undefined {
  const match = new RegExp(`(?:^|,)\\s*${name}\\s*(?:=\\s*"?(\\d+)"?)?\\s*(?:,|$)`, 'i').exec(control);
  if (match === null) return undefined;
  return match[1] === undefined ? true : Number(match[1]);
}

/**
 * Whether a stored answer may go to a request in place of a failure its fetch met, or while another
 * request's fetch of it is under way (`updating`), `staleSeconds` past its freshness, by RFC 9111
 * §4.2.4 and RFC 5861: never when the answer forbids it (`must-revalidate`, `proxy-revalidate`,
 * `no-cache`, or its own `s-maxage`, which implies `proxy-revalidate` for a shared cache, RFC 9111
 * §5.2.2.10, past what the answer grants itself by the directive below), nor when the request does
 * not wish for a stale answer (`max-age` or `min-fresh` without `max-stale`, §5.2.1.1) or bounds its staleness
 * (`max-stale=N`); else when `useStale` lists the trigger, within `maxStale`, or the answer's own
 * `stale-if-error=N` (for a failure) or `stale-while-revalidate=N` (for `updating`) covers it.
 */
export function mayServeStale(settings: CacheStaleSettings, trigger: StaleTrigger, found: CachedAnswer, request: IncomingHttpHeaders): boolean {
  const stored = String(found.headers['cache-control'] ?? '');
  if (directive(stored, 'must-revalidate') !== undefined || directive(stored, 'proxy-revalidate') !== undefined || /(?:^|,)\s*no-cache\b/i.test(stored)) return false;
  const granted = settings.answerDirectives ? directive(stored, trigger === 'updating' ? 'stale-while-revalidate' : 'stale-if-error') : undefined;
  // `s-maxage` forbids a stale answer (proxy-revalidate) but for what the answer grants itself:
  // `useStale` may not stretch a grant of N seconds to its own `maxStale`.
  const onlyGranted = directive(stored, 's-maxage') !== undefined;
  if (onlyGranted && typeof granted !== 'number') return false;
  const staleSeconds = Math.max(0, found.policy.age() - found.policy.maxAge());
  const asked = request['cache-control'] ?? '';
  const maxStale = directive(asked, 'max-stale');
  if (maxStale === undefined && (directive(asked, 'max-age') !== undefined || directive(asked, 'min-fresh') !== undefined)) return false;
  if (typeof maxStale === 'number' && staleSeconds > maxStale) return false;
  if (!onlyGranted && settings.on.includes(trigger) && staleSeconds * 1_000 <= settings.maxStaleMs) return true;
  return typeof granted === 'number' && staleSeconds <= granted;
}

/**
 * The stale answer a request gets: the stored one with `Age`, its conditionals and `Range` judged on
 * it as on a hit (`answerFromMemory`: a 412 for an `If-Match` or `If-Unmodified-Since` it fails, a
 * 304, a part where `If-Range` holds, else the whole), as nginx's not_modified and range filters
 * judge a stale answer. Also for a fetch that stores nothing (a `HEAD` not converted, past a lock's
 * timeout), which passed the client's `If-Match` on: the failure it met judged none of it (RFC 9110
 * §13.2.1: preconditions go unjudged where the answer would be no 2xx or 412 without them), and the
 * stored answer judges it as it would on a hit (nginx never passes them on from a cached location).
 */
export function staleAnswer(method: string | undefined, found: CachedAnswer, sent: IncomingHttpHeaders): HeldAnswer {
  const age = String(Math.floor(found.policy.age()));
  return answerFromMemory(method, sent, found.status, { ...found.headers, age }, found.body);
}
