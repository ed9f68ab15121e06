import { merge, Subject } from 'rxjs';
import { createProvider, DiscoveryAggregator, StaticProvider, type DiscoveryProvider, type ForgettingOptions } from '../src/discovery/index.ts';
import { errorMessage } from '../src/errors.ts';
import { componentLogger, type Logger } from '../src/logger.ts';
import { startAdmin, type AdminListener, type AdminSources, type ConfigChange, type Readiness, type RegistryRef } from './admin/index.ts';
import { servicesNamedIn, staticInstanceLists, type GatewayConfig } from './config/index.ts';
import { configStoreState, onApplied } from './config-store/store-status.ts';
import type { PeerSet } from './config-store/peer-set.ts';
import { rateLimitChanges } from './middleware/index.ts';
import { restartOnlyChanges } from './restart-only-changes.ts';
import { registryBalancerSource, ServiceBalancers } from './service-registry.ts';
import { configReloadsTotal, FlowStats, forgetServiceSeries, InstanceTraffic, recordInstances } from './telemetry/index.ts';

/** The part of a gateway that talks to registries and backends' health and serves the admin API. */
export interface ControlPlane {
  /** The port of the admin listener; undefined with `admin: false`. */
  readonly adminPort: number | undefined;
  readonly aggregator: DiscoveryAggregator;
  readonly balancers: ServiceBalancers;
  /** Per-instance request and error counters, as the admin view shows them. */
  readonly traffic: InstanceTraffic;
  /** The configuration in force. */
  config(): GatewayConfig;
  /** Applies a new configuration to balancers, health checks and static instances. */
  apply(config: GatewayConfig): void;
  /** Records a configuration change that was refused (the running configuration stays): counted and reported as an admin event. */
  refuse(error: unknown): void;
  /** This gateway among its peers in the config store; undefined without `configStore`. */
  readonly peers: PeerSet | undefined;
  /** Removes this gateway's peer entry (bounded); call before draining, so that other gateways and operators see it leave. Idempotent. */
  leave(): Promise<void>;
  /** Leaves, then closes the admin listener, the balancers and their checks, and the registry sessions. */
  close(): Promise<void>;
}

/** The readiness of a control plane alone: it runs no entry point, so the gateway it belongs to says when it serves. */
const NOT_SERVING = (): Readiness => ({ ready: false, reason: 'no entry point is listening' });

/** How long a stopping gateway waits for the store to confirm its peer entry is gone (it goes with its lease or session otherwise). */
export const PEER_LEAVE_TIMEOUT_MS = 2_000;

/** What the control plane takes besides its configuration. */
export interface ControlPlaneOptions {
  readonly log?: Logger;
  /** The counters the admin view shows; a new one (feeding no metric) by default. */
  readonly traffic?: InstanceTraffic;
  /** Flow statistics the admin API serves; the control plane starts its roll and stops it on close. A new one by default. */
  readonly flow?: FlowStats;
  /** Admin extras of a multi-process gateway (aggregated metrics, the workers view). */
  readonly admin?: Pick<AdminSources, 'metrics' | 'workers' | 'breakers' | 'purgeCaches' | 'instanceLoad'> & Partial<Pick<AdminSources, 'ready'>>;
}

/**
 * Starts the providers of every registry (and the file's static instances), the aggregator, a
 * balancer per service with its health checks, and the admin listener; rejects, with nothing left
 * running, when the admin listener cannot bind.
 */
