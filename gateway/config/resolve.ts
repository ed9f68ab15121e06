import type { BalancerConfig } from '../../src/balance/balancer-factory.ts';
import { DEFAULT_SLOW_START } from '../../src/balance/slow-start.ts';
import {
  DEFAULT_ADMIN,
  DEFAULT_BALANCER,
  DEFAULT_CONFIG_STORE_TIMEOUT_MS,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_LISTEN,
  DEFAULT_MIRROR_MAX_BODY_BYTES,
  DEFAULT_MIRROR_MAX_IN_FLIGHT,
  DEFAULT_MIRROR_TIMEOUT_MS,
  DEFAULT_OUTLIER_DETECTION,
  DEFAULT_PANIC_THRESHOLD_PERCENT,
  DEFAULT_PATH_SETTINGS,
  DEFAULT_PEER_LAG_AFTER_MS,
  DEFAULT_PEER_TTL_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  DEFAULT_REDIS_TIMEOUT_MS,
  DEFAULT_REMOVAL_GRACE_MS,
  DEFAULT_RETRY_POLICY,
  DEFAULT_CACHE_MAX_BYTES,
  DEFAULT_SERVER_LIMITS,
  DEFAULT_TCP_IDLE_TIMEOUT_MS,
  DEFAULT_UPSTREAM_TIMEOUTS,
  DEFAULT_TRACING,
  DEFAULT_UPSTREAM_TLS,
  DEFAULT_WORKER_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_STICKY_COOKIE,
} from './defaults.ts';
import { DEFAULT_FORGET_AFTER_MS, DEFAULT_PROTECTION_HOLD_MS, DEFAULT_PROTECTION_THRESHOLD_PERCENT, defaultRegistrySnapshotPath, registryProviderName } from '../../src/discovery/index.ts';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { ConfigInput } from './schema.ts';
import type { EntryPointInput } from './schema-entrypoint.ts';
import type { MiddlewareInput } from './schema-middleware.ts';
import type { RedisInput } from './schema-redis.ts';
import { DEFAULT_RATE_LIMIT_IPV6_SUBNET, DEFAULT_RATE_LIMIT_PERIOD_MS, resolveAccessMiddleware, resolveConsumers } from './resolve-access.ts';
import { DEFAULT_CONCURRENCY, DEFAULT_RETRY_BUDGET, mergeCircuitBreaker, mergeConcurrency, mergeRetryBudget, routeCircuitBreaker } from './resolve-breaker.ts';
import type { RouteInput } from './schema-route.ts';
import { routeNames } from './route-identity.ts';
import type { MirrorInput } from './schema-route-mirror.ts';
import type { CanaryInput } from './schema-route-traffic.ts';
import type { ServiceSettingsInput } from './schema-service.ts';
import type {
  AdminSettings,
  CacheStaleSettings,
  PeerSettings,
  CanaryRouting,
  CompressEncoding,
  CertificateFiles,
  EntryPointConfig,
  ErrorsSettings,
  GatewayConfig,
  HeaderPolicy,
  HealthCheckSettings,
  MiddlewareConfig,
  RegistryConfig,
  MirrorRouting,
  OutlierDetectionSettings,
  RedisSettings,
  RedisTarget,
  RetryPolicy,
  RouteConfig,
  ServiceSettings,
  StickySettings,
  StaticInstance,
  StaleTrigger,
} from './types.ts';
import type { CircuitBreakerSettings } from './types-breaker.ts';
import { parseStatusRange, statusRangeSpan, type StatusRange } from './status-ranges.ts';

const BUILT_IN: ServiceSettings = {
  protocol: 'http',
  tls: DEFAULT_UPSTREAM_TLS,
  balancer: DEFAULT_BALANCER,
  slowStart: false,
  healthCheck: false,
  outlierDetection: DEFAULT_OUTLIER_DETECTION,
  panicThresholdPercent: DEFAULT_PANIC_THRESHOLD_PERCENT,
  removalGraceMs: DEFAULT_REMOVAL_GRACE_MS,
  timeouts: DEFAULT_UPSTREAM_TIMEOUTS,
  retries: DEFAULT_RETRY_POLICY,
  circuitBreaker: false,
  concurrency: DEFAULT_CONCURRENCY,
  retryBudget: DEFAULT_RETRY_BUDGET,
  instances: [],
  proxyProtocol: false,
  sticky: false,
};

/** Where the file came from, for what depends on it. */
export interface ResolveOptions {
  /** Folder relative certificate paths resolve against (the config file's folder); the working directory when not set. */
  readonly baseDir?: string;
  /** The configuration file (absolute): registry snapshot files go beside it by default; none by default without it. */
  readonly configPath?: string;
}

