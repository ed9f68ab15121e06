import { createHash } from 'node:crypto';
import type { ServiceBalancerOptions } from '../../src/balance/service-balancer.ts';
import type { RawInstance } from '../../src/discovery/instance-codec.ts';
import type { ActiveCheckOptions } from '../../src/health/active-checker.ts';
import { httpProbe, type ProbeTlsOptions } from '../../src/health/probe-http.ts';
import { tcpProbe } from '../../src/health/probe-tcp.ts';
import { probeOnPort, probeSpeaking } from '../../src/health/probe.ts';
import { componentLogger } from '../../src/logger.ts';
import type { CircuitBreakerSettings } from './types-breaker.ts';
import type { GatewayConfig, HealthCheckSettings, RetryCondition, RouteConfig, ServiceSettings, StickyCookie } from './types.ts';

/** Where active checks hint that a service's instances registered by IP need `tls.serverName`, as traffic does. */
const PROBE_HINT_LOG = componentLogger('health-checker');

/** The settings of `service`: its `services` entry merged over `defaults`, or `defaults` when it is not declared. */
export function serviceSettings(config: GatewayConfig, service: string): ServiceSettings {
  return config.services.get(service) ?? config.defaults;
}

/**
 * The core's options for `createServiceBalancer` of `service`: the balancer (sticky when the settings
 * say so and `service` is given), active checks (with a built probe
 * that speaks each instance's protocol with the service's TLS settings, as traffic does), outlier
 * detection, panic, grace.
 */
export function serviceBalancerOptions(settings: ServiceSettings, service?: string): ServiceBalancerOptions {
  return {
    balancer: settings.balancer,
    // The service's name salts its sticky ids: the same in every worker and after a restart.
    ...(settings.sticky && service !== undefined ? { stickySalt: service } : {}),
    ...(settings.slowStart ? { slowStart: settings.slowStart } : {}),
    health: {
      ...(settings.healthCheck ? { active: activeCheckOptions(settings.healthCheck, upstreamConnection(settings).tls) } : {}),
      outlier: settings.outlierDetection,
      panicThresholdPercent: settings.panicThresholdPercent,
      removalGraceMs: settings.removalGraceMs,
    },
  };
}

function activeCheckOptions(check: HealthCheckSettings, tls: UpstreamConnection['tls']): ActiveCheckOptions {
  const probeTls: ProbeTlsOptions = Object.fromEntries(Object.entries({ ...tls }).filter(([, value]) => value !== undefined));
  const checked =
    check.type === 'tcp'
      ? tcpProbe()
      : httpProbe({ path: check.path, expectedStatuses: check.expectedStatuses, tls: probeTls, grpcService: check.grpcService, tlsHintLog: PROBE_HINT_LOG, ...(check.hostHeader ? { hostHeader: check.hostHeader } : {}) });
  const spoken = check.type === 'http' && check.protocol !== undefined ? probeSpeaking(checked, check.protocol) : checked;
  return {
    probe: check.port === undefined ? spoken : probeOnPort(spoken, check.port),
    intervalMs: check.intervalMs,
    unhealthyIntervalMs: check.unhealthyIntervalMs,
    timeoutMs: check.timeoutMs,
    healthyThreshold: check.healthyThreshold,
    unhealthyThreshold: check.unhealthyThreshold,
  };
}

/** How the transports connect to the instances of a service: what their connections are keyed by. */
export interface UpstreamConnection {
  readonly connectTimeoutMs: number;
  /** TLS for `https`, `h2` and `grpcs` instances, as plain values (PEM text). */
  readonly tls: {
    readonly ca: string | undefined;
    readonly cert: string | undefined;
    readonly key: string | undefined;
    readonly serverName: string | undefined;
    readonly verify: boolean;
  };
  /** Connections per instance (`concurrency.maxConnections`); undefined: the transports' default. */
  readonly maxConnections: number | undefined;
  /** Equal for equal settings (the files by digest), so services with the same settings share connections. */
  readonly key: string;
}

const connections = new WeakMap<ServiceSettings, UpstreamConnection>();

/** The connection settings of a service, computed once per settings object. */
export function upstreamConnection(settings: ServiceSettings): UpstreamConnection {
  let connection = connections.get(settings);
  if (!connection) {
    const { tls } = settings;
    const files = tls.files;
    connection = {
      connectTimeoutMs: settings.timeouts.connectMs,
      tls: { ca: files?.ca?.text, cert: files?.cert?.text, key: files?.key?.text, serverName: tls.serverName, verify: tls.verify },
      maxConnections: settings.concurrency.maxConnections,
      key: [settings.timeouts.connectMs, tls.verify, tls.serverName ?? '', files?.ca?.sha256 ?? '', files?.cert?.sha256 ?? '', files?.key?.sha256 ?? ''].join(',') + (settings.concurrency.maxConnections === undefined ? '' : `,max=${settings.concurrency.maxConnections}`),
    };
    connections.set(settings, connection);
  }
  return connection;
}