export async function startControlPlane(initial: GatewayConfig, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? componentLogger('gateway');
  let config = initial;

  // 1. Providers: every registry, plus the static instances declared in the file.
  const staticInstances = new StaticProvider('static');
  staticInstances.replace(staticInstanceLists(config));
  const providers = [...config.registries.map((registry) => createProvider(registry.location, registry.credentials, registry.snapshotPath === undefined ? undefined : { path: registry.snapshotPath })), staticInstances];
  // What each registry provider runs with, by position: the list waits for a restart, credentials do not.
  const running: RunningRegistry[] = config.registries.map((registry) => ({ url: registry.url, sha256: registry.credentials?.sha256 }));
  const registries: RegistryRef[] = providers.map((provider, index) => {
    const registry = config.registries[index];
    return { name: provider.name, url: registry?.url, kind: registry?.location.kind ?? 'static' };
  });

  // 2. One LoadBalanceConf per service, merged, deduplicated and throttled.
  // A mass removal right after a registry outage is held (self-preservation), see RemovalProtection.
  const aggregator = new DiscoveryAggregator(providers, { protection: config.removalProtection, forgetting: forgettingOf(config) });

  // 3. A balancer per service (with active and passive health), built as soon as a registry lists it.
  const balancers = new ServiceBalancers(registryBalancerSource(aggregator), config);
  const flow = options.flow ?? new FlowStats();
  const traffic = options.traffic ?? new InstanceTraffic(undefined, flow);
  const healthWatch = balancers.health$.subscribe((snapshot) => {
    recordInstances(snapshot);
    traffic.retain(snapshot.service, snapshot.endpoints.map((endpoint) => endpoint.address));
  });
  // A forgotten service leaves no counters and no metric series (its balancer is gone already).
  const forgetWatch = balancers.forgotten$.subscribe((service) => {
    traffic.retain(service, []);
    flow.forget(service);
    void forgetServiceSeries(service);
  });

  // 4. The admin listener: JSON views, live events, metrics and the dashboard, all read-only.
  const configChanges = new Subject<ConfigChange>();
  let peers: PeerSet | undefined;
  // With a config store, ready only once a configuration read from it is in force (`withSharedConfiguration`).
  // Only a gateway that started with one: `configStore` is restart-only, and a reload that adds it (a
  // typo in its URL, a store down) must not take a serving fleet out of its load balancers.
  const startedWithStore = configStoreState.location() !== undefined;
  let sharedApplied = configStoreState.isShared(initial);
  const serving = options.admin?.ready ?? NOT_SERVING;
  const ready = () => (startedWithStore ? withSharedConfiguration(serving(), sharedApplied) : serving());
  const sources: AdminSources = { aggregator, balancers, traffic, flow, registries, config: () => config, listening: () => initial, storeLocation: () => configStoreState.location(), configStore: () => configStoreState.current(), ...options.admin, ready, ...(config.configStore ? { peers: () => peers?.view() } : {}) };
  let admin: AdminListener | undefined;
  let stopReporting = () => {};
  const leave = async () => {
    stopReporting();
    await peers?.close(PEER_LEAVE_TIMEOUT_MS);
  };
  const release = async () => {
    await leave();
    await admin?.close();
    // Bounded by the store's own timeout (a Redis store flushes what it buffered).
    await flow.stop();
    configChanges.complete();
    healthWatch.unsubscribe();
    forgetWatch.unsubscribe();
    balancers.close();
    await aggregator.close();
  };
  aggregator.start();
  flow.start();
  try {
    // Rate-limit fallbacks come from this process's limiters, or from the workers' (the primary feeds them in).
    admin = config.admin ? await startAdmin(sources, merge(configChanges, rateLimitChanges, configStoreState.changes$), config.admin) : undefined;
  } catch (error) {
    await release();
    throw error;
  }
  // 5. Peers: this gateway's entry in the config store (with its admin address) and the list of the others.
  if (config.configStore) {
    const host = config.admin?.listen.host ?? '0.0.0.0';
    const adminAddress = admin ? `${host.includes(':') ? `[${host}]` : host}:${admin.port}` : null;
    // Loaded only with a store: a gateway without one never loads the registry clients it would use.
    const { startPeers } = await import('./config-store/peer-set.ts');
    const started = startPeers({ location: config.configStore, id: config.peers.id, ttlMs: config.peers.ttlMs, lagAfterMs: config.peers.lagAfterMs, admin: adminAddress, log });
    peers = started;
    // The entry carries the store revision this gateway applied, with its content's digest (the latest at once, then each new one).
    stopReporting = onApplied((applied) => started.update(applied));
  }

  return {
    adminPort: admin?.port,
    aggregator,
    balancers,
    traffic,
    get peers() {
      return peers;
    },
    leave,
    config: () => config,
    apply(next) {
      // Compared with what the listeners, the admin listener and the registry sessions were started
      // from (the primary's started file with workers, which the workers listen from too): a reload
      // applies none of these, so a change still waits after a later reload, and one undone does not.
      const restartOnly = restartOnlyChanges(initial, next);
      // Logged by the reload that changes one of them, not again by each later one (a store write,
      // an edit of a route): the config-applied event names them all until a restart.
      const changedNow = restartOnlyChanges(config, next);
      if (restartOnly.some((key) => changedNow.includes(key))) log.warn({ keys: restartOnly }, 'these settings apply only after a restart');
      reconnectChangedCredentials(running, next, providers, log);
      config = next;
      sharedApplied ||= configStoreState.isShared(next);
      balancers.apply(next);
      aggregator.configureProtection(next.removalProtection);
      aggregator.configureForgetting(forgettingOf(next));
      staticInstances.replace(staticInstanceLists(next));
      configReloadsTotal.inc({ result: 'applied' });
      configChanges.next({ type: 'config-applied', data: { routes: next.routes.length, services: next.services.size, restartRequired: restartOnly } });
      log.info({ routes: next.routes.length, services: next.services.size }, 'configuration applied');
    },
    refuse(error) {
      configReloadsTotal.inc({ result: 'refused' });
      configChanges.next({ type: 'config-refused', data: { reason: errorMessage(error) } });
    },
    close: release,
  };
}