/** Applies every default to a parsed file: built-ins ← `defaults` ← each `services` entry, section by section. */
export function resolveConfig(input: ConfigInput, options: ResolveOptions = {}): GatewayConfig {
  const baseDir = options.baseDir ?? process.cwd();
  const entryPoints = resolveEntryPoints(input, baseDir);
  const defaults = mergeSettings(BUILT_IN, input.defaults ?? {});
  const services = new Map<string, ServiceSettings>();
  for (const [name, settings] of Object.entries(input.services ?? {})) services.set(name, mergeSettings(defaults, settings ?? {}));
  // A service behind a tcp entry point speaks no HTTP, so its active checks are TCP connects by
  // default (on unless its own healthCheck says false); it is declared so that its settings apply.
  for (const service of tcpServices(entryPoints)) services.set(service, mergeSettings(defaults, tcpServiceLayer(input.services?.[service] ?? {})));
  const limits = input.limits ?? {};
  const consumers = resolveConsumers(input.consumers);
  const trustedProxies = input.forwarding?.trustedProxies ?? [];
  const redis = resolveRedis(input.redis);
  return {
    listen: entryPoints[0]!.listen,
    entryPoints,
    admin: resolveAdmin(input.admin),
    registries: (input.registries ?? []).map((registry) => ({ ...registry, snapshotPath: registrySnapshotPath(registry, baseDir, options.configPath) })),
    configStore: input.configStore && {
      ...input.configStore.location,
      snapshotPath: input.configStore.snapshot === undefined ? undefined : absolutePath(baseDir, input.configStore.snapshot),
      timeoutMs: input.configStore.timeout ?? DEFAULT_CONFIG_STORE_TIMEOUT_MS,
      ...('tls' in input.configStore && input.configStore.tls !== undefined ? { tls: input.configStore.tls } : {}),
      ...('auth' in input.configStore && input.configStore.auth !== undefined ? { auth: input.configStore.auth } : {}),
    },
    peers: resolvePeers(input.peers),
    defaults,
    services,
    routes: resolveRoutes(input.routes ?? [], (service) => (services.get(service) ?? defaults).circuitBreaker),
    middlewares: new Map(Object.entries(input.middlewares ?? {}).map(([name, entry]) => [name, resolveAccessMiddleware(entry, consumers, trustedProxies) ?? resolveMiddleware(entry)])),
    consumers,
    certificates: Object.entries(input.certificates ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, entry]) => ({ name, certFile: absolutePath(baseDir, entry.certFile), keyFile: absolutePath(baseDir, entry.keyFile), entryPoints: entry.entryPoints })),
    forwarding: { trustedProxies },
    accessLog: input.accessLog ?? true,
    forwardTrace: input.forwardTrace ?? false,
    tracing: resolveTracing(input.tracing),
    paths: {
      mergeSlashes: input.paths?.mergeSlashes ?? DEFAULT_PATH_SETTINGS.mergeSlashes,
      escapedSlashes: input.paths?.escapedSlashes ?? DEFAULT_PATH_SETTINGS.escapedSlashes,
    },
    limits: {
      maxHeaderSize: limits.maxHeaderSize ?? DEFAULT_SERVER_LIMITS.maxHeaderSize,
      headersTimeoutMs: limits.headersTimeout ?? DEFAULT_SERVER_LIMITS.headersTimeoutMs,
      requestTimeoutMs: limits.requestTimeout ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs,
      keepAliveTimeoutMs: limits.keepAliveTimeout ?? DEFAULT_SERVER_LIMITS.keepAliveTimeoutMs,
    },
    shutdown: { drainTimeoutMs: input.shutdown?.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT_MS },
    workers: typeof input.workers === 'object' ? input.workers.count : (input.workers ?? 1),
    workerHeartbeatTimeoutMs: (typeof input.workers === 'object' ? input.workers.heartbeatTimeout : undefined) ?? DEFAULT_WORKER_HEARTBEAT_TIMEOUT_MS,
    redis,
    removalProtection:
      input.removalProtection === false
        ? false
        : {
            thresholdPercent: input.removalProtection?.threshold ?? DEFAULT_PROTECTION_THRESHOLD_PERCENT,
            holdMs: input.removalProtection?.hold ?? DEFAULT_PROTECTION_HOLD_MS,
          },
    forgetServicesAfterMs: input.forgetServicesAfter ?? DEFAULT_FORGET_AFTER_MS,
  };
}

