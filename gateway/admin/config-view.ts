import type { GatewayConfig } from '../config/index.ts';
import { routesInMatchOrder } from '../router/index.ts';
import { CREDENTIAL_HEADER } from '../config/credential-header.ts';

/** What a secret is replaced with in `GET /api/config`. */
export const REDACTED = '[redacted]';

/**
 * The body of `GET /api/config`: the resolved configuration (every default applied, durations in
 * milliseconds) as JSON, with secrets replaced by `REDACTED`: the admin token, every `password`
 * (the Redis one, also where a `policy: redis` rate limit carries a copy of the section), the
 * password of a URL (`redis://:secret@…`), the tracing exporter's header values (a hosted
 * collector's API key) and the values of headers that carry credentials wherever headers are set
 * or matched (a `headers` middleware or a route setting `Authorization` upstream). With a config store, `store` holds its URL, the revision in force and the
 * objects it refused (null without one).
 */
export function configView(config: GatewayConfig, store?: unknown): unknown {
  const admin = config.admin && { listen: config.admin.listen, token: config.admin.token === undefined ? null : REDACTED };
  const tracing = config.tracing && { ...config.tracing, headers: Object.fromEntries(Object.keys(config.tracing.headers).map((name) => [name, REDACTED])) };
  return toJson({ ...config, admin: admin ?? false, tracing, store });
}

/** The body of `GET /api/routes`: every route with its place in matching order (`order`, from 0) and its settings. */
export function routesView(config: GatewayConfig): { routes: unknown[] } {
  return { routes: routesInMatchOrder(config.routes).map((route, order) => toJson({ order, ...route })) };
}

/**
 * The userinfo of `scheme://user:secret@host…`, up to the last `@` of the authority: ioredis reads
 * `redis://default:p@ss@host` that way, so a password may hold an `@` of its own.
 */
const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;
/** A `password` query parameter of a URL (ioredis reads `redis://host?password=…` as an option). */
const URL_PASSWORD_PARAM = /([?&]password=)[^&#]*/gi;

/** `text` with a URL's password (the whole userinfo when it has no user part) and a `password` query parameter as `REDACTED`. */
function redactUrl(text: string): string {
  if (!text.includes('://')) return text;
  return text
    .replace(URL_USERINFO, (_match, scheme: string, userinfo: string) => `${scheme}${userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:` : ''}${REDACTED}@`)
    .replace(URL_PASSWORD_PARAM, `$1${REDACTED}`);
}

/** Keys whose value maps header names to values: a header policy's `set`, a route's `headers` conditions, a fallback answer's `headers`. */
const HEADER_MAP_KEYS = new Set(['set', 'headers']);

/** A JSON-ready copy: Maps become objects, undefined becomes null, so every key shows; passwords and credential header values redacted wherever they sit. */
function toJson(value: unknown, key?: string): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([name, entry]) => [String(name), toJson(entry)]));
  if (Array.isArray(value)) return value.map((entry) => toJson(entry));
  if (value === undefined) return null;
  if (typeof value === 'object' && value !== null) {
    const headers = key !== undefined && HEADER_MAP_KEYS.has(key);
    return Object.fromEntries(Object.entries(value).map(([name, entry]) => [name, headers && typeof entry === 'string' && CREDENTIAL_HEADER.test(name.toLowerCase()) ? REDACTED : toJson(entry, name)]));
  }
  if (typeof value === 'string') return key === 'password' ? REDACTED : redactUrl(value);
  return value;
}
