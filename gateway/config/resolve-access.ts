import type { ConsumersInput } from './schema-access.ts';
import type { MiddlewareInput } from './schema-middleware.ts';
import type { ConsumerConfig, MiddlewareConfig } from './types.ts';

/** A rate limit's period when none is written (Traefik's default). */
export const DEFAULT_RATE_LIMIT_PERIOD_MS = 1_000;
/** With `key: client-ip`, the IPv6 network counted as one client: a /64 is what a provider hands one customer (RFC 6177). */
export const DEFAULT_RATE_LIMIT_IPV6_SUBNET = 64;
/** The leeway on `exp` and `nbf` when `clockSkew` is not written. */
export const DEFAULT_JWT_CLOCK_SKEW_MS = 30_000;
/** Verified tokens kept per `jwtAuth` when `cacheSize` is not written. */
export const DEFAULT_JWT_CACHE_SIZE = 10_000;
/** The longest a verified token is trusted without checking it again, when `cacheTtl` is not written. */
export const DEFAULT_JWT_CACHE_TTL_MS = 5 * 60_000;
/** JWKS defaults: refresh every 5 min, at most one extra fetch per 30 s on an unknown `kid`, 5 s per fetch. */
export const DEFAULT_JWKS = { refreshMs: 5 * 60_000, cooldownMs: 30_000, timeoutMs: 5_000 } as const;
/** How long a forward-auth service may take to answer when `timeout` is not written. */
export const DEFAULT_FORWARD_AUTH_TIMEOUT_MS = 5_000;

/** `consumers` in file order with their defaults. */
export function resolveConsumers(input: ConsumersInput | undefined): ConsumerConfig[] {
  return Object.entries(input ?? {}).map(([name, consumer]) => ({
    name,
    keyHashes: consumer.keys ?? [],
    passwordHashes: consumer.passwords ?? [],
    jwt: (consumer.jwt ?? []).map((match) => ({ issuer: match.issuer, subject: match.subject })),
    labels: consumer.labels ?? {},
    rateLimit: consumer.rateLimit && {
      average: consumer.rateLimit.average,
      periodMs: consumer.rateLimit.period ?? DEFAULT_RATE_LIMIT_PERIOD_MS,
      burst: consumer.rateLimit.burst ?? Math.max(1, Math.ceil(consumer.rateLimit.average)),
    },
  }));
}

/**
 * One access-control `middlewares` entry with its defaults, or undefined when the entry is of
 * another kind. Authentication kinds carry the consumers they match against, and IP lists the
 * trusted proxies, so that a change of either rebuilds them (and only them) on reload.
 */
export function resolveAccessMiddleware(input: MiddlewareInput, consumers: readonly ConsumerConfig[], trustedProxies: readonly string[]): MiddlewareConfig | undefined {
  if (input.keyAuth) {
    const { header, query, strip } = input.keyAuth;
    return {
      kind: 'keyAuth',
      settings: { header: header ?? (query === undefined ? 'x-api-key' : undefined), query, strip: strip ?? true, consumers: consumers.filter((consumer) => consumer.keyHashes.length > 0) },
    };
  }
  if (input.basicAuth) {
    const { realm, strip } = input.basicAuth;
    return { kind: 'basicAuth', settings: { realm: realm ?? 'switchboard', strip: strip ?? true, consumers: consumers.filter((consumer) => consumer.passwordHashes.length > 0) } };
  }
  if (input.jwtAuth) {
    const jwt = input.jwtAuth;
    return {
      kind: 'jwtAuth',
      settings: {
        algorithms: jwt.algorithms,
        secretFile: jwt.secretFile,
        publicKeyFiles: jwt.publicKeyFiles ?? [],
        jwks: jwt.jwks && {
          url: jwt.jwks.url,
          refreshMs: jwt.jwks.refresh ?? DEFAULT_JWKS.refreshMs,
          cooldownMs: jwt.jwks.cooldown ?? DEFAULT_JWKS.cooldownMs,
          timeoutMs: jwt.jwks.timeout ?? DEFAULT_JWKS.timeoutMs,
        },
        issuer: jwt.issuer,
        audience: jwt.audience,
        clockSkewMs: jwt.clockSkew ?? DEFAULT_JWT_CLOCK_SKEW_MS,
        from: jwt.from
          ? { header: jwt.from.header, cookie: jwt.from.cookie, query: jwt.from.query }
          : { header: 'authorization', cookie: undefined, query: undefined },
        claimsToHeaders: jwt.claimsToHeaders ?? {},
        stripAuthorization: jwt.stripAuthorization ?? false,
        consumerRequired: jwt.consumerRequired ?? false,
        cacheSize: jwt.cacheSize ?? DEFAULT_JWT_CACHE_SIZE,
        cacheTtlMs: jwt.cacheTtl ?? DEFAULT_JWT_CACHE_TTL_MS,
        consumers: consumers.filter((consumer) => consumer.jwt.length > 0),
        keys: undefined,
      },
    };
  }
  if (input.ipAllowList || input.ipDenyList) {
    const list = (input.ipAllowList ?? input.ipDenyList)!;
    return { kind: input.ipAllowList ? 'ipAllowList' : 'ipDenyList', settings: { sourceRange: list.sourceRange, depth: list.depth ?? 0, trustedProxies } };
  }
  if (input.forwardAuth) {
    const { address, authResponseHeaders, timeout } = input.forwardAuth;
    return { kind: 'forwardAuth', settings: { address, authResponseHeaders: authResponseHeaders ?? [], timeoutMs: timeout ?? DEFAULT_FORWARD_AUTH_TIMEOUT_MS } };
  }
  return undefined;
}