/** `tracing` with its defaults; undefined (off) when absent or false. */
function resolveTracing(input: ConfigInput['tracing']): GatewayConfig['tracing'] {
  if (input === undefined || input === false) return undefined;
  return {
    endpoint: input.endpoint,
    sampleRatio: input.sampleRatio ?? DEFAULT_TRACING.sampleRatio,
    serviceName: input.serviceName ?? DEFAULT_TRACING.serviceName,
    headers: input.headers ?? {},
    maxQueueSize: input.maxQueueSize ?? DEFAULT_TRACING.maxQueueSize,
    maxBatchSize: input.maxBatchSize ?? DEFAULT_TRACING.maxBatchSize,
    flushIntervalMs: input.flushInterval ?? DEFAULT_TRACING.flushIntervalMs,
    exportTimeoutMs: input.exportTimeout ?? DEFAULT_TRACING.exportTimeoutMs,
  };
}

/** The entry points of the file, or the one `web` entry point of `listen:` (or of the default address). */
function resolveEntryPoints(input: ConfigInput, baseDir: string): EntryPointConfig[] {
  if (!input.entryPoints) return [{ name: 'web', listen: input.listen ?? DEFAULT_LISTEN, protocol: 'http', h2c: false, http2: false, tls: undefined, passthrough: false, middlewares: [] }];
  const pair = (files: CertificateFiles): CertificateFiles => ({ certFile: absolutePath(baseDir, files.certFile), keyFile: absolutePath(baseDir, files.keyFile) });
  return Object.entries(input.entryPoints).map(([name, entryPoint]: [string, EntryPointInput]): EntryPointConfig => {
    const https = entryPoint.protocol === 'https';
    const tls = entryPoint.tls;
    const tcp = entryPoint.protocol === 'tcp';
    return {
      name,
      listen: entryPoint.listen,
      protocol: tcp ? 'tcp' : https ? 'https' : 'http',
      h2c: !https && !tcp && (entryPoint.h2c ?? false),
      http2: https && (entryPoint.http2 ?? true),
      tls: tls && {
        certificates: tls.certificates.map(pair),
        defaultCertificate: tls.defaultCertificate && pair(tls.defaultCertificate),
        minVersion: tls.minVersion,
        ciphers: tls.ciphers,
        clientAuth: tls.clientAuth && { caFile: absolutePath(baseDir, tls.clientAuth.caFile), mode: tls.clientAuth.mode ?? 'require' },
      },
      passthrough: tcp && (entryPoint.passthrough ?? false),
      middlewares: entryPoint.middlewares ?? [],
      ...(tcp
        ? {
            tcp: {
              service: entryPoint.service,
              sni: new Map(Object.entries(entryPoint.sni ?? {}).map(([host, service]) => [host.toLowerCase(), service])),
              proxyProtocol: entryPoint.proxyProtocol,
              idleTimeoutMs: entryPoint.idleTimeout ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
            },
          }
        : {}),
    };
  });
}

/** Where a registry keeps its snapshot file (`RegistryConfig.snapshotPath`). */
function registrySnapshotPath(registry: RegistryConfig, baseDir: string, configPath: string | undefined): string | undefined {
  if (registry.location.kind === 'file' || registry.snapshot === false) return undefined;
  if (registry.snapshot !== undefined) return absolutePath(baseDir, registry.snapshot);
  return configPath === undefined ? undefined : defaultRegistrySnapshotPath(configPath, registryProviderName(registry.location));
}

/** `path` as is when absolute, else from `baseDir` (the configuration file's folder). */
function absolutePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolvePath(baseDir, path);
}

/** Every service some tcp entry point forwards to. */
function tcpServices(entryPoints: readonly EntryPointConfig[]): Set<string> {
  return new Set(entryPoints.flatMap((entryPoint) => (entryPoint.tcp ? [...(entryPoint.tcp.service === undefined ? [] : [entryPoint.tcp.service]), ...entryPoint.tcp.sni.values()] : [])));
}

/** A service layer with TCP connect checks unless it turns checks off or names another type or a protocol. */
function tcpServiceLayer(layer: ServiceSettingsInput): ServiceSettingsInput {
  const check = layer.healthCheck;
  if (check === false) return layer;
  return { ...layer, healthCheck: typeof check === 'object' ? { ...check, type: check.type ?? (check.protocol === undefined ? 'tcp' : 'http') } : { type: 'tcp' } };
}

