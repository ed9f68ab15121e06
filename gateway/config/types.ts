import type { BalancerConfig } from '../../src/balance/balancer-factory.ts';
import type { SlowStartOptions } from '../../src/balance/slow-start.ts';
import type { InstanceProtocol } from '../../src/discovery/instance.ts';
import type { StatusRange } from '../../src/health/probe-http.ts';
import type { RegistryLocation } from '../../src/registry-url.ts';
import type { ConnectionCredentials } from '../../src/connection-credentials.ts';
import type { StoreLocation } from '../config-store/store-layout.ts';
import type { RETRY_CONDITIONS, UPSTREAM_PROTOCOLS } from './schema-service.ts';
import type { RespondFileBody } from './respond-files.ts';
import type { UpstreamTlsFiles } from './upstream-tls-files.ts';
import type { BasicAuthSettings, ConsumerConfig, ForwardAuthSettings, IpFilterSettings, JwtAuthSettings, KeyAuthSettings } from './types-access.ts';
import type { ListenAddress } from './schema-values.ts';
import type { RedisSettings } from './types-redis.ts';

export type { RedisNode, RedisSettings, RedisTarget } from './types-redis.ts';
import type { CircuitBreakerSettings, ConcurrencyLimits, RetryBudgetSettings } from './types-breaker.ts';

export type { ListenAddress };
export type { BasicAuthSettings, ConsumerConfig, ForwardAuthSettings, IpFilterSettings, JwksSettings, JwtAuthSettings, KeyAuthSettings, TokenSources } from './types-access.ts';

/** The gateway configuration with every default applied; durations are in milliseconds. Never mutated once parsed. */
export interface GatewayConfig {
  /** The first entry point's address (the whole of the old `listen:`); kept for views and logs. */
  readonly listen: ListenAddress;
  /** Every client-facing listener, in file order; `listen:` alone is one http entry point named `web`. */
  readonly entryPoints: readonly EntryPointConfig[];
  /** The admin listener; undefined when `admin: false`. */
  readonly admin: AdminSettings | undefined;
  readonly registries: readonly RegistryConfig[];
  /** Where routes, services, middleware and consumers shared by several gateways are kept; undefined for the file alone. */
  readonly configStore: ConfigStoreSettings | undefined;
  /** How this gateway registers itself among its peers in the config store (read at start-up). */
  readonly peers: PeerSettings;
  /** Settings of every service not declared in `services`. */
  readonly defaults: ServiceSettings;
  /** Declared services, each merged over `defaults`. */
  readonly services: ReadonlyMap<string, ServiceSettings>;
  /** In file order; the router orders them by specificity. */
  readonly routes: readonly RouteConfig[];
  /** Named middleware by name, declared once and referenced by routes (`RouteConfig.middlewares`). */
  readonly middlewares: ReadonlyMap<string, MiddlewareConfig>;
  /** Named identities with their credentials, in file order. */
  readonly consumers: readonly ConsumerConfig[];
  /** Named certificates served by SNI beside the entry points' own (`certificates:`), in name order. */
  readonly certificates: readonly NamedCertificate[];
  readonly forwarding: ForwardingSettings;
  readonly accessLog: boolean;
  /** Whether TRACE requests are forwarded (`trace-method.ts`); false (the default): refused with 405. */
  readonly forwardTrace: boolean;
  /** OpenTelemetry tracing; undefined when off (the default). */
  readonly tracing: TracingSettings | undefined;
  readonly paths: PathSettings;
  readonly limits: ServerLimits;
  readonly shutdown: ShutdownSettings;
  /**
   * Processes serving the entry points: 1 (the default) is one process doing everything; more (or
   * `auto`, the available parallelism) starts a primary that owns registries, health checks and the
   * admin listener, and that many workers that own the entry points. Read at start-up only.
   */
  readonly workers: number | 'auto';
  /** With workers, how long one may stay silent (its event loop blocked) before the primary kills and replaces it; 0 when off. Applies on reload. */
  readonly workerHeartbeatTimeoutMs: number;
  /** Post-outage removal protection of every service; false when off. */
  readonly removalProtection: RemovalProtectionSettings | false;
  /**
   * How long a service no registry or list names any more, with no instance left and named nowhere
   * in this configuration, is kept before it is forgotten (`DiscoveryAggregator.configureForgetting`);
   * false: never.
   */
  readonly forgetServicesAfterMs: number | false;
  /** The shared Redis (`redis:`); undefined when the file has none. */
  readonly redis: RedisSettings | undefined;
}

