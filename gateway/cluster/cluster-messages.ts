import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { UnconnectedRegistries } from '../../src/discovery/index.ts';
import { INSTANCE_PROTOCOLS, type Instance } from '../../src/discovery/instance.ts';
import type { ActiveHealth, EndpointHealth, HealthSnapshot } from '../../src/health/index.ts';
import type { RateLimitChange } from '../admin/event-types.ts';
import type { CachePurgeSelector } from '../middleware/cache/index.ts';
import type { BreakerChange } from '../policy/breaker-change.ts';
import type { BreakerView, LimitsView } from '../policy/traffic-guards.ts';
import type { WireFlowEntry } from '../telemetry/index.ts';
import type { WireInstanceLoad } from './cluster-instance-load.ts';
import type { WireOutcomes } from './cluster-outcomes.ts';

/** Prefix of every message kind, so that the gateway's messages never mix with Node's or prom-client's. */
const PREFIX = 'switchboard:';

/** How often a worker's timer sends its heartbeat: only a blocked event loop stops it, and it costs requests nothing. */
export const HEARTBEAT_INTERVAL_MS = 1_000;

/** What the primary sends a worker, in this order: the configuration first, then health and services as they change. */
export type PrimaryMessage =
  /**
   * The configuration file's text as the primary validated it (`path` resolves relative files); applied at start and on every reload.
   * `sequence` and `digest` are its identity (`ConfigIdentity`), which the worker's `config-result` echoes.
   * `listenText`, when a reload changed the text, is the one the gateway started with: a worker
   * forked since starts its listeners from it (an entry point's address waits for a restart), then
   * applies `text`, as the workers forked at the start did.
   */
  | { readonly kind: 'switchboard:config'; readonly path: string; readonly text: string; readonly listenText?: string; readonly workers: number; readonly sequence: number; readonly digest: string }
  /** The whole endpoint set of one service (never a delta). */
  | { readonly kind: 'switchboard:health'; readonly snapshot: HealthSnapshot }
  /** Every service some registry lists. */
  | { readonly kind: 'switchboard:services'; readonly names: readonly string[] }
  /** The registries not yet connected, and the services listed that lost every instance set meanwhile (`DiscoveryAggregator.unconnected$`); sent on attach and on every change only. */
  | { readonly kind: 'switchboard:unconnected'; readonly state: UnconnectedRegistries }
  /** Stop accepting, drain in-flight requests within the drain bound, then exit. */
  | { readonly kind: 'switchboard:drain' }
  | { readonly kind: 'switchboard:metrics-request'; readonly id: number }
  /** Drop the answers `selector` picks from the worker's caches (`POST /api/cache/purge`); answered by `cache-purged` with the same id. */
  | { readonly kind: 'switchboard:cache-purge'; readonly id: number; readonly selector: CachePurgeSelector }
  /** How many gateways share the config store (the rate limiter's Redis fallback divides by it). */
  | { readonly kind: 'switchboard:peers'; readonly count: number };

/** What a worker did with a configuration text the primary sent (see `config-result`). */
export type ConfigOutcome = 'taken' | 'refused' | 'superseded';

/** What a worker sends the primary. */
export type WorkerMessage =
  /** The worker listens for messages; the primary answers with the configuration. */
  | { readonly kind: 'switchboard:ready' }
  /** Sent every `HEARTBEAT_INTERVAL_MS` from a timer: the worker's event loop runs (any message shows that too). */
  | { readonly kind: 'switchboard:heartbeat' }
  /** Why the worker is about to exit at start-up (a bind error, a certificate), for the primary's error. */
  | { readonly kind: 'switchboard:failed'; readonly reason: string }
  | { readonly kind: 'switchboard:listening'; readonly ports: readonly (readonly [string, number])[] }
  /**
   * The outcome of the `config` message of that `sequence` and `digest`: `taken` (at start too, once the worker
   * listens), `refused` (the worker keeps its running configuration; `reason` says why) or `superseded` (dropped
   * untried because the primary has sent a newer one, which is next in the worker's queue).
   */
  | { readonly kind: 'switchboard:config-result'; readonly sequence: number; readonly digest: string; readonly outcome: ConfigOutcome; readonly reason?: string }
  | { readonly kind: 'switchboard:outcomes'; readonly outcomes: WireOutcomes }
  /** One rolled second of flow statistics (epoch second), for the primary's rings and store; sent once a second when there was traffic. */
  | { readonly kind: 'switchboard:flow'; readonly second: number; readonly entries: readonly WireFlowEntry[] }
  /** Requests the worker is serving now; sent when the number changes, at most once per outcome flush. */
  | { readonly kind: 'switchboard:load'; readonly inFlight: number }
  /** Requests the worker has in flight to each instance (non-zero ones; empty once none); sent when it changed, at most once a second. */
  | { readonly kind: 'switchboard:instance-load'; readonly load: WireInstanceLoad }
  | { readonly kind: 'switchboard:metrics'; readonly id: number; readonly metrics: MetricObjectWithValues<MetricValue<string>>[] }
  /** The answers the worker dropped for the `cache-purge` of that id. */
  | { readonly kind: 'switchboard:cache-purged'; readonly id: number; readonly purged: number }
  /** A rate limit of the worker lost or regained its Redis; the primary reports it in its admin events. */
  | { readonly kind: 'switchboard:rate-limit-change'; readonly change: RateLimitChange }
  /** The worker's breakers and caps (each worker keeps its own), with the state changes since the last such message. */
  | { readonly kind: 'switchboard:breakers'; readonly worker: number; readonly breakers: BreakerView[]; readonly services: LimitsView[]; readonly changes: BreakerChange[] };