/** The admin listener from its short form (an address), its long form (`{ listen, token }`) or its absence. */
function resolveAdmin(input: ConfigInput['admin']): AdminSettings | undefined {
  if (input === false) return undefined;
  if (input === undefined) return { listen: DEFAULT_ADMIN, token: undefined };
  if ('port' in input) return { listen: input, token: undefined };
  return { listen: input.listen ?? DEFAULT_ADMIN, token: input.token };
}

/** One layer over another: a section the layer leaves out is inherited whole, a section it sets is merged key by key. */
function mergeSettings(base: ServiceSettings, layer: ServiceSettingsInput): ServiceSettings {
  return {
    protocol: layer.protocol ?? base.protocol,
    tls: { ...base.tls, ...defined({ caFile: layer.tls?.caFile, serverName: layer.tls?.serverName, verify: layer.tls?.verify, certFile: layer.tls?.certFile, keyFile: layer.tls?.keyFile }) },
    balancer: layer.balancer ? balancerConfig(layer.balancer) : base.balancer,
    // Written whole (window is required), so a service's slowStart replaces the inherited one.
    slowStart:
      layer.slowStart === undefined
        ? base.slowStart
        : layer.slowStart && { windowMs: layer.slowStart.window, aggression: layer.slowStart.aggression ?? DEFAULT_SLOW_START.aggression, minWeightPercent: layer.slowStart.minWeightPercent ?? DEFAULT_SLOW_START.minWeightPercent },
    healthCheck: mergeHealthCheck(base.healthCheck, layer.healthCheck),
    outlierDetection: mergeOutlierDetection(base.outlierDetection, layer.outlierDetection),
    panicThresholdPercent: layer.panicThreshold ?? base.panicThresholdPercent,
    removalGraceMs: layer.removalGrace ?? base.removalGraceMs,
    timeouts: {
      ...base.timeouts,
      ...defined({ connectMs: layer.timeouts?.connect, headersMs: layer.timeouts?.headers, idleBodyMs: layer.timeouts?.idleBody, websocketIdleMs: layer.timeouts?.websocketIdle }),
    },
    retries: layer.retries === undefined ? base.retries : { ...base.retries, ...retryOverride(layer.retries) },
    circuitBreaker: mergeCircuitBreaker(base.circuitBreaker, layer.circuitBreaker),
    concurrency: mergeConcurrency(base.concurrency, layer.concurrency),
    retryBudget: mergeRetryBudget(base.retryBudget, layer.retryBudget),
    instances: (layer.instances ?? []).map(staticInstance),
    proxyProtocol: layer.proxyProtocol ?? base.proxyProtocol,
    sticky: mergeSticky(base.sticky, layer.sticky),
  };
}

/** `true` keeps the inherited cookie (or the default one); an object sets its keys over it; `false` turns it off. */
function mergeSticky(base: StickySettings | false, layer: ServiceSettingsInput['sticky']): StickySettings | false {
  if (layer === undefined) return base;
  if (layer === false) return false;
  const start = base ? base.cookie : DEFAULT_STICKY_COOKIE;
  if (layer === true || layer.cookie === undefined) return { cookie: start };
  const { name, path, maxAge, secure, httpOnly, sameSite } = layer.cookie;
  return {
    cookie: {
      ...start,
      ...defined({ name, path, secure, httpOnly, sameSite }),
      ...(maxAge !== undefined ? { maxAgeSeconds: Math.floor(maxAge / 1_000) } : {}),
    },
  };
}

function mergeOutlierDetection(base: OutlierDetectionSettings | false, layer: ServiceSettingsInput['outlierDetection']): OutlierDetectionSettings | false {
  if (layer === undefined) return base;
  if (layer === false) return false;
  const start = base || DEFAULT_OUTLIER_DETECTION;
  if (layer === true) return start;
  return {
    ...start,
    ...defined({
      consecutiveErrors: layer.consecutiveErrors,
      baseEjectionMs: layer.baseEjectionTime,
      maxEjectionMs: layer.maxEjectionTime,
      maxEjectionPercent: layer.maxEjectionPercent,
      decayIntervalMs: layer.decayInterval,
    }),
  };
}