/** Where the config store is and how this gateway reads it. */
export type ConfigStoreSettings = StoreLocation & {
  /** The last-known-good snapshot file; undefined: `<config file>.store-snapshot.json`. */
  readonly snapshotPath: string | undefined;
  /** Deadline of each store read, and how long a start waits for the store before using the snapshot. */
  readonly timeoutMs: number;
  /** TLS files of an etcd store, as written. */
  readonly tls?: EtcdTlsFiles | undefined;
  /** User/password authentication of an etcd store, as written. */
  readonly auth?: EtcdAuthFiles | undefined;
  /** What `tls` and `auth` name, read at load; undefined when neither is given or files are not read. */
  readonly credentials?: ConnectionCredentials | undefined;
};
/** This gateway as a peer in the config store. */
export interface PeerSettings {
  /** Its key under `<root>/peers/`; `<hostname>-<pid>` when undefined. */
  readonly id: string | undefined;
  /** Lease TTL (etcd) or session timeout (ZooKeeper): a gateway that dies leaves the list within about this. */
  readonly ttlMs: number;
  /** A peer whose applied revision has been behind the newest for longer than this shows `lagging`. */
  readonly lagAfterMs: number;
}

/** OpenTelemetry tracing: spans exported over OTLP/HTTP (JSON), batched, with a bounded queue. */
export interface TracingSettings {
  /** The OTLP/HTTP traces URL (`http://collector:4318/v1/traces`). */
  readonly endpoint: string;
  /** Share of new traces recorded, 0 to 1; a request that arrives with a sampled parent follows its parent's decision. */
  readonly sampleRatio: number;
  /** `service.name` of the spans. */
  readonly serviceName: string;
  /** Sent with every export (an API key of a hosted collector). */
  readonly headers: Readonly<Record<string, string>>;
  /** Finished spans waiting for export; beyond it new spans are dropped (and counted). */
  readonly maxQueueSize: number;
  readonly maxBatchSize: number;
  readonly flushIntervalMs: number;
  readonly exportTimeoutMs: number;
}

/** One client-facing listener (Traefik's entry point). */
export interface EntryPointConfig {
  readonly name: string;
  readonly listen: ListenAddress;
  readonly protocol: 'http' | 'https' | 'tcp';
  /** http only: HTTP/2 with prior knowledge accepted beside HTTP/1.1 on the same port. */
  readonly h2c: boolean;
  /** https only: offer `h2` through ALPN (HTTP/1.1 is always accepted). */
  readonly http2: boolean;
  /** https, and tcp when it terminates TLS. */
  readonly tls: EntryPointTls | undefined;
  /** tcp only: TLS passed through, routed by the ClientHello's server name (`sni`); never with `tls`. */
  readonly passthrough: boolean;
  /** Names from `middlewares:` run before routing, in order. */
  readonly middlewares: readonly string[];
  /** tcp only: where the bytes go. */
  readonly tcp?: TcpEntryPointSettings;
}

/** A tcp entry point's forwarding: one service (or one per TLS server name), byte for byte. */
export interface TcpEntryPointSettings {
  /**
   * The service connections go to (those whose server name matches no `sni` entry, with `sni`);
   * undefined with `sni` alone, where such connections are refused.
   */
  readonly service: string | undefined;
  /** Service by TLS server name (lower case; `*.example.com` matches one label), with `tls` or `passthrough`. */
  readonly sni: ReadonlyMap<string, string>;
  /** PROXY protocol version sent upstream; overrides the service's `proxyProtocol`. */
  readonly proxyProtocol: ProxyProtocolVersion | undefined;
  /** A connection with no byte either way for this long is closed; 0 never. */
  readonly idleTimeoutMs: number;
}

/** PROXY protocol v1 (text) or v2 (binary), as HAProxy specifies it. */
export type ProxyProtocolVersion = 1 | 2;

/** Certificates of an https entry point; file paths are absolute (relative ones resolved against the config file's folder). */
export interface EntryPointTls {
  /** Each served for the DNS names in its SAN (its CN when it has no SAN), chosen by SNI. */
  readonly certificates: readonly CertificateFiles[];
  /** Served for unknown names and clients without SNI; the first certificate when not set. */
  readonly defaultCertificate: CertificateFiles | undefined;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3' | undefined;
  /** OpenSSL cipher list (`tls.ciphers`), checked by OpenSSL at load; undefined: Node's default list. */
  readonly ciphers: string | undefined;
  /** Client certificates asked for (`tls.clientAuth`); undefined: none. */
  readonly clientAuth: ClientAuthSettings | undefined;
}

