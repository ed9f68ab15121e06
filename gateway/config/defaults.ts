import { DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_UNHEALTHY_THRESHOLD } from '../../src/health/active-checker.ts';
import { DEFAULT_PANIC_THRESHOLD_PERCENT, DEFAULT_REMOVAL_GRACE_MS } from '../../src/health/endpoint-set.ts';
import {
  DEFAULT_BASE_EJECTION_MS,
  DEFAULT_CONSECUTIVE_ERRORS,
  DEFAULT_EJECTION_DECAY_INTERVAL_MS,
  DEFAULT_MAX_EJECTION_MS,
  DEFAULT_MAX_EJECTION_PERCENT,
} from '../../src/health/outlier-detector.ts';
import type { HealthCheckSettings, ListenAddress, OutlierDetectionSettings, PathSettings, RetryPolicy, ServerLimits, StickySettings, TracingSettings, UpstreamTimeouts, UpstreamTlsSettings } from './types.ts';

/** Upstream TLS verifies against the system roots and the instance host unless told otherwise. */
export const DEFAULT_UPSTREAM_TLS: UpstreamTlsSettings = { caFile: undefined, serverName: undefined, verify: true, certFile: undefined, keyFile: undefined, files: undefined };

/** Every interface, port 8080. */
export const DEFAULT_LISTEN: ListenAddress = { host: undefined, port: 8080 };
/** The admin API answers on loopback only unless configured otherwise (it exposes internals). */
export const DEFAULT_ADMIN: ListenAddress = { host: '127.0.0.1', port: 9180 };
/** Shortest admin token accepted: 16 characters leave guessing hopeless even for a short alphabet. */
export const ADMIN_TOKEN_MIN_LENGTH = 16;

/** Weights from the registry matter by default: nginx's smooth weighted round-robin. */
export const DEFAULT_BALANCER = { algorithm: 'weighted-round-robin' } as const;

/**
 * Connect 2 s (above the 1 s of a first SYN retransmission, short enough to fail over fast),
 * response headers 30 s, idle body 60 s (nginx's `proxy_read_timeout`).
 */
export const DEFAULT_UPSTREAM_TIMEOUTS: UpstreamTimeouts = { connectMs: 2_000, headersMs: 30_000, idleBodyMs: 60_000, websocketIdleMs: 3_600_000 };

/** Three attempts in all, after failures that cannot have reached a handler (plus resets of idempotent requests). */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 3, retryOn: ['connect-failure', 'reset'] };

/** Used when a service turns `healthCheck` on; active checks are off by default (registry agents probe). */
export const DEFAULT_HEALTH_CHECK: HealthCheckSettings = {
  type: 'http',
  path: '/health',
  expectedStatuses: [{ from: 200, to: 299 }],
  hostHeader: undefined,
  grpcService: '',
  port: undefined,
  protocol: undefined,
  intervalMs: DEFAULT_CHECK_INTERVAL_MS,
  unhealthyIntervalMs: DEFAULT_CHECK_INTERVAL_MS,
  timeoutMs: DEFAULT_CHECK_TIMEOUT_MS,
  healthyThreshold: DEFAULT_HEALTHY_THRESHOLD,
  unhealthyThreshold: DEFAULT_UNHEALTHY_THRESHOLD,
};

/** Envoy's outlier detection defaults; on by default. */
export const DEFAULT_OUTLIER_DETECTION: OutlierDetectionSettings = {
  consecutiveErrors: DEFAULT_CONSECUTIVE_ERRORS,
  baseEjectionMs: DEFAULT_BASE_EJECTION_MS,
  maxEjectionMs: DEFAULT_MAX_EJECTION_MS,
  maxEjectionPercent: DEFAULT_MAX_EJECTION_PERCENT,
  decayIntervalMs: DEFAULT_EJECTION_DECAY_INTERVAL_MS,
};

export { DEFAULT_PANIC_THRESHOLD_PERCENT, DEFAULT_REMOVAL_GRACE_MS };