function mergeHealthCheck(base: HealthCheckSettings | false, layer: ServiceSettingsInput['healthCheck']): HealthCheckSettings | false {
  if (layer === undefined) return base;
  if (layer === false) return false;
  const start = base || DEFAULT_HEALTH_CHECK;
  if (layer === true) return start;
  const followsInterval = start.unhealthyIntervalMs === start.intervalMs;
  const merged = {
    ...start,
    ...defined({
      type: layer.type,
      path: layer.path,
      expectedStatuses: layer.expectedStatuses,
      hostHeader: layer.hostHeader,
      grpcService: layer.grpcService,
      port: layer.port,
      protocol: layer.protocol,
      intervalMs: layer.interval,
      unhealthyIntervalMs: layer.unhealthyInterval,
      timeoutMs: layer.timeout,
      healthyThreshold: layer.healthyThreshold,
      unhealthyThreshold: layer.unhealthyThreshold,
    }),
  };
  // A protocol asks for an HTTP-family check; a tcp check written here speaks none inherited.
  if (layer.protocol !== undefined && layer.type === undefined) merged.type = 'http';
  if (layer.type === 'tcp') merged.protocol = undefined;
  // Unless set on its own, the unhealthy interval follows the interval, as the core's checker does.
  if (followsInterval && layer.unhealthyInterval === undefined) merged.unhealthyIntervalMs = merged.intervalMs;
  return merged;
}

function balancerConfig(input: NonNullable<ServiceSettingsInput['balancer']>): BalancerConfig {
  switch (input.algorithm) {
    case 'p2c-ewma':
      return { algorithm: 'p2c-ewma', ...defined({ decayMs: input.decay }) };
    case 'consistent-hash':
      return {
        algorithm: 'consistent-hash',
        key: input.key ?? { from: 'client-ip' },
        ...defined({ pointsPerWeight: input.pointsPerWeight, maxRingPoints: input.maxRingPoints, balanceFactor: input.boundedLoadFactor }),
      };
    default:
      return { algorithm: input.algorithm };
  }
}

function retryOverride(input: NonNullable<ServiceSettingsInput['retries']>): Partial<RetryPolicy> {
  return input === false ? { attempts: 1 } : defined({ attempts: input.attempts, retryOn: input.retryOn });
}

function staticInstance(entry: NonNullable<ServiceSettingsInput['instances']>[number]): StaticInstance {
  if (typeof entry !== 'string') return { id: entry.id, host: entry.host, port: entry.port, weight: entry.weight, protocol: entry.protocol, metadata: entry.metadata };
  const colon = entry.lastIndexOf(':');
  return { id: undefined, host: entry.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(entry.slice(colon + 1)), weight: undefined, protocol: undefined, metadata: undefined };
}

const headerPolicy = (policy: RouteInput['requestHeaders']): HeaderPolicy | undefined => policy && { set: policy.set ?? {}, remove: policy.remove ?? [] };


/** `compress` codings by default, the server's preference first: brotli is smaller at the same speed. */
const DEFAULT_COMPRESS_ENCODINGS: readonly CompressEncoding[] = ['br', 'gzip'];
/** `compress` leaves answers below 1 KiB as they are (Traefik's default): the coding's overhead outweighs the gain. */
const DEFAULT_COMPRESS_MIN_BYTES = 1_024;
/** gzip level and brotli quality 5: near the best ratio a streaming encoder reaches at a small cost in CPU. */
const DEFAULT_COMPRESS_LEVEL = 5;
/**
 * The media types `compress` compresses by default: text, and the structured formats sent as text,
 * every `+json` and `+xml` type among them (RFC 6839: problem+json, vnd.api+json, soap+xml…).
 */
const DEFAULT_COMPRESS_TYPES: readonly string[] = [
  'text/*',
  'application/json',
  'application/*+json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/*+xml',
  'application/x-ndjson',
  'application/wasm',
  'image/svg+xml',
  'image/x-icon',
  'font/ttf',
  'font/otf',
];

/** `cache` keeps answers up to 1 MiB by default: bigger ones would push many small ones out. */
const DEFAULT_CACHE_MAX_ENTRY_BYTES = 1_048_576;
/** The methods `cache` answers by default: the ones RFC 9111 lets a cache reuse answers for. */
const DEFAULT_CACHE_METHODS = ['GET', 'HEAD'];
/** The statuses `cache` keeps by default: those RFC 9110 §15.1 calls heuristically cacheable, less 405, 414, 501 and 206 (a range is not kept whole). */
const DEFAULT_CACHE_STATUSES = [200, 203, 204, 300, 301, 404, 410];

/** The methods a CORS preflight is allowed unless `allowMethods` says otherwise: the ones that need none. */
const DEFAULT_CORS_METHODS = ['GET', 'HEAD', 'POST'];

/** A `respond` body's type when it names none (nginx's `return` text goes out as its default_type, often text/plain). */
const DEFAULT_RESPOND_CONTENT_TYPE = 'text/plain; charset=utf-8';

