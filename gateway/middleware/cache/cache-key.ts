/** What a stored answer's primary key is made of: the request's resource as the cache sees it. */
export interface CacheKeyParts {
  readonly scheme: 'http' | 'https';
  /** The Host header, lower-cased (hosts are case-insensitive, RFC 9110 §4.2.3); empty when absent. */
  readonly host: string;
  /** Path and query as the upstream gets them: normalised, after the route's rewrites. */
  readonly path: string;
  readonly entryPoint: string;
  readonly route: string;
  /** The consumer an authentication middleware identified; undefined for anonymous requests. */
  readonly consumer: string | undefined;
}

/**
 * The primary key of `parts`, as a JSON array: a Host header, a route name or a consumer name may
 * hold any character (a space, a `/`), and JSON keeps every part apart and readable back
 * (`cacheKeyParts`), which a purge by host or path needs. JSON escapes control characters, so the
 * key never holds the NUL that parts a primary key from its variant in `ResponseCache`.
 */
export function cacheKey(parts: CacheKeyParts): string {
  return JSON.stringify([parts.scheme, parts.host, parts.path, parts.entryPoint, parts.route, parts.consumer ?? null]);
}

/** The parts of a key `cacheKey` made; undefined for any other string. */
export function cacheKeyParts(key: string): CacheKeyParts | undefined {
  let value: unknown;
  try {
    value = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 6) return undefined;
  const [scheme, host, path, entryPoint, route, consumer] = value as unknown[];
  if ((scheme !== 'http' && scheme !== 'https') || typeof host !== 'string' || typeof path !== 'string' || typeof entryPoint !== 'string' || typeof route !== 'string') return undefined;
  if (consumer !== null && typeof consumer !== 'string') return undefined;
  return { scheme, host, path, entryPoint, route, consumer: consumer ?? undefined };
}
