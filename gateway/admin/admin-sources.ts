import type { Observable } from 'rxjs';
import type { BreakerChange } from '../policy/breaker-change.ts';
import type { DiscoveryAggregator } from '../../src/discovery/index.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import type { GatewayConfig } from '../config/index.ts';
import type { StoreLocation } from '../config-store/store-layout.ts';
import type { CachePurgeSelector } from '../middleware/cache/index.ts';
import type { ServiceBalancers } from '../service-registry.ts';
import type { FlowStats, InstanceTraffic } from '../telemetry/index.ts';
import type { CachePurgeResult } from './cache-purge-api.ts';
import type { EndpointState } from './event-types.ts';
import { healthVerdict } from './health-state.ts';

/** A provider of the running gateway: its name (which tags snapshots and statuses), URL and kind. */
export interface RegistryRef {
  readonly name: string;
  /** As configured; undefined for the static instances of the configuration file. */
  readonly url: string | undefined;
  readonly kind: 'zookeeper' | 'etcd' | 'file' | 'static';
}

/** Whether the gateway takes traffic now, as `/ready` answers it; `reason` says why not (null when ready). */
export interface Readiness {
  readonly ready: boolean;
  readonly reason: string | null;
}

/** The readiness of a gateway that started to stop: load balancers should stop sending while it drains. */
export const DRAINING: Readiness = { ready: false, reason: 'draining: the gateway is stopping' };

/** Everything of the running gateway that the admin API reads; it writes only to the config store and, by a purge, to the caches. */
export interface AdminSources {
  readonly aggregator: DiscoveryAggregator;
  readonly balancers: ServiceBalancers;
  readonly traffic: InstanceTraffic;
  /** Flow statistics per service, route, consumer and instance (a primary's sum its workers' counts), for `/api/stats`. */
  readonly flow?: FlowStats;
  /** Providers in configuration order, static instances last. */
  readonly registries: readonly RegistryRef[];
  /** The configuration in force. */
  config(): GatewayConfig;
  /** The configuration the entry points' listeners were started with (a reload changes none of them); `config()` when absent. */
  listening?(): GatewayConfig;
  /**
   * Whether the gateway takes connections, for `/ready`: one process from when its entry points
   * listen until its drain starts; with `workers`, while at least one worker listens.
   */
  readonly ready: () => Readiness;
  /** The Prometheus text of `/metrics`; this process's registry when absent (a primary aggregates its workers'). */
  readonly metrics?: () => Promise<string>;
  /** Circuit breakers and caps, for `/api/breakers`; its changes for `/api/events`. */
  readonly breakers?: { view(): unknown; readonly changes$: Observable<BreakerChange> };
  /**
   * The load of each instance where this process's balancers do not see it: with `workers`, what
   * each worker last reported (at most a second old), its requests in flight summed and the mean of
   * its latency estimates (undefined when no worker has one); absent in one process.
   */
  readonly instanceLoad?: {
    inFlight(service: string, address: string): number;
    latencyMs(service: string, address: string): number | undefined;
  };
  /** The worker processes, for `/api/workers`; absent (and the path unknown) in a single-process gateway. */
  readonly workers?: () => unknown;
  /** The config store this gateway reads (fixed until a restart, whatever a reload says), where the store API writes; absent or undefined: writes answer 409. */
  readonly storeLocation?: () => (StoreLocation & { readonly timeoutMs?: number }) | undefined;
  /** The config store's state (URL, revision in force, refused objects) for `/api/config`; absent without one. */
  readonly configStore?: () => unknown;
  /**
   * Drops the answers a purge selects from every process's caches, for `POST /api/cache/purge`: with
   * `workers`, the primary asks each worker (bounded); this process's own caches when absent.
   */
  readonly purgeCaches?: (selector: CachePurgeSelector) => Promise<CachePurgeResult>;
  /** The gateways sharing the config store, for `/api/peers`; absent (and the path unknown) without `configStore`. */
  readonly peers?: () => unknown;
}

/** The endpoints of a health snapshot with their admin health verdict and the provider that listed each. */
export function endpointStates(sources: Pick<AdminSources, 'aggregator' | 'balancers'>, snapshot: HealthSnapshot): EndpointState[] {
  const activeChecks = sources.balancers.settings(snapshot.service).healthCheck !== false;
  const origins = sources.aggregator.service(snapshot.service).current()?.sources;
  return snapshot.endpoints.map((endpoint) => ({
    address: endpoint.address,
    instance: endpoint.instance,
    source: endpoint.inRegistry ? origins?.get(endpoint.address) : undefined,
    inRegistry: endpoint.inRegistry,
    health: healthVerdict(endpoint, activeChecks),
    routable: endpoint.routable,
    ejectedUntil: endpoint.ejectedUntil,
  }));
}