/** What `onRedisError: deny` answers by default: 503, a service that cannot serve for now (with `Retry-After`), not Envoy's 500. */
const DEFAULT_RATE_LIMIT_STATUS_ON_REDIS_ERROR = 503;

/** One `middlewares` entry with its defaults; the schema guarantees exactly one kind is set. */
function resolveMiddleware(input: MiddlewareInput): MiddlewareConfig {
  if (input.rateLimit) {
    const { average, period, burst, key, ipv6Subnet, policy = 'local', onRedisError, statusOnRedisError, delay, quota } = input.rateLimit;
    // Default burst = average, at least one token: a bucket of less than one never admits anything.
    return {
      kind: 'rateLimit',
      settings: {
        average,
        periodMs: period ?? DEFAULT_RATE_LIMIT_PERIOD_MS,
        burst: burst ?? Math.max(1, Math.ceil(average)),
        key: key ?? { from: 'client-ip' },
        ipv6Subnet: ipv6Subnet ?? DEFAULT_RATE_LIMIT_IPV6_SUBNET,
        policy,
        onRedisError: onRedisError ?? 'local',
        statusOnRedisError: statusOnRedisError ?? DEFAULT_RATE_LIMIT_STATUS_ON_REDIS_ERROR,
        delay: delay && { maxWaitMs: delay.maxWait },
        quota,
      },
    };
  }
  if (input.redirectScheme) {
    const { scheme, port, permanent } = input.redirectScheme;
    return { kind: 'redirectScheme', settings: { scheme, port, permanent: permanent ?? false } };
  }
  if (input.redirectRegex) {
    const { regex, replacement, permanent } = input.redirectRegex;
    return { kind: 'redirectRegex', settings: { regex, replacement, permanent: permanent ?? false } };
  }
  if (input.respond) {
    const { status, body, bodyFile, contentType, headers } = input.respond;
    const hasBody = body !== undefined || bodyFile !== undefined;
    return { kind: 'respond', settings: { status, body, bodyFile, fileBody: undefined, contentType: contentType ?? (hasBody ? DEFAULT_RESPOND_CONTENT_TYPE : undefined), headers: headers ?? {} } };
  }
  if (input.hsts) {
    const { maxAge, includeSubDomains, preload } = input.hsts;
    return { kind: 'hsts', settings: { maxAgeMs: maxAge, includeSubDomains: includeSubDomains ?? false, preload: preload ?? false } };
  }
  if (input.cors) {
    const { allowOrigins, allowMethods, allowHeaders, exposeHeaders, allowCredentials, maxAge } = input.cors;
    const settings = { allowOrigins, allowMethods: allowMethods ?? DEFAULT_CORS_METHODS, allowHeaders: allowHeaders ?? [], exposeHeaders: exposeHeaders ?? [], allowCredentials: allowCredentials ?? false, maxAgeMs: maxAge };
    return { kind: 'cors', settings };
  }
  if (input.headers) {
    const { request, response, host } = input.headers;
    return { kind: 'headers', settings: { request: headerPolicy(request), response: headerPolicy(response), host: host ?? 'pass' } };
  }
  if (input.bodyLimit) return { kind: 'bodyLimit', settings: { maxBytes: input.bodyLimit.maxSize } };
  if (input.inFlightReq) {
    const { amount, key, ipv6Subnet } = input.inFlightReq;
    return { kind: 'inFlightReq', settings: { amount, key: key ?? { from: 'client-ip' }, ipv6Subnet: ipv6Subnet ?? DEFAULT_RATE_LIMIT_IPV6_SUBNET } };
  }
  if (input.compress) {
    const { encodings, minSize, contentTypes, excludedContentTypes, level } = input.compress;
    const settings = { encodings: encodings ?? DEFAULT_COMPRESS_ENCODINGS, minBytes: minSize ?? DEFAULT_COMPRESS_MIN_BYTES, contentTypes: contentTypes ?? DEFAULT_COMPRESS_TYPES, excludedContentTypes, level: level ?? DEFAULT_COMPRESS_LEVEL };
    return { kind: 'compress', settings };
  }
  if (input.fault) {
    const { abort, delay, maxActive } = input.fault;
    const settings = {
      abort: abort && { status: abort.status, percentage: abort.percentage ?? 100, body: abort.body, contentType: abort.contentType ?? (abort.body === undefined ? undefined : DEFAULT_RESPOND_CONTENT_TYPE) },
      delay: delay && { durationMs: delay.duration, percentage: delay.percentage ?? 100 },
      maxActive,
    };
    return { kind: 'fault', settings };
  }
  if (input.errors) return { kind: 'errors', settings: errorsSettings(input.errors.pages, input.errors.contentType) };
  if (input.cache) {
    const { maxSize, maxEntrySize, defaultTtl, methods, statuses, cacheStatusHeader, useStale, lock, convertHead, backgroundUpdate } = input.cache;
    const maxBytes = maxSize ?? DEFAULT_CACHE_MAX_BYTES;
    const settings = {
      maxBytes,
      maxEntryBytes: maxEntrySize ?? Math.min(DEFAULT_CACHE_MAX_ENTRY_BYTES, maxBytes),
      defaultTtlMs: defaultTtl,
      methods: methods ?? DEFAULT_CACHE_METHODS,
      statuses: statuses ?? DEFAULT_CACHE_STATUSES,
      cacheStatusHeader: cacheStatusHeader === false ? undefined : (cacheStatusHeader ?? 'x-cache-status'),
      useStale: cacheStaleSettings(useStale),
      lockTimeoutMs: lock === undefined || lock === false ? undefined : ((lock === true ? undefined : lock.timeout) ?? DEFAULT_CACHE_LOCK_TIMEOUT_MS),
      convertHead: convertHead ?? true,
      backgroundUpdateTimeoutMs: backgroundUpdate === undefined || backgroundUpdate === false ? undefined : ((backgroundUpdate === true ? undefined : backgroundUpdate.timeout) ?? DEFAULT_CACHE_BACKGROUND_UPDATE_TIMEOUT_MS),
    };
    return { kind: 'cache', settings };
  }
  if (input.grpcWeb) return { kind: 'grpcWeb', settings: {} };
  return { kind: 'rewrite', settings: input.rewrite! };
}