/** What the proxy needs for one request: attempts and timeouts of the service with the route's overrides applied. */
export interface UpstreamPolicy {
  /** Further attempts after the first (`attempts - 1`). */
  readonly retries: number;
  readonly retryOn: readonly RetryCondition[];
  readonly connectTimeoutMs: number;
  readonly connection: UpstreamConnection;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly websocketIdleTimeoutMs: number;
  /** The service's sticky cookie; undefined when sticky sessions are off. */
  readonly sticky: StickyCookie | undefined;
}

/**
 * The policy for a request to `service` with `settings` through `route`; cheap, but callers may
 * cache it per route and service. `service` names the sticky cookie when its settings name none.
 */
export function upstreamPolicy(settings: ServiceSettings, route?: RouteConfig, service = ''): UpstreamPolicy {
  const attempts = route?.retries?.attempts ?? settings.retries.attempts;
  return {
    retries: Math.max(0, attempts - 1),
    retryOn: route?.retries?.retryOn ?? settings.retries.retryOn,
    connectTimeoutMs: settings.timeouts.connectMs,
    connection: upstreamConnection(settings),
    headersTimeoutMs: callTimeout(route?.timeouts?.headersMs ?? settings.timeouts.headersMs, route?.circuitBreaker ?? settings.circuitBreaker),
    bodyTimeoutMs: route?.timeouts?.idleBodyMs ?? settings.timeouts.idleBodyMs,
    websocketIdleTimeoutMs: route?.timeouts?.websocketIdleMs ?? settings.timeouts.websocketIdleMs,
    sticky: settings.sticky ? { ...settings.sticky.cookie, name: settings.sticky.cookie.name ?? stickyCookieName(service) } : undefined,
  };
}

/** Hex characters of the service's hash in its default sticky cookie name (Traefik's default name is 6 of SHA-1's). */
const STICKY_NAME_HASH_HEX_CHARS = 8;

/**
 * The default name of `service`'s sticky cookie: `sb_sticky_` and the start of the SHA-256 of its
 * name, as Traefik names a service's cookie by a hash of the service. One name for every service
 * would make two sticky services on one site overwrite each other's cookie at each request, so a
 * client moving between them would stick to neither.
 */
export function stickyCookieName(service: string): string {
  return `sb_sticky_${createHash('sha256').update(service).digest('hex').slice(0, STICKY_NAME_HASH_HEX_CHARS)}`;
}

/** A breaker's per-call `timeout` shortens the wait for response headers (0, off, yields to it). */
function callTimeout(headersMs: number, breaker: CircuitBreakerSettings | false): number {
  const callMs = breaker ? breaker.timeoutMs : undefined;
  if (callMs === undefined || callMs === 0) return headersMs;
  return headersMs === 0 ? callMs : Math.min(headersMs, callMs);
}

/**
 * The retry condition an upstream failure falls under, or undefined when none does (a failure
 * after response headers, a 5xx answer or a client cancel are never retried). Whether the method
 * and the consumed request body allow the retry is the proxy's separate question.
 */
export function retryConditionOf(errorClass: string): RetryCondition | undefined {
  switch (errorClass) {
    // A failed TLS handshake sent nothing, like a refused connection; another instance may hold a good certificate.
    case 'connect-refused':
    case 'connect-timeout':
    case 'upstream-tls':
      return 'connect-failure';
    case 'reset-before-headers':
    case 'upstream-protocol':
    case 'http2-protocol-error':
    case 'upstream-refused':
      return 'reset';
    case 'headers-timeout':
      return 'headers-timeout';
    default:
      return undefined;
  }
}

/**
 * The static `instances` of every declared service, as raw registry entries for `StaticProvider.replace`
 * (services without static instances are left out). Entries are decoded by the core's instance codec.
 */
export function staticInstanceLists(config: GatewayConfig): Map<string, RawInstance[]> {
  const lists = new Map<string, RawInstance[]>();
  for (const [service, settings] of config.services) {
    if (settings.instances.length === 0) continue;
    lists.set(
      service,
      settings.instances.map((instance) => {
        const address = instance.host.includes(':') ? `[${instance.host}]:${instance.port}` : `${instance.host}:${instance.port}`;
        const payload = Object.fromEntries(Object.entries({ ...instance, service }).filter(([, value]) => value !== undefined));
        return { service, name: instance.id ?? address, data: JSON.stringify(payload) };
      }),
    );
  }
  return lists;
}