/** Client-certificate verification at a TLS entry point; `caFile` is absolute. */
export interface ClientAuthSettings {
  /** PEM bundle of the CAs a client certificate must chain to; watched and reloaded like the certificates. */
  readonly caFile: string;
  /** `require`: no HTTP without a certificate the CAs vouch for; `optional`: asked for, verified when sent, the request passes. */
  readonly mode: 'require' | 'optional';
}

/**
 * A named certificate (`certificates.<name>`, from the file or the config store), served by SNI on
 * the TLS entry points it names (all of them when `entryPoints` is undefined), after each entry
 * point's own certificates. Paths are absolute.
 */
export interface NamedCertificate extends CertificateFiles {
  readonly name: string;
  readonly entryPoints: readonly string[] | undefined;
}

/** A PEM certificate (chain) and its private key, as file paths. */
export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A post-outage removal of more than `thresholdPercent` of a service is held for `holdMs` (see `RemovalProtection`). */
export interface RemovalProtectionSettings {
  readonly thresholdPercent: number;
  readonly holdMs: number;
}

/** The admin listener: where it listens, and the bearer token its API requires (none: no check, loopback only). */
export interface AdminSettings {
  readonly listen: ListenAddress;
  /** A secret: the admin API redacts it from `/api/config`. */
  readonly token: string | undefined;
}

/** One registry as written and as parsed by `parseRegistryUrl`. */
export interface RegistryConfig {
  readonly url: string;
  readonly location: RegistryLocation;
  /** TLS files of an etcd registry, as written. */
  readonly tls?: EtcdTlsFiles | undefined;
  /** User/password authentication of an etcd registry, as written. */
  readonly auth?: EtcdAuthFiles | undefined;
  /** The snapshot file as written: a path, or false for none; `<config file>.registry-snapshot.<registry>.json` when absent. */
  readonly snapshot?: string | false | undefined;
  /**
   * The file the registry's last known instance sets are kept in (absolute), served when the
   * registry cannot be listed at start; undefined for none (`snapshot: false`, a `file:` registry).
   */
  readonly snapshotPath?: string | undefined;
  /** What `tls` and `auth` name, read at load (`readRegistryCredentials`); undefined when neither is given or files are not read. */
  readonly credentials?: ConnectionCredentials | undefined;
}

/** An etcd registry's or store's `tls` block: paths, relative to the configuration file's folder. */
export interface EtcdTlsFiles {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

/** An etcd registry's or store's `auth` block: the user and the file holding its password. */
export interface EtcdAuthFiles {
  readonly username: string;
  readonly passwordFile: string;
}

/** A failure the proxy may retry on another instance; see `retryConditionOf`. */
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];

/** An upstream protocol a service may default its instances to. */
export type UpstreamProtocol = (typeof UPSTREAM_PROTOCOLS)[number];

/** TLS towards the upstreams of a service (`https`, `h2`, `grpcs`), for traffic and health checks alike. */
export interface UpstreamTlsSettings {
  /** Trusted CAs; undefined: the system roots. */
  readonly caFile: string | undefined;
  /** SNI and the name verified; undefined: the instance host (no SNI for an IP). */
  readonly serverName: string | undefined;
  readonly verify: boolean;
  /** Client certificate and key for mutual TLS; both or neither. */
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  /** What the files held when the configuration was loaded; undefined before `readUpstreamTlsFiles`. */
  readonly files: UpstreamTlsFiles | undefined;
}

/** Everything the gateway needs to balance, check and call one service. */
export interface ServiceSettings {
  /** The protocol of instances whose registry entry names none (the registry wins when it does). */
  readonly protocol: UpstreamProtocol;
  readonly tls: UpstreamTlsSettings;
  readonly balancer: BalancerConfig;
  /** Envoy's slow start for instances that join later; `false` when off. */
  readonly slowStart: SlowStartOptions | false;
  readonly healthCheck: HealthCheckSettings | false;
  readonly outlierDetection: OutlierDetectionSettings | false;
  readonly panicThresholdPercent: number;
  readonly removalGraceMs: number;
  readonly timeouts: UpstreamTimeouts;
  readonly retries: RetryPolicy;
  /** The service's circuit breaker; false when off (the default). */
  readonly circuitBreaker: CircuitBreakerSettings | false;
  /** Envoy-style caps on the service's connections, pending and in-flight requests and retries. */
  readonly concurrency: ConcurrencyLimits;
  /** How many retries the service's recent requests allow; false when off. */
  readonly retryBudget: RetryBudgetSettings | false;
  /** Static instances from the file, served beside whatever the registries list. */
  readonly instances: readonly StaticInstance[];
  /** PROXY protocol header sent before the client's bytes by tcp entry points; false when off. */
  readonly proxyProtocol: ProxyProtocolVersion | false;
  /** Sticky sessions by cookie (Traefik's `sticky.cookie`, HAProxy's `cookie … insert`); false when off. */
  readonly sticky: StickySettings | false;
}