/** How long a miss waits for another's fetch of its key by default: nginx's `proxy_cache_lock_timeout`. */
const DEFAULT_CACHE_LOCK_TIMEOUT_MS = 5_000;

/**
 * How long a background update may hold a stale answer's updating mark by default: nginx's
 * `proxy_read_timeout`, which bounds its background subrequest whatever else is configured.
 */
const DEFAULT_CACHE_BACKGROUND_UPDATE_TIMEOUT_MS = 60_000;

/**
 * Every failure `useStale` may name, its default list (nginx's `error timeout http_500 http_502
 * http_503 http_504`). Not `updating`, which sends stale answers while the upstream is well: it is
 * asked for by name, as in nginx (whose default list is empty), so that `useStale: {}` keeps meaning
 * "in place of failures".
 */
const STALE_TRIGGERS: readonly StaleTrigger[] = ['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504'];

/** How long past its freshness `useStale` sends an answer unless `maxStale` says: a day, so a long outage does not serve a week-old answer unnoticed. */
const DEFAULT_MAX_STALE_MS = 86_400_000;

/**
 * `cache`'s `useStale`: absent, only a stored answer's own `stale-if-error` and
 * `stale-while-revalidate` (as nginx honours them without `proxy_cache_use_stale`); `false`, never
 * a stale answer; an object, the triggers it lists (the six failures by default) up to `maxStale`,
 * and the answer's own directives too.
 */
function cacheStaleSettings(input: false | { on?: StaleTrigger[] | undefined; maxStale?: number | undefined } | undefined): CacheStaleSettings {
  if (input === false) return { on: [], maxStaleMs: 0, answerDirectives: false };
  if (input === undefined) return { on: [], maxStaleMs: 0, answerDirectives: true };
  return { on: input.on ?? STALE_TRIGGERS, maxStaleMs: input.maxStale ?? DEFAULT_MAX_STALE_MS, answerDirectives: true };
}

/** An `errors` page's type when the middleware names none: pages are HTML, as nginx's and HAProxy's are. */
const DEFAULT_ERROR_PAGE_CONTENT_TYPE = 'text/html; charset=utf-8';

/** `errors` resolved: its pages the most specific first (the schema refused keys it cannot read, and ties that overlap). */
function errorsSettings(pages: Readonly<Record<string, string>>, contentType: string | undefined): ErrorsSettings {
  const resolved = Object.entries(pages).map(([key, file]) => {
    const range = parseStatusRange(key) as StatusRange;
    return { key, from: range.from, to: range.to, file, body: undefined };
  });
  resolved.sort((a, b) => statusRangeSpan(a) - statusRangeSpan(b) || a.from - b.from);
  return { pages: resolved, contentType: contentType ?? DEFAULT_ERROR_PAGE_CONTENT_TYPE };
}

