// Types of access control: consumers and the middleware kinds that authenticate and filter clients.
import type { KeyMaterial } from './access-files.ts';

/** A named identity (Kong's and APISIX's consumer): who a credential belongs to, and what it may do. */
export interface ConsumerConfig {
  readonly name: string;
  /** SHA-256 digests (hex, lower case) of the consumer's API keys; the keys themselves are never in the file. */
  readonly keyHashes: readonly string[];
  /** bcrypt hashes of the consumer's passwords (`$2b$`/`$2a$`), for `basicAuth` with the consumer's name as the user name. */
  readonly passwordHashes: readonly string[];
  /** JWTs whose `iss` (and `sub`, when set) match belong to this consumer. */
  readonly jwt: readonly { readonly issuer: string; readonly subject: string | undefined }[];
  readonly labels: Readonly<Record<string, string>>;
  /** The consumer's own bucket in a `rateLimit` keyed by `consumer`; undefined uses the middleware's. */
  readonly rateLimit: { readonly average: number; readonly periodMs: number; readonly burst: number } | undefined;
}

/** API keys (`keyAuth`): read from a header or a query parameter, matched against the consumers' key hashes. */
export interface KeyAuthSettings {
  /** Request header holding the key (lower case); undefined when only the query is read. */
  readonly header: string | undefined;
  /** Query parameter holding the key; undefined when only the header is read. */
  readonly query: string | undefined;
  /** Remove the key from what goes upstream (the access log never sees a query key either way). */
  readonly strip: boolean;
  readonly consumers: readonly ConsumerConfig[];
}

/** HTTP Basic authentication (`basicAuth`): a consumer's name and one of its passwords, checked against its bcrypt hashes. */
export interface BasicAuthSettings {
  /** The `realm` of the 401's challenge. */
  readonly realm: string;
  /** Remove the Authorization header from what goes upstream. */
  readonly strip: boolean;
  readonly consumers: readonly ConsumerConfig[];
}

/** Where a JWT is read from, in this order: the header (`Bearer <token>`), a cookie, a query parameter. */
export interface TokenSources {
  readonly header: string | undefined;
  readonly cookie: string | undefined;
  readonly query: string | undefined;
}

/** A JWKS endpoint: fetched at start, refreshed every `refreshMs` and, no more often than `cooldownMs`, on an unknown `kid`. */
export interface JwksSettings {
  readonly url: string;
  readonly refreshMs: number;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
}

/** JWT verification (`jwtAuth`) with jose. */
export interface JwtAuthSettings {
  /** Accepted `alg` values; anything else (and `none`) is refused before a key is looked at. */
  readonly algorithms: readonly string[];
  readonly secretFile: string | undefined;
  readonly publicKeyFiles: readonly string[];
  readonly jwks: JwksSettings | undefined;
  readonly issuer: readonly string[] | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockSkewMs: number;
  readonly from: TokenSources;
  /** Claim name → upstream header name. */
  readonly claimsToHeaders: Readonly<Record<string, string>>;
  readonly stripAuthorization: boolean;
  /** Refuse (403) a valid token that no consumer claims. */
  readonly consumerRequired: boolean;
  /** Verified tokens kept, each until it expires (at most `cacheTtlMs`). */
  readonly cacheSize: number;
  readonly cacheTtlMs: number;
  readonly consumers: readonly ConsumerConfig[];
  /** What the files held at load; undefined before `readAccessFiles`. */
  readonly keys: KeyMaterial | undefined;
}

/** An IP allow or deny list: CIDRs matched against the client address. */
export interface IpFilterSettings {
  readonly sourceRange: readonly string[];
  /**
   * 0: the client address of the trusted-proxy rule (`forwarding.trustedProxies`). N > 0: the N-th
   * X-Forwarded-For entry from the right (Traefik's `ipStrategy.depth`), read only from a trusted peer.
   */
  readonly depth: number;
  /** Copied from `forwarding.trustedProxies`, so the list knows whom to believe. */
  readonly trustedProxies: readonly string[];
}

/** Forward auth: the request's headers go to `address`; a 2xx lets the request on, anything else is the answer. */
export interface ForwardAuthSettings {
  readonly address: string;
  /** Headers of the auth service's 2xx answer copied onto the upstream request. */
  readonly authResponseHeaders: readonly string[];
  readonly timeoutMs: number;
}