/** Sticky sessions of a service: the cookie that names the instance a client sticks to. */
export interface StickySettings {
  /** Its `name` undefined: the service's own default name (`upstreamPolicy` resolves it). */
  readonly cookie: Omit<StickyCookie, 'name'> & { readonly name: string | undefined };
}

/** The sticky cookie's name and attributes, as `Set-Cookie` writes them. */
export interface StickyCookie {
  readonly name: string;
  readonly path: string;
  /** Max-Age in whole seconds; undefined: a session cookie (gone when the browser closes). */
  readonly maxAgeSeconds: number | undefined;
  readonly secure: boolean;
  readonly httpOnly: boolean;
  /** SameSite; undefined leaves the attribute out (the browser's default, Lax in current ones). */
  readonly sameSite: 'lax' | 'strict' | 'none' | undefined;
}

/** Active health check settings (the core's `ActiveCheckOptions` with its probe described, not built). */
export interface HealthCheckSettings {
  readonly type: 'http' | 'tcp';
  /** HTTP only. */
  readonly path: string;
  /** HTTP only. */
  readonly expectedStatuses: readonly (number | StatusRange)[];
  /** HTTP only; the instance's `host:port` when undefined. */
  readonly hostHeader: string | undefined;
  /** `grpc`/`grpcs` instances: the service name their `grpc.health.v1.Health/Check` asks about ('' the whole server). */
  readonly grpcService: string;
  /** The port checks connect to on the instance's host; the instance's own port when undefined. */
  readonly port: number | undefined;
  /** The protocol HTTP checks speak (`type: http`); the instance's own protocol when undefined. */
  readonly protocol: UpstreamProtocol | undefined;
  readonly intervalMs: number;
  readonly unhealthyIntervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
}

/** Passive outlier detection settings (Envoy's consecutive-errors detection). */
export interface OutlierDetectionSettings {
  readonly consecutiveErrors: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly decayIntervalMs: number;
}

/** Upstream timeouts; 0 turns one off. */
export interface UpstreamTimeouts {
  /** Opening a connection to an instance. */
  readonly connectMs: number;
  /** From the request being sent to the response headers. */
  readonly headersMs: number;
  /** Longest silence between two response body chunks. */
  readonly idleBodyMs: number;
  /** An upgraded (WebSocket) connection with no byte either way for this long is closed. */
  readonly websocketIdleMs: number;
}

/** How often one request may be tried, and after which failures. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 means no retry. */
  readonly attempts: number;
  readonly retryOn: readonly RetryCondition[];
}