function resolveRoutes(inputs: readonly RouteInput[], serviceBreaker: (service: string) => CircuitBreakerSettings | false): RouteConfig[] {
  const names = routeNames(inputs);
  return inputs.map((input, index) => resolveRoute(input, index, names[index]!, serviceBreaker));
}

/** `serviceBreaker` gives the resolved breaker of a service, which a route's `circuitBreaker` keys go over. */
function resolveRoute(input: RouteInput, index: number, name: string, serviceBreaker: (service: string) => CircuitBreakerSettings | false): RouteConfig {
  const namespace = input.namespace !== undefined;
  // The shared fields written out in one literal: spreading them from an intermediate object cost ~5 µs a route (50 ms for 10,000).
  return {
    name,
    index,
    host: input.host,
    // `grpcService: pkg.Svc` is `path: /pkg.Svc` (a prefix ends at a segment): the calls of that gRPC service.
    path: input.grpcService !== undefined ? `/${input.grpcService}` : input.path,
    pathRegex: input.pathRegex,
    methods: input.methods,
    headers: input.headers,
    rewrite: input.rewrite,
    requestHeaders: headerPolicy(input.requestHeaders),
    responseHeaders: headerPolicy(input.responseHeaders),
    hostHeader: input.hostHeader ?? 'pass',
    timeouts: input.timeouts && defined({ headersMs: input.timeouts.headers, idleBodyMs: input.timeouts.idleBody, websocketIdleMs: input.timeouts.websocketIdle }),
    retries: input.retries === undefined ? undefined : retryOverride(input.retries),
    // The schema refuses a breaker on a namespace route, so a route with one has a service.
    circuitBreaker: input.circuitBreaker === undefined ? undefined : routeCircuitBreaker(serviceBreaker(input.service!), input.circuitBreaker),
    middlewares: input.middlewares ?? [],
    entryPoints: input.entryPoints,
    subset: input.subset && { match: input.subset.match, fallback: input.subset.fallback ?? 'any' },
    canary: input.canary && resolveCanary(input.canary),
    mirror: input.mirror && resolveMirror(input.mirror),
    unavailable: input.unavailable,
    ...(namespace ? { namespace: true, service: undefined, stripPrefix: input.namespace !== 'grpc' } : { namespace: false, service: input.service!, stripPrefix: input.stripPrefix ?? false }),
  };
}

function resolveCanary(input: CanaryInput): CanaryRouting {
  const split = Object.entries(input.split)
    .map(([value, weight]) => ({ value, weight }))
    .sort((a, b) => b.weight - a.weight);
  const lanes = (input.lanes ?? []).map((lane) => ({ header: lane.header, cookie: lane.cookie, value: lane.value, to: lane.to }));
  return { by: input.by, split, lanes, fallback: input.fallback ?? 'any' };
}

function resolveMirror(input: MirrorInput): MirrorRouting {
  return {
    service: input.service,
    percent: input.percent ?? 100,
    body: input.body ?? true,
    maxBodyBytes: input.maxBodySize ?? DEFAULT_MIRROR_MAX_BODY_BYTES,
    timeoutMs: input.timeout ?? DEFAULT_MIRROR_TIMEOUT_MS,
    maxInFlight: input.maxInFlight ?? DEFAULT_MIRROR_MAX_IN_FLIGHT,
  };
}

/** A copy without the keys whose value is undefined, so spreading it never erases a default. */
function defined<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** The `redis:` section with its defaults: a 100 ms deadline, the `switchboard:` key prefix, one gateway. */
function resolveRedis(input: RedisInput | undefined): RedisSettings | undefined {
  if (!input) return undefined;
  const target: RedisTarget = input.url ? { kind: 'url', url: input.url } : input.sentinels ? { kind: 'sentinel', sentinels: input.sentinels, name: input.name ?? '' } : { kind: 'cluster', nodes: input.cluster ?? [] };
  return {
    target,
    password: input.password,
    ...defined({ tls: input.tls, auth: input.auth, sentinelAuth: input.sentinelAuth }),
    timeoutMs: input.timeout ?? DEFAULT_REDIS_TIMEOUT_MS,
    keyPrefix: input.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX,
    gateways: input.gateways ?? 1,
  };
}

/** The peer settings with defaults; the id is `<hostname>-<pid>` unless the file names one. */
function resolvePeers(input: { id?: string | undefined; ttl?: number | undefined; lagAfter?: number | undefined } | undefined): PeerSettings {
  return { id: input?.id, ttlMs: input?.ttl ?? DEFAULT_PEER_TTL_MS, lagAfterMs: input?.lagAfter ?? DEFAULT_PEER_LAG_AFTER_MS };
}
