import { CREDENTIAL_HEADER } from './credential-header.ts';

/** What a secret is replaced with wherever the admin API shows configuration. */
export const REDACTED = '[redacted]';

/** Keys whose string value is a secret wherever they sit: the Redis `password`, the admin `token`. */
const SECRET_KEYS = new Set(['password', 'token']);

/** Keys whose value maps header names to values: a header policy's `set`, a route's `headers` conditions, a fallback answer's `headers`. */
const HEADER_MAP_KEYS = new Set(['set', 'headers']);

/**
 * Keys whose list holds credential digests: a consumer's `keys` as written (`sha256:<hex>`) and its
 * `keyHashes` as resolved (an unsalted SHA-256 lets a short key be found by trying values), and its
 * `passwords` / `passwordHashes` (bcrypt is slow to guess, not impossible).
 */
const KEY_LIST_KEYS = new Set(['keys', 'keyHashes', 'passwords', 'passwordHashes']);

/**
 * The userinfo of `scheme://user:secret@host…`, up to the last `@` of the authority: ioredis reads
 * `redis://default:p@ss@host` that way, so a password may hold an `@` of its own.
 */
const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;
/** A `password` query parameter of a URL (ioredis reads `redis://host?password=…` as an option). */
const URL_PASSWORD_PARAM = /([?&]password=)[^&#]*/gi;

/** Whether `name` (any case) is a header whose values are credentials (`CREDENTIAL_HEADER`). */
export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADER.test(name.toLowerCase());
}

/**
 * A JSON-ready copy of configuration, resolved (`GatewayConfig` parts, Maps included) or as written
 * (a config store object), with every secret it can hold replaced by `REDACTED`: `password` and
 * `token` values, the password of a URL (`redis://:secret@…`, a `password=` parameter), the values
 * of credential headers (`isCredentialHeader`) wherever headers are set or matched, and consumers'
 * API key digests. Maps become objects and undefined becomes null, so every key shows. The one
 * rule of the admin API: every view of configuration goes through it, and `redactionMarkers`
 * finds its output in a write.
 */
export function redactSecrets(value: unknown): unknown {
  return walk(value, undefined, [], (text, kind) => (kind === 'url' ? redactUrl(text) : REDACTED));
}

/**
 * The places (`headers.authorization`, `keys[0]`) where `value`, about to be written, holds
 * `REDACTED` where `redactSecrets` puts it: an object read back from the admin API and sent again.
 * Empty when there is none.
 */
export function redactionMarkers(value: unknown): string[] {
  const places: string[] = [];
  walk(value, undefined, [], (text, kind, path) => {
    const marked = kind === 'url' ? urlPasswords(text).includes(REDACTED) : text === REDACTED;
    if (marked) places.push(placeOf(path));
    return text;
  });
  return places;
}

/** Where a secret's text sits: a whole value, or a URL whose password part is the secret. */
type SecretKind = 'whole' | 'url';

/** Walks `value` once, giving every secret's text to `secret` and keeping what it returns in the copy. */
function walk(value: unknown, key: string | undefined, path: readonly (string | number)[], secret: (text: string, kind: SecretKind, path: readonly (string | number)[]) => string): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([name, entry]) => [String(name), walk(entry, undefined, [...path, String(name)], secret)]));
  if (Array.isArray(value)) {
    const keyList = key !== undefined && KEY_LIST_KEYS.has(key);
    return value.map((entry, index) => (keyList && typeof entry === 'string' ? secret(entry, 'whole', [...path, index]) : walk(entry, undefined, [...path, index], secret)));
  }
  if (value === undefined) return null;
  if (typeof value === 'object' && value !== null) {
    const headers = key !== undefined && HEADER_MAP_KEYS.has(key);
    return Object.fromEntries(
      Object.entries(value).map(([name, entry]) => {
        const at = [...path, name];
        return [name, headers && typeof entry === 'string' && isCredentialHeader(name) ? secret(entry, 'whole', at) : walk(entry, name, at, secret)];
      }),
    );
  }
  if (typeof value === 'string') {
    if (key !== undefined && SECRET_KEYS.has(key)) return secret(value, 'whole', path);
    return value.includes('://') ? secret(value, 'url', path) : value;
  }
  return value;
}

/** `text` with a URL's password (the whole userinfo when it has no user part) and a `password` query parameter as `REDACTED`. */
function redactUrl(text: string): string {
  return text
    .replace(URL_USERINFO, (_match, scheme: string, userinfo: string) => `${scheme}${userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:` : ''}${REDACTED}@`)
    .replace(URL_PASSWORD_PARAM, `$1${REDACTED}`);
}

/**
 * The parts of a URL that `redactUrl` replaces: the userinfo's password (the whole userinfo when it
 * has no user part) and each `password` query parameter's value. A marker counts only there: the
 * URL as a whole may hold `[redacted]` elsewhere (`?q=[redacted]`, a path) as plain text.
 */
function urlPasswords(text: string): string[] {
  const userinfo = URL_USERINFO.exec(text)?.[2];
  const fromUserinfo = userinfo === undefined ? [] : [userinfo.includes(':') ? userinfo.slice(userinfo.indexOf(':') + 1) : userinfo];
  return [...fromUserinfo, ...Array.from(text.matchAll(URL_PASSWORD_PARAM), (match) => match[0].slice(match[1]!.length))];
}

/** `headers.authorization`, `keys[0]`: a path as the configuration file's key paths read. */
function placeOf(path: readonly (string | number)[]): string {
  return path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index === 0 ? part : `.${part}`)).join('');
}
