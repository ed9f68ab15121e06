import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import CachePolicy from 'http-cache-semantics';
import type { CacheSettings } from '../../config/types.ts';
import type { GatewayContext } from '../../context.ts';
import { withoutRevalidatingHeaders } from './cache-conditional.ts';
import type { CachedAnswer } from './cache-store.ts';

// RFC 9111 as this gateway's cache reads it: what a request asks of the cache, which answers it
// stores, and how a stale one is revalidated, beside the cache middleware that acts on them.

/** http-cache-semantics as a shared cache (a gateway's answers go to many users) that grants no heuristic freshness: only what the headers say, or `defaultTtl`. */
const POLICY_OPTIONS = { shared: true, cacheHeuristic: 0, immutableMinTimeToLive: 0 } as const;

/** A request's `Cache-Control: no-store` / `no-cache` (or `Pragma: no-cache`): the client wants an answer from the origin (RFC 9111 §5.2.1). */
export function bypasses(headers: IncomingHttpHeaders): boolean {
  const control = headers['cache-control'];
  if (control !== undefined && /(?:^|,)\s*no-(?:cache|store)\b/i.test(control)) return true;
  const pragma = headers.pragma;
  return control === undefined && pragma !== undefined && /no-cache/i.test(pragma);
}

/**
 * The request headers an answer's `Vary` is matched against: those the upstream gets as they stand
 * at the cache (after the middleware before it), not the client's, since the upstream varies by what
 * it was sent: a `forwardAuth`'s `X-Auth-User`, a `jwtAuth` claim header, never a client's own of
 * those names. The client's Host (lower-cased, hosts being case-insensitive, RFC 9110 §4.2.3, as in
 * the key) and `Authorization` (a request with one is not stored for others, RFC 9111 §3.5, even
 * when a middleware kept it from the upstream) stay.
 */
export function varyHeaders(context: GatewayContext): IncomingHttpHeaders {
  const { host, authorization } = context.request.headers;
  const headers: IncomingHttpHeaders = { ...context.upstream.headers };
  if (host === undefined) delete headers.host;
  else headers.host = host.toLowerCase();
  if (authorization !== undefined) headers.authorization = authorization;
  return headers;
}

/** The request as http-cache-semantics sees it: always GET, since a HEAD is answered from (and fills nothing but) the GET's entry. */
export function policyRequest(context: GatewayContext, headers: IncomingHttpHeaders): CachePolicy.Request {
  return { method: 'GET', url: context.upstream.path, headers: headers as CachePolicy.Headers };
}

/**
 * The rule of a `cache` with `settings` for what it stores: the policy of an answer that may be
 * stored, or undefined, by http-cache-semantics' rules, then this gateway's own (statuses,
 * Set-Cookie, Vary: *, a lifetime, `maxEntryBytes` by its announced length).
 */
export function storablePolicyOf(settings: CacheSettings): (context: GatewayContext, sent: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders) => CachePolicy | undefined {
  const statuses = new Set(settings.statuses);
  return (context, sent, status, headers) => {
    if (!statuses.has(status) || headers['set-cookie'] !== undefined || varyAll(headers)) return undefined;
    const length = Number(headers['content-length']);
    if (length > settings.maxEntryBytes) return undefined;
    const request = policyRequest(context, sent);
    let policy = new CachePolicy(request, { status, headers: headers as CachePolicy.Headers }, POLICY_OPTIONS);
    // http-cache-semantics reuses a must-revalidate answer only after revalidating it, even while fresh: every request would go upstream.
    if (!policy.storable() || /(?:^|,)\s*must-revalidate\b/i.test(String(headers['cache-control'] ?? ''))) return undefined;
    if (policy.timeToLive() <= 0 && settings.defaultTtlMs !== undefined && !hasExplicitFreshness(headers)) {
      // `defaultTtl` stands in for the freshness the headers left out, as if the upstream had sent it as s-maxage.
      const control = headers['cache-control'] === undefined ? '' : `${String(headers['cache-control'])}, `;
      const withTtl = { ...headers, 'cache-control': `${control}s-maxage=${Math.floor(settings.defaultTtlMs / 1_000)}` };
      policy = new CachePolicy(request, { status, headers: withTtl as CachePolicy.Headers }, POLICY_OPTIONS);
    }
    return policy.storable() && policy.timeToLive() > 0 ? policy : undefined;
  };
}

/**
 * Asks the upstream whether a stale stored answer still stands: its validators go with the request
 * (`If-None-Match`, `If-Modified-Since`: http-cache-semantics' `revalidationHeaders`), in place of
 * any the client sent (`asksAsCacheWould` chose to ask so); whether there were any. A stored answer
 * without one leaves the request as it was.
 */
export function askRevalidation(context: GatewayContext, found: CachedAnswer, sent: IncomingHttpHeaders): boolean {
  const validators = found.policy.revalidationHeaders(policyRequest(context, withoutRevalidatingHeaders(sent)));
  const etag = validators['if-none-match'];
  const since = validators['if-modified-since'];
  if (typeof etag !== 'string' && typeof since !== 'string') return false;
  const headers = context.upstream.headers;
  delete headers['if-none-match'];
  delete headers['if-modified-since'];
  if (typeof etag === 'string') headers['if-none-match'] = etag;
  if (typeof since === 'string') headers['if-modified-since'] = since;
  return true;
}

function varyAll(headers: OutgoingHttpHeaders): boolean {
  const vary = headers.vary;
  return vary !== undefined && String(vary).split(',').some((name) => name.trim() === '*');
}

/** Whether an answer states its own freshness (RFC 9111 §4.2.1): max-age, s-maxage or Expires. */
function hasExplicitFreshness(headers: OutgoingHttpHeaders): boolean {
  return headers.expires !== undefined || /(?:^|,)\s*(?:s-)?max-age\s*=/i.test(String(headers['cache-control'] ?? ''));
}