/**
 * `/ready` of a gateway that reads a config store: not ready, however well it serves, until a
 * configuration composed from a listing read from the store since it started is in force. Until
 * then (the store did not answer at start) it serves the file alone or with its last-known-good
 * snapshot, whose age nothing bounds: routes, consumers and keys that its peers behind the same
 * load balancer no longer have, or lack what they have, so a load balancer should send it nothing
 * yet, and a rolling deploy should wait. Once read, an outage of the store keeps it ready: every
 * gateway then serves the same last listing, and taking them all out would stop the whole fleet.
 */
function withSharedConfiguration(serving: Readiness, sharedApplied: boolean): Readiness {
  const location = configStoreState.location();
  if (!serving.ready || sharedApplied || location === undefined) return serving;
  const status = configStoreState.current();
  const what = status?.source === 'snapshot' ? `the file with the store's last-known-good snapshot (revision ${status.revision})` : 'the configuration file alone';
  return { ready: false, reason: `no configuration read from the config store (${location.kind}) is in force yet: the gateway serves ${what}` };
}

/** When `config` lets services be forgotten, and those it names, which never are. */
function forgettingOf(config: GatewayConfig): ForgettingOptions {
  return { afterMs: config.forgetServicesAfterMs, retained: servicesNamedIn(config) };
}

/** A running registry provider's URL and the digest of the credentials it connects with. */
interface RunningRegistry {
  readonly url: string;
  sha256: string | undefined;
}

/**
 * Reconnects each running etcd or ZooKeeper registry whose entry in `next` (the same URL) has other credentials
 * (other files or paths, a new password): its provider starts a new session with them at once.
 * Matched by URL, not by place in the list: the list itself changes only with a restart, so after
 * a reload that added or removed a registry the running providers no longer line up with it.
 */
function reconnectChangedCredentials(running: readonly RunningRegistry[], next: GatewayConfig, providers: readonly DiscoveryProvider[], log: Logger): void {
  running.forEach((registry, index) => {
    const entry = next.registries.find((candidate) => candidate.url === registry.url);
    if (entry === undefined || entry.credentials?.sha256 === registry.sha256) return;
    registry.sha256 = entry.credentials?.sha256;
    log.info({ registry: registry.url }, 'registry credentials changed, reconnecting');
    providers[index]?.replaceCredentials?.(entry.credentials);
  });
}