/** A static instance from the file, in the native registry payload's shape. */
export interface StaticInstance {
  readonly id: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly weight: number | undefined;
  readonly protocol: InstanceProtocol | undefined;
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

/** Header edits: set (replace) then remove; names lowercased. */
export interface HeaderPolicy {
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

/** What a route sends upstream as Host: the client's, the instance's `host:port`, or a literal. */
export type HostHeaderPolicy = 'pass' | 'upstream' | (string & {});

interface RouteCommon {
  /** From the file, or derived from what the route matches (see `routeNames`), so other routes coming and going leave it alone. */
  readonly name: string;
  /** Set, the route answers 503 with this reason instead of proxying (a config store route whose middleware is missing). */
  readonly unavailable?: string | undefined;
  /** Position in the file; ties in specificity keep this order. */
  readonly index: number;
  /** Exact (`api.example.com`) or wildcard (`*.example.com`), lowercased, without port. */
  readonly host: string | undefined;
  /** Path prefix matched by whole segments; no trailing slash (except `/`). */
  readonly path: string | undefined;
  /** Regex source tested against the path without query; exclusive with `path`. */
  readonly pathRegex: string | undefined;
  /** Uppercased; undefined matches every method. */
  readonly methods: readonly string[] | undefined;
  /** Lowercased names to exact values. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly rewrite: { readonly pattern: string; readonly replacement: string } | undefined;
  readonly requestHeaders: HeaderPolicy | undefined;
  readonly responseHeaders: HeaderPolicy | undefined;
  readonly hostHeader: HostHeaderPolicy;
  /** Overrides of the service's timeouts for this route (connect timeouts belong to the instance pools). */
  readonly timeouts: Partial<Pick<UpstreamTimeouts, 'headersMs' | 'idleBodyMs' | 'websocketIdleMs'>> | undefined;
  /** Overrides of the service's retry policy for this route. */
  readonly retries: Partial<RetryPolicy> | undefined;
  /** The route's own breaker (its own state), false to turn the service's off for this route; undefined: the service's. */
  readonly circuitBreaker: CircuitBreakerSettings | false | undefined;
  /** Names of `GatewayConfig.middlewares` run after the route's own edits, in this order; empty for none. */
  readonly middlewares: readonly string[];
  /** Entry points this route serves; undefined serves every entry point. */
  readonly entryPoints: readonly string[] | undefined;
  /** Only instances with this metadata; undefined: every instance of the service. Exclusive with `canary`. */
  readonly subset: SubsetRouting | undefined;
  /** A split between metadata subsets; undefined: none. Exclusive with `subset`. */
  readonly canary: CanaryRouting | undefined;
  /** A copy of some of the route's requests sent to another service, its answer dropped; undefined: none. */
  readonly mirror: MirrorRouting | undefined;
}

/** A route's traffic mirroring (Envoy's request mirror policy, Traefik's mirroring service). */
export interface MirrorRouting {
  /** The service the copies go to, over its own balancer. */
  readonly service: string;
  /** Share of the route's requests mirrored, 0 to 100. */
  readonly percent: number;
  /** Whether a copy carries the request body; false sends every copy without one. */
  readonly body: boolean;
  /** A body longer than this is not mirrored (the request is not, and is counted as dropped). */
  readonly maxBodyBytes: number;
  /** The longest one copy may take, from its send to the end of its answer. */
  readonly timeoutMs: number;
  /** Copies of this route in flight at once; one more is dropped and counted. */
  readonly maxInFlight: number;
}

/** Metadata pairs an instance must all carry. */
export type MetadataSelector = Readonly<Record<string, string>>;

/** What a route gets when its selection has nothing to give: every instance, nothing (503), or another selection. */
export type SubsetFallback = 'any' | 'none' | MetadataSelector;

/** A route to the instances whose metadata holds every `match` pair (Envoy's subset load balancer). */
export interface SubsetRouting {
  readonly match: MetadataSelector;
  readonly fallback: SubsetFallback;
}

/** A canary: requests on a lane go to its subset, the others are split by weight between the subsets `by` one key. */
export interface CanaryRouting {
  /** The metadata key whose values name the subsets (`version`). */
  readonly by: string;
  /** Heaviest first (file order among equals): the order in which subsets take over an empty one's share. */
  readonly split: readonly { readonly value: string; readonly weight: number }[];
  readonly lanes: readonly CanaryLaneRouting[];
  /** When every subset of the split is empty. */
  readonly fallback: SubsetFallback;
}

/** One canary lane: a request whose header (or cookie) is present, and equals `value` when given, goes to subset `by: to`. */
export interface CanaryLaneRouting {
  /** Lower-case; exclusive with `cookie`. */
  readonly header: string | undefined;
  readonly cookie: string | undefined;
  readonly value: string | undefined;
  readonly to: string;
}

/** A route to one named service, optionally stripping its path prefix. */
export interface ServiceRouteConfig extends RouteCommon {
  readonly namespace: false;
  readonly service: string;
  readonly stripPrefix: boolean;
}

/**
 * A namespace route: the first path segment after `path` names the service (go-micro's API
 * gateway), stripped with the prefix; kept (`stripPrefix: false`, `namespace: grpc`) for gRPC,
 * whose `/package.Service/Method` path the upstream needs whole.
 */
export interface NamespaceRouteConfig extends RouteCommon {
  readonly namespace: true;
  readonly service: undefined;
  readonly stripPrefix: boolean;
}

/** One route, with every default applied. */
export type RouteConfig = ServiceRouteConfig | NamespaceRouteConfig;

/** Which peers may speak for the client in X-Forwarded-* headers. */
export interface ForwardingSettings {
  /** IPs, CIDRs or `loopback` / `private`, as written; empty trusts nobody. */
  readonly trustedProxies: readonly string[];
}

/** How request paths are normalised before routing; see `normalisePath`. */
export interface PathSettings {
  /** Merge runs of `/` (nginx `merge_slashes on`). */
  readonly mergeSlashes: boolean;
  /** `%2F` / `%5C` in a path: `keep` them encoded or `reject` the request with 400 (Envoy's `path_with_escaped_slashes_action`). */
  readonly escapedSlashes: 'keep' | 'reject';
}

/** Limits of the client-facing HTTP server (Node `http.Server` options). */
export interface ServerLimits {
  readonly maxHeaderSize: number;
  readonly headersTimeoutMs: number;
  /** 0 turns it off. */
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

/** Graceful shutdown settings. */
export interface ShutdownSettings {
  /** How long in-flight requests may finish after SIGTERM before they are cut. */
  readonly drainTimeoutMs: number;
}

/** What a rate limit counts requests by: the client address (after trusted proxies), the route, the service, the consumer, a request header or a claim of the verified JWT. */
export type RateLimitKey =
  | { readonly from: 'client-ip' | 'route' | 'service' | 'consumer' }
  | { readonly from: 'header'; readonly name: string }
  | { readonly from: 'claim'; readonly name: string };

/** A count of requests per clock hour or day (UTC) per key, on top of the rate. */
export interface RateLimitQuota {
  readonly limit: number;
  readonly per: 'hour' | 'day';
}

/**
 * A token bucket (Go's x/time/rate): `average` tokens per `periodMs` refill a bucket of `burst`; a
 * request takes one. `policy: redis` keeps the buckets in `redis` (one budget for every gateway).
 */
export interface RateLimitSettings {
  readonly average: number;
  readonly periodMs: number;
  readonly burst: number;
  readonly key: RateLimitKey;
  /** With `key: client-ip`, IPv6 clients are counted per network of this prefix length (128: per address); IPv4 clients per address. */
  readonly ipv6Subnet: number;
  readonly policy: 'local' | 'redis';
  /** While Redis does not answer: a local bucket of 1/gateways of the limit, let everything through, or refuse everything. */
  readonly onRedisError: 'local' | 'allow' | 'deny';
  /** The status `onRedisError: deny` answers while Redis is away (Envoy's `status_on_error`); 503 by default. */
  readonly statusOnRedisError: number;
  /** Delay instead of refusing: a request whose token comes within `maxWaitMs` waits for it (nginx `limit_req ... delay`). */
  readonly delay: { readonly maxWaitMs: number } | undefined;
  readonly quota: RateLimitQuota | undefined;
}

/** Redirects requests not already on `scheme` to it: 301/308 when `permanent`, else 302/307 (307/308 keep the method). */
export interface RedirectSchemeSettings {
  readonly scheme: 'https' | 'http';
  /** Port in the Location; undefined leaves the scheme's default port (none written). */
  readonly port: number | undefined;
  readonly permanent: boolean;
}

/** Redirects requests whose URL matches `regex` to the URL with the match replaced: 301/308 when `permanent`, else 302/307. */
export interface RedirectRegexSettings {
  /** A JavaScript regex source, tested against `http[s]://host[:port]/path?query` as the client sent it. */
  readonly regex: string;
  /** The Location: the URL with the first match replaced by this (`$1`, `$<name>`). */
  readonly replacement: string;
  readonly permanent: boolean;
}

/**
 * The gateway answers by itself, with no upstream (`respond`: Envoy's direct_response, Kong's
 * request-termination, nginx's `return`): `status` with `body` (given, or read from `bodyFile` at load).
 */
export interface RespondSettings {
  /** A final status, 200 to 599. */
  readonly status: number;
  /** The body as written (sent as UTF-8); undefined for none, or with `bodyFile`. */
  readonly body: string | undefined;
  /** The file the body is read from (relative to the configuration file's folder), as written. */
  readonly bodyFile: string | undefined;
  /** The bytes of `bodyFile` as read when the configuration loaded; undefined without one, or before `readRespondFiles`. */
  readonly fileBody: RespondFileBody | undefined;
  /** The Content-Type of the body: `text/plain; charset=utf-8` by default when there is one, none without. */
  readonly contentType: string | undefined;
  /** More headers of the answer, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
}

/** The Strict-Transport-Security header, sent on secure connections only. */
export interface HstsSettings {
  readonly maxAgeMs: number;
  readonly includeSubDomains: boolean;
  readonly preload: boolean;
}

/** CORS answered by the gateway: which origins, methods and headers a browser may use across origins. */
export interface CorsSettings {
  /** Lower-cased origins without default ports, `https://*.example.com` patterns, or `*`. */
  readonly allowOrigins: readonly string[];
  /** `*` answers a preflight with the method it asks for. */
  readonly allowMethods: readonly string[];
  /** Lower-cased; `*` answers a preflight with the headers it asks for. */
  readonly allowHeaders: readonly string[];
  readonly exposeHeaders: readonly string[];
  readonly allowCredentials: boolean;
  /** How long a browser may cache a preflight's answer; the browser's default when undefined. */
  readonly maxAgeMs: number | undefined;
}

/** Header edits as a named middleware: the route keys `requestHeaders`, `responseHeaders`, `hostHeader` in one. */
export interface HeadersSettings {
  readonly request: HeaderPolicy | undefined;
  readonly response: HeaderPolicy | undefined;
  readonly host: HostHeaderPolicy;
}

/** A request body limit as a named middleware: bodies over `maxBytes` are answered 413 `body-too-large`. */
export interface BodyLimitSettings {
  /** The largest request body, in bytes, a request may carry upstream. */
  readonly maxBytes: number;
}

/**
 * A cap on the requests in flight per key (`inFlightReq`, Traefik's middleware of that name, nginx's
 * `limit_conn`): beyond `amount`, 429 `in-flight-limit` until one of them has finished.
 */
export interface InFlightReqSettings {
  readonly amount: number;
  readonly key: RateLimitKey;
  /** With `key: client-ip`, IPv6 clients are counted per network of this prefix length (128: per address). */
  readonly ipv6Subnet: number;
}

/** A coding the `compress` middleware can encode answers in. */
export type CompressEncoding = 'br' | 'gzip';

/** Answers compressed on the fly (`compress`): which codings, from what size, which media types. */
export interface CompressSettings {
  /** The codings offered, the server's preference first (it breaks ties between equal q-values). */
  readonly encodings: readonly CompressEncoding[];
  /** An answer whose Content-Length is below this many bytes is sent as it is (one without a length is compressed). */
  readonly minBytes: number;
  /** Media types compressed (`text/*` or exact, lower-case); ignored when `excludedContentTypes` is set. */
  readonly contentTypes: readonly string[];
  /** When set, every media type is compressed except these. */
  readonly excludedContentTypes: readonly string[] | undefined;
  /** gzip's level and brotli's quality, 1 (fastest) to 9. */
  readonly level: number;
}

/** The abort of a `fault` middleware: the gateway answers `status` itself, never the upstream. */
export interface FaultAbortSettings {
  /** A final status, 200 to 599. */
  readonly status: number;
  /** The share of requests aborted, 0 to 100 (fractions allowed). */
  readonly percentage: number;
  /** The body as written (sent as UTF-8); undefined sends the gateway's JSON error shape (`fault-abort`). */
  readonly body: string | undefined;
  /** The Content-Type of `body`: `text/plain; charset=utf-8` by default when there is one. */
  readonly contentType: string | undefined;
}

/** The delay of a `fault` middleware: the request waits `durationMs` before the layers after it run. */
export interface FaultDelaySettings {
  readonly durationMs: number;
  /** The share of requests delayed, 0 to 100 (fractions allowed). */
  readonly percentage: number;
}

/**
 * Fault injection (`fault`: Envoy's HTTP fault filter, APISIX's fault-injection): a share of requests
 * delayed, then a share aborted with the gateway's own answer; at least one of the two is set.
 */
export interface FaultSettings {
  readonly abort: FaultAbortSettings | undefined;
  readonly delay: FaultDelaySettings | undefined;
  /** At most this many requests under a fault at once (Envoy's max_active_faults); the rest pass untouched. Undefined: no cap. */
  readonly maxActive: number | undefined;
}

/** One page of an `errors` middleware: the statuses it stands for and the file it is read from. */
export interface ErrorPageSettings {
  /** The key as written (`502`, `5xx`, `500-599`). */
  readonly key: string;
  /** The lowest status it stands for. */
  readonly from: number;
  /** The highest status it stands for. */
  readonly to: number;
  /** The page's file (relative to the configuration file's folder), as written. */
  readonly file: string;
  /** The bytes of `file` as read when the configuration loaded; undefined before `readRespondFiles`. */
  readonly body: RespondFileBody | undefined;
}

/**
 * Custom error pages (`errors`: nginx's `error_page` with `proxy_intercept_errors`, HAProxy's
 * `errorfile`): an error answer whose status a page stands for keeps its status and takes the page as its body.
 */
export interface ErrorsSettings {
  /** The pages, the most specific first (one status before a range, a narrow range before a wide one). */
  readonly pages: readonly ErrorPageSettings[];
  /** The pages' Content-Type: `text/html; charset=utf-8` unless set. */
  readonly contentType: string;
}

/** An HTTP response cache in this process's memory (`cache`), RFC 9111's rules for a shared cache. */
export interface CacheSettings {
  /** The bytes every entry (body and headers) together may hold; the least recently used go first. */
  readonly maxBytes: number;
  /** An answer longer than this (body bytes) is never kept. */
  readonly maxEntryBytes: number;
  /** How long an answer without explicit freshness (no max-age, s-maxage or Expires) stays fresh; undefined: only what its headers allow. */
  readonly defaultTtlMs: number | undefined;
  /** The methods whose requests may be answered from the cache (GET, HEAD). */
  readonly methods: readonly string[];
  /** The statuses whose answers may be kept. */
  readonly statuses: readonly number[];
  /** The answer header that tells MISS, HIT, EXPIRED, REVALIDATED, STALE, UPDATING or BYPASS; undefined: none. */
  readonly cacheStatusHeader: string | undefined;
  /** When a stale stored answer goes to the client in place of a failed fetch, or while another request's fetch of it is under way (`useStale`). */
  readonly useStale: CacheStaleSettings;
  /** How long a miss waits for another request's fetch of its key (`lock`, nginx's `proxy_cache_lock_timeout`); undefined: misses never wait. */
  readonly lockTimeoutMs: number | undefined;
  /** Whether a HEAD that goes upstream and may store goes as a GET whose answer is stored (nginx's `proxy_cache_convert_head`), when `methods` holds both. */
  readonly convertHead: boolean;
  /**
   * When set, the first request to find a stored answer stale, where one may be sent while it is
   * updated (`updating`), gets it at once too, the update fetched without a client (nginx's
   * `proxy_cache_background_update`, RFC 5861's stale-while-revalidate "in the background"); the
   * fetch is cut, storing nothing, once it ran this long (`backgroundUpdate.timeout`). Undefined: off.
   */
  readonly backgroundUpdateTimeoutMs: number | undefined;
}

/**
 * When a stale answer may be sent, in nginx's `proxy_cache_use_stale` words: a failure of its fetch
 * (`error`, `timeout`, `http_5xx`), or `updating`, another request's fetch of it under way.
 */
export type StaleTrigger = 'error' | 'timeout' | 'http_500' | 'http_502' | 'http_503' | 'http_504' | 'updating';

/** `cache`'s `useStale`: nginx's `proxy_cache_use_stale` with a bound, and RFC 5861's `stale-if-error` and `stale-while-revalidate` in the stored answer. */
export interface CacheStaleSettings {
  /** When any stale answer is sent (one that forbids it aside); empty: only when its own `stale-if-error` or `stale-while-revalidate` allows. */
  readonly on: readonly StaleTrigger[];
  /** How long past its freshness an answer is still sent for a trigger in `on`. */
  readonly maxStaleMs: number;
  /**
   * Whether a stored answer's own `Cache-Control` lets it be sent up to N seconds past its
   * freshness: `stale-if-error=N` for any of the failures, `stale-while-revalidate=N` while another
   * request's fetch of it is under way (RFC 5861).
   */
  readonly answerDirectives: boolean;
}

/** One named middleware: its kind and that kind's settings, every default applied. */
export type MiddlewareConfig =
  | { readonly kind: 'rateLimit'; readonly settings: RateLimitSettings }
  | { readonly kind: 'redirectScheme'; readonly settings: RedirectSchemeSettings }
  | { readonly kind: 'redirectRegex'; readonly settings: RedirectRegexSettings }
  | { readonly kind: 'respond'; readonly settings: RespondSettings }
  | { readonly kind: 'hsts'; readonly settings: HstsSettings }
  | { readonly kind: 'cors'; readonly settings: CorsSettings }
  | { readonly kind: 'headers'; readonly settings: HeadersSettings }
  | { readonly kind: 'rewrite'; readonly settings: { readonly pattern: string; readonly replacement: string } }
  | { readonly kind: 'bodyLimit'; readonly settings: BodyLimitSettings }
  | { readonly kind: 'inFlightReq'; readonly settings: InFlightReqSettings }
  | { readonly kind: 'compress'; readonly settings: CompressSettings }
  | { readonly kind: 'fault'; readonly settings: FaultSettings }
  | { readonly kind: 'errors'; readonly settings: ErrorsSettings }
  | { readonly kind: 'cache'; readonly settings: CacheSettings }
  | { readonly kind: 'keyAuth'; readonly settings: KeyAuthSettings }
  | { readonly kind: 'basicAuth'; readonly settings: BasicAuthSettings }
  | { readonly kind: 'jwtAuth'; readonly settings: JwtAuthSettings }
  | { readonly kind: 'ipAllowList'; readonly settings: IpFilterSettings }
  | { readonly kind: 'ipDenyList'; readonly settings: IpFilterSettings }
  | { readonly kind: 'forwardAuth'; readonly settings: ForwardAuthSettings }
  | { readonly kind: 'grpcWeb'; readonly settings: Record<string, never> };