/**
 * Node's 16 KiB header limit; 10 s to send headers (HAProxy's usual `timeout http-request`, against
 * slowloris); 5 min for a whole request (Node's default, room for uploads); 75 s keep-alive
 * (nginx's, above the 60 s idle timeout of common cloud load balancers in front).
 */
export const DEFAULT_SERVER_LIMITS: ServerLimits = { maxHeaderSize: 16_384, headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 75_000 };

/** nginx stream's `proxy_timeout` (10 min): long enough for idle database and cache connections with keep-alives. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10 * 60_000;

/** Below Kubernetes' default 30 s termination grace, so the drain ends before SIGKILL. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25_000;

/** nginx's `merge_slashes on`; escaped slashes kept encoded, Envoy's default (`KEEP_UNCHANGED`). */
export const DEFAULT_PATH_SETTINGS: PathSettings = { mergeSlashes: true, escapedSlashes: 'keep' };

/** The largest `workers` count accepted; more processes than this only add memory and contention. */
export const WORKERS_MAX = 256;
/**
 * A worker silent this long (no heartbeat: its event loop is blocked) is killed and replaced. Far
 * above what legitimate work blocks a worker for (parsing a file of 5,000 routes and 1,000 services
 * took 0.4–1.4 s, a full garbage collection of a large heap takes about a second), yet it ends a
 * stuck worker's hold on its connections in seconds; Kubernetes' liveness probe gives up after 30 s.
 */
export const DEFAULT_WORKER_HEARTBEAT_TIMEOUT_MS = 10_000;
/** The shortest heartbeat bound accepted: three heartbeats, so one late message never kills a worker. */
export const WORKER_HEARTBEAT_TIMEOUT_MIN_MS = 3_000;

/** A Redis command's deadline: a rate limit waits at most this long before it falls back. */
export const DEFAULT_REDIS_TIMEOUT_MS = 100;

/** Prepended to every Redis key the gateway writes. */
export const DEFAULT_REDIS_KEY_PREFIX = 'switchboard:';
/** Tracing defaults: the OpenTelemetry SDK's batch processor defaults (queue 2048, batch 512, 5 s, 30 s export timeout shortened to 10 s), every trace sampled. */
export const DEFAULT_TRACING: Omit<TracingSettings, 'endpoint' | 'headers'> = {
  sampleRatio: 1,
  serviceName: 'switchboard',
  maxQueueSize: 2_048,
  maxBatchSize: 512,
  flushIntervalMs: 5_000,
  exportTimeoutMs: 10_000,
};

/** Deadline of each config store read, and how long a start waits for the store before falling back to its snapshot. */
export const DEFAULT_CONFIG_STORE_TIMEOUT_MS = 5_000;
/** How long a dead gateway stays listed among the peers at most: its lease TTL or session timeout. */
export const DEFAULT_PEER_TTL_MS = 10_000;

/** A peer behind the newest applied store revision for longer than this is shown as lagging. */
export const DEFAULT_PEER_LAG_AFTER_MS = 5_000;

/** A mirrored request's body is copied up to this size (Traefik's `maxBodySize` has none; Envoy buffers a shadow's whole body). */
export const DEFAULT_MIRROR_MAX_BODY_BYTES = 64 * 1024;
/** The longest one mirror copy may take, from its send to the end of its answer. */
export const DEFAULT_MIRROR_TIMEOUT_MS = 5_000;
/** Mirror copies of one route in flight at once; one more is dropped, so a slow mirror holds bounded memory. */
export const DEFAULT_MIRROR_MAX_IN_FLIGHT = 100;
/**
 * The sticky cookie of `sticky: true`: a session cookie for the whole site, kept from scripts, its
 * name the service's own (`stickyCookieName`), so that two services on one site keep apart cookies.
 */
export const DEFAULT_STICKY_COOKIE: StickySettings['cookie'] = { name: undefined, path: '/', maxAgeSeconds: undefined, secure: false, httpOnly: true, sameSite: undefined };

/** `cache` holds 64 MiB of answers by default (APISIX proxy-cache's memory zone is 50m). */
export const DEFAULT_CACHE_MAX_BYTES = 64 * 1_048_576;
