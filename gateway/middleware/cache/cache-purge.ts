import { Counter } from 'prom-client';
import { metricsRegistry } from '../../../src/metrics.ts';
import { cacheKeyParts } from './cache-key.ts';
import { cachesInForce } from './cache-metrics.ts';

/** The fields a purge request may hold; any other is refused, so that a misspelt one never widens a purge. */
export const CACHE_PURGE_FIELDS: readonly string[] = ['middleware', 'host', 'path', 'prefix', 'all'];

/**
 * Which stored answers a purge drops (nginx's `proxy_cache_purge`, Varnish's ban): every variant
 * (each `Vary` value, consumer, entry point, route and scheme) of the resources it selects. Exactly
 * one of `path`, `prefix` or `all: true` says which resources, so that an empty or misspelt request
 * never empties a cache; `middleware` and `host` narrow it.
 */
export interface CachePurgeSelector {
  /** The `cache` middleware whose answers go; absent: every one. */
  readonly middleware?: string;
  /** The request's Host, case-insensitive; without a port it stands for every port. */
  readonly host?: string;
  /** The exact path and query, as the upstream gets them (normalised, after the route's rewrites). */
  readonly path?: string;
  /** A start of path and query, as `path`. */
  readonly prefix?: string;
  /** Every resource (of `host`, when given). */
  readonly all?: true;
}

/** Answers dropped by a purge, per middleware: summed over a gateway's workers by `/metrics`. */
export const cachePurgedTotal = new Counter({
  name: 'switchboard_cache_purged_total',
  help: 'Answers (each Vary variant counts) a cache middleware dropped on a purge through the admin API.',
  labelNames: ['middleware'] as const,
  registers: [metricsRegistry],
});

/** `value` as a purge selector, or the reason it is none (for a 400): checked field by field, also when it came over IPC. */
export function decodeCachePurgeSelector(value: unknown): CachePurgeSelector | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'the body must be a JSON object such as {"path": "/products/42"}';
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((field) => !CACHE_PURGE_FIELDS.includes(field));
  if (unknown.length > 0) return `unknown field ${unknown.map((field) => JSON.stringify(field)).join(', ')}: a purge takes ${CACHE_PURGE_FIELDS.join(', ')}`;
  const { middleware, host, path, prefix, all } = fields;
  if (middleware !== undefined && (typeof middleware !== 'string' || middleware === '')) return '"middleware" must be the name of a cache middleware';
  if (host !== undefined && (typeof host !== 'string' || !/^[^\s/?#@]+$/.test(host))) return '"host" must be a host name or address, with an optional port (example.com, example.com:8080, [::1]:8080)';
  for (const [field, given] of [['path', path], ['prefix', prefix]] as const) {
    if (given !== undefined && (typeof given !== 'string' || !given.startsWith('/'))) return `"${field}" must be a path starting with / (with its query, if any, as the upstream gets it)`;
  }
  if (all !== undefined && all !== true) return '"all" takes only true';
  const chosen = [path, prefix, all].filter((given) => given !== undefined).length;
  if (chosen !== 1) return `${chosen === 0 ? 'say which answers to drop' : 'give only one'}: "path" (one URI), "prefix" (URIs starting with it) or "all": true`;
  return {
    ...(middleware === undefined ? {} : { middleware: middleware as string }),
    ...(host === undefined ? {} : { host: (host as string).toLowerCase() }),
    ...(path === undefined ? {} : { path: path as string }),
    ...(prefix === undefined ? {} : { prefix: prefix as string }),
    ...(all === undefined ? {} : { all: true as const }),
  };
}

/** Drops what `selector` selects from this process's caches in force; the number of answers dropped. */
export function purgeLiveCaches(selector: CachePurgeSelector): number {
  const selects = primarySelector(selector);
  let purged = 0;
  for (const [name, cache] of cachesInForce()) {
    if (selector.middleware !== undefined && selector.middleware !== name) continue;
    const dropped = cache.purge(selects);
    cachePurgedTotal.labels(name).inc(dropped);
    purged += dropped;
  }
  return purged;
}

/**
 * Whether a key of `ResponseCache` (a primary key made by `cacheKey`, maybe followed by NUL and a
 * variant) is one `selector` selects. A key that does not hold the selector's path or host as JSON
 * text is passed over without being parsed: a purge of one URI walks every key, and most are others.
 */
function primarySelector(selector: CachePurgeSelector): (key: string) => boolean {
  const host = selector.host;
  const anyPort = host !== undefined && !hasPort(host);
  // The opening quote and the text, escaped as in the key: a string element equal to the value, or starting with it, holds it.
  const needle = selector.path !== undefined ? `,${JSON.stringify(selector.path)},` : selector.prefix !== undefined ? `,${JSON.stringify(selector.prefix).slice(0, -1)}` : host !== undefined ? `,${JSON.stringify(host).slice(0, -1)}` : undefined;
  if (needle === undefined) return () => true;
  return (key) => {
    if (!key.includes(needle)) return false;
    const cut = key.indexOf('\u0000');
    const parts = cacheKeyParts(cut === -1 ? key : key.slice(0, cut));
    // Not a key this gateway makes (only a purge of everything, without a host, takes it).
    if (parts === undefined) return false;
    if (host !== undefined && parts.host !== host && !(anyPort && withoutPort(parts.host) === host)) return false;
    if (selector.path !== undefined) return parts.path === selector.path;
    if (selector.prefix !== undefined) return parts.path.startsWith(selector.prefix);
    return true;
  };
}

function hasPort(host: string): boolean {
  return /^(?:\[[^\]]*\]|[^:]*):\d+$/.test(host);
}

function withoutPort(host: string): string {
  return hasPort(host) ? host.slice(0, host.lastIndexOf(':')) : host;
}