/** True for a message this protocol defines (by its kind's prefix); anything else is not the gateway's and is ignored. */
export function isGatewayMessage<T extends { kind: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { kind?: unknown }).kind === 'string' && (message as { kind: string }).kind.startsWith(PREFIX);
}

const ACTIVE: ReadonlySet<string> = new Set<ActiveHealth>(['unknown', 'healthy', 'unhealthy']);
const PROTOCOLS: ReadonlySet<string> = new Set(INSTANCE_PROTOCOLS);

/**
 * A health snapshot received over IPC, checked field by field and rebuilt as plain values; undefined
 * when anything is malformed (a worker then keeps its previous snapshot rather than route on a guess).
 */
export function decodeHealthSnapshot(value: unknown): HealthSnapshot | undefined {
  if (!isRecord(value) || typeof value.service !== 'string' || typeof value.panic !== 'boolean' || !Array.isArray(value.endpoints)) return undefined;
  const endpoints: EndpointHealth[] = [];
  for (const entry of value.endpoints) {
    const endpoint = decodeEndpoint(entry);
    if (!endpoint) return undefined;
    endpoints.push(endpoint);
  }
  return { service: value.service, endpoints, panic: value.panic };
}

function decodeEndpoint(value: unknown): EndpointHealth | undefined {
  if (!isRecord(value) || typeof value.address !== 'string' || typeof value.inRegistry !== 'boolean' || typeof value.ejected !== 'boolean' || typeof value.routable !== 'boolean') return undefined;
  if (typeof value.active !== 'string' || !ACTIVE.has(value.active)) return undefined;
  const instance = decodeInstance(value.instance);
  if (!instance) return undefined;
  const endpoint = { address: value.address, instance, inRegistry: value.inRegistry, active: value.active as ActiveHealth, ejected: value.ejected, routable: value.routable };
  return typeof value.ejectedUntil === 'number' ? { ...endpoint, ejectedUntil: value.ejectedUntil } : endpoint;
}

function decodeInstance(value: unknown): Instance | undefined {
  if (!isRecord(value) || typeof value.id !== 'string' || typeof value.service !== 'string' || typeof value.host !== 'string') return undefined;
  if (typeof value.port !== 'number' || typeof value.weight !== 'number' || typeof value.protocol !== 'string' || !PROTOCOLS.has(value.protocol)) return undefined;
  if (!isRecord(value.metadata) || !Object.values(value.metadata).every((entry) => typeof entry === 'string')) return undefined;
  const instance: Instance = {
    id: value.id,
    service: value.service,
    host: value.host,
    port: value.port,
    weight: value.weight,
    protocol: value.protocol as Instance['protocol'],
    metadata: value.metadata as Record<string, string>,
    ...(value.protocolDefaulted === true ? { protocolDefaulted: true } : {}),
    ...(value.draining === true ? { draining: true } : {}),
  };
  return instance;
}

/** The registries not yet connected received over IPC, rebuilt as plain values; undefined when malformed (a worker then keeps what it had). */
export function decodeUnconnected(value: unknown): UnconnectedRegistries | undefined {
  if (!isRecord(value) || !isNameList(value.registries) || !isNameList(value.unlisted)) return undefined;
  return { registries: [...value.registries], unlisted: [...value.unlisted] };
}

function isNameList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((entry) => typeof entry === 'string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A worker's rate-limit change as received over IPC: checked and rebuilt as plain values; undefined when malformed. */
export function decodeRateLimitChange(value: unknown): RateLimitChange | undefined {
  if (!isRecord(value) || !isRecord(value.data) || typeof value.data.middleware !== 'string') return undefined;
  const { data } = value;
  const middleware = data.middleware as string;
  const worker = typeof data.worker === 'number' ? data.worker : null;
  if (value.type === 'rate-limit-fallback' && (data.onRedisError === 'local' || data.onRedisError === 'allow' || data.onRedisError === 'deny') && typeof data.reason === 'string') {
    return { type: 'rate-limit-fallback', data: { middleware, onRedisError: data.onRedisError, reason: data.reason, worker } };
  }
  if (value.type === 'rate-limit-recovered' && typeof data.downMs === 'number') return { type: 'rate-limit-recovered', data: { middleware, downMs: data.downMs, worker } };
  return undefined;
}
