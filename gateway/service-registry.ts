import { map, Observable, Subject, type Subscription } from 'rxjs';
import { createServiceBalancer, createSubsetBalancer, nonePicker, SmoothSplit, type Balancer, type BalancerKeeper, type PickerSource, type ServiceBalancer, type ServiceHealth, type SubsetSelector } from '../src/balance/index.ts';
import type { Picker } from '../src/balance/picker.ts';
import type { DiscoveryAggregator } from '../src/discovery/index.ts';
import { withDefaultProtocol, type InstanceProtocol } from '../src/discovery/instance.ts';
import type { ServiceConf } from '../src/discovery/load-balance-conf.ts';
import { EndpointSet, type DepartedHealth, type EjectionHistory, type HealthSnapshot, type HealthView } from '../src/health/index.ts';
import { serviceBalancerOptions, serviceSettings, type CanaryRouting, type GatewayConfig, type RouteConfig, type ServiceSettings } from './config/index.ts';
import { routePicker, selectsSubsets, splitKey, type SubsetSources } from './route-picker.ts';
import { selectedSubsets, SubsetSource, subsetId, withReadOnlyRoutePicker, type SubsetEntry } from './service-registry-subset.ts';

/** Where the balancers of `ServiceBalancers` come from: the local registries, or a primary process over IPC. */
export interface BalancerSource {
  /**
   * The services some registry lists, as a whole list on every change. A service leaves it only when
   * it is forgotten (no registry or list names it any more, it has no instance, the configuration
   * names it nowhere, and the grace `forgetServicesAfter` is over), never because a registry is down.
   */
  readonly services$: Observable<readonly string[]>;
  /**
   * A new balancer of `service`, fed from this source's health and balanced with `settings`;
   * `previous` is what the balancer it replaces passes on (`CarriedHealth`), which a source with
   * health of its own starts from, and `keep` that balancer's keeper, whose balancer (in-flight counts,
   * latency, weights) it keeps when the balancer settings are the same; `health`, when the health
   * settings are the same, is that balancer's health, which a source with health of its own runs on
   * as it was (then `previous` is moot).
   */
  create(service: string, settings: ServiceSettings, previous?: CarriedHealth, keep?: BalancerKeeper, health?: ServiceHealth): ServiceBalancer;
  /** The registries not yet connected while none has given `service` an instance set (`DiscoveryAggregator.unconnectedRegistriesOf`); absent from a source that cannot tell. */
  unconnectedRegistriesOf?(service: string): readonly string[];
}

/** What a rebuild of a service with other health settings starts from (see `carriedHealth`). */
export interface CarriedHealth {
  /** The last snapshot of the build it replaces: its active verdicts, where they still hold, and its ejections. */
  readonly snapshot: HealthSnapshot | undefined;
  /** What it remembered of instances that left (`EndpointSet.departedHealth`): their ejections, their failing verdicts where those still hold, and the held ones that refused a connection. */
  readonly departed: DepartedHealth;
  /** Its counts of past ejections, of instances present and departed (`EndpointSet.ejectionHistory`). */
  readonly ejectionHistory: ReadonlyMap<string, EjectionHistory>;
  /**
   * True when the check asks something else now: the failing verdicts carried hold only until its
   * first answer. Else the addresses whose failing verdicts already answered another check than the
   * old build's (it had not yet asked them): the same holds for those.
   */
  readonly checkDiffers: boolean | ReadonlySet<string>;
}

/**
 * The balancers of a process that owns the registries: each service's instances from `aggregator`,
 * with its own active checks and outlier detection.
 */
export function registryBalancerSource(aggregator: DiscoveryAggregator): BalancerSource {
  return {
    services$: aggregator.services$,
    unconnectedRegistriesOf: (service) => aggregator.unconnectedRegistriesOf(service),
    create(service, settings, previous, keep, health) {
      const conf = aggregator.service(service);
      // The service's protocol applies to instances whose registry entry named none, before health
      // checks and balancers see them, so checks and traffic speak the same protocol.
      const protocol = settings.protocol;
      const conf$ = protocol === 'http' ? conf.conf$ : conf.conf$.pipe(map((value) => withServiceProtocol(value, protocol)));
      const options = { ...serviceBalancerOptions(settings, service), ...(keep ? { keep } : {}) };
      if (health) return createServiceBalancer({ service, conf$ }, { ...options, keepHealth: health });
      if (!previous) return createServiceBalancer({ service, conf$ }, options);
      const carried = { ...(previous.snapshot ? { previous: previous.snapshot } : {}), previousDeparted: previous.departed, previousCheckDiffers: previous.checkDiffers, previousEjectionHistory: previous.ejectionHistory };
      return createServiceBalancer({ service, conf$ }, { ...options, health: { ...options.health, ...carried } });
    },
  };
}

interface Entry {
  readonly balancer: ServiceBalancer;
  /** `balancerFingerprint` when built. */
  readonly settings: string;
  /** `healthFingerprint` when built. */
  readonly healthSettings: string;
  /** `checkFingerprint` when built. */
  readonly checkSettings: string;
  readonly subscription: Subscription;
}

/**
 * The live balancer of every service the gateway routes to. A service a registry lists gets its
 * balancer (and so its health checks and health state) as soon as it is listed; a service only
 * declared in the configuration gets one on its first request. A new configuration rebuilds the
 * balancers whose settings changed. A service exists when it is declared or a registry lists it.
 * A route with `subset` or `canary` gets a balancer per subset it names, of the service's algorithm
 * and fed from the service's health (never a second checker); made on the route's first request,
 * kept across reloads while some route names it, and across a rebuild of the service that keeps
 * its balancer (then fed from the new build); dropped when no route names it or the service's
 * balancer is replaced.
 */
export class ServiceBalancers {
  /**
   * Replays the latest health snapshot of every service with a balancer, then emits each new one
   * as it happens, across balancer rebuilds. Completes on `close()`.
   */
  readonly health$: Observable<HealthSnapshot>;
  /**
   * The name of each listed service the source no longer lists (it was forgotten), after its
   * balancer, health checks and health state were let go; no replay. Completes on `close()`.
   */
  readonly forgotten$: Observable<string>;

  private readonly balancers = new Map<string, Entry>();
  private readonly latestHealth = new Map<string, HealthSnapshot>();
  private readonly healthChanges = new Subject<HealthSnapshot>();
  private readonly forgottenNames = new Subject<string>();
  private readonly listed = new Set<string>();
  private readonly subscription: Subscription;
  /** By `service` and `subsetKey`, joined with a newline (no service name holds one). */
  private readonly subsets = new Map<string, SubsetEntry>();
  private readonly splits = new Map<string, SmoothSplit>();
  // Route objects belong to one configuration, so a reload starts afresh by itself; old ones keep
  // their pickers (over the balancers they had) for the requests still in flight on them.
  private readonly routePickers = new WeakMap<RouteConfig, Picker>();

  constructor(
    private readonly source: BalancerSource,
    private config: GatewayConfig,
  ) {
    this.health$ = new Observable<HealthSnapshot>((subscriber) => {
      for (const snapshot of this.latestHealth.values()) subscriber.next(snapshot);
      return this.healthChanges.subscribe(subscriber);
    });
    this.forgotten$ = this.forgottenNames.asObservable();
    this.subscription = source.services$.subscribe((names) => {
      const listed = new Set(names);
      for (const name of [...this.listed]) if (!listed.has(name)) this.forget(name);
      for (const name of names) {
        this.listed.add(name);
        if (!this.balancers.has(name)) this.create(name);
      }
    });
  }

  /** True when `service` is declared or some registry has listed it. */
  has(service: string): boolean {
    return this.config.services.has(service) || this.listed.has(service);
  }

  /**
   * The picker for a request of `service` through `route`, or undefined when the service does not
   * exist: the service's current picker, or for a route with `subset` or `canary` the route's own.
   */
  pickerFor(service: string, route?: RouteConfig): Picker | undefined {
    if (selectsSubsets(route)) return this.routePickers.get(route) ?? this.createRoutePicker(service, route);
    const entry = this.balancers.get(service);
    if (entry) return entry.balancer.picker;
    if (!this.has(service)) return undefined;
    return this.create(service).picker;
  }

  /**
   * Calls `use` with the picker `pickerFor(service, route)` would give now (undefined: no such
   * service), making no balancer, subset or split (explain reads this way): an unlisted declared
   * service answers `no-instances`, a route's not yet made subsets are scratch copies (`withReadOnlyRoutePicker`).
   */
  withReadOnlyPicker<T>(service: string, route: RouteConfig | undefined, use: (picker: Picker | undefined) => T): T {
    if (!this.has(service)) return use(undefined);
    const parent = this.balancers.get(service)?.balancer;
    if (!selectsSubsets(route) || !this.config.routes.includes(route)) return use(parent?.picker ?? nonePicker('no-instances'));
    const made = this.routePickers.get(route);
    if (made) return use(made);
    const options = serviceBalancerOptions(serviceSettings(this.config, service));
    const subset = (selector: SubsetSelector) => this.subsets.get(subsetId(service, selector))?.source;
    return withReadOnlyRoutePicker(route, { parent, options, subset, split: (canary) => this.splits.get(splitKey(service, canary)) }, use);
  }

  /** The registries not yet connected while none has given `service` an instance set; empty from a source that cannot tell. */
  unconnectedRegistriesOf(service: string): readonly string[] {
    return this.source.unconnectedRegistriesOf?.(service) ?? [];
  }

  /** The number of subset balancers alive, for tests and views. */
  subsetCount(): number {
    return this.subsets.size;
  }

  /** The balancer of `service`, when one has been built. */
  balancer(service: string): ServiceBalancer | undefined {
    return this.balancers.get(service)?.balancer;
  }

  /** The latest health snapshot of `service`, once its balancer has seen the registry list it. */
  health(service: string): HealthSnapshot | undefined {
    return this.latestHealth.get(service);
  }

  /** The settings `service` is balanced and checked with under the configuration in force. */
  settings(service: string): ServiceSettings {
    return serviceSettings(this.config, service);
  }

  /** Every service that is declared, listed, or has a balancer, sorted by name. */
  names(): string[] {
    return [...new Set([...this.config.services.keys(), ...this.listed, ...this.balancers.keys()])].sort();
  }

  /**
   * Switches to `config`; balancers whose settings changed are rebuilt, at once for listed services.
   * A rebuild keeps the health the service had: all of it (checks, the verdicts of instances that
   * left, parked ejections, removal grace) when its health settings did not change, else its
   * ejections and, while its check asks what it asked, the failing verdicts of its current instances
   * and of those that left, and which held instances refused a connection (`carriedHealth`); and the balancer itself
   * (requests in flight, latency, weights) when its own settings did not change, with the balancers
   * of its subsets.
   */
  apply(config: GatewayConfig): void {
    this.config = config;
    for (const [service, entry] of [...this.balancers]) {
      const health = healthFingerprint(config, service);
      if (health === entry.healthSettings && balancerFingerprint(config, service) === entry.settings) continue;
      const listed = this.listed.has(service);
      const kept = listed && health === entry.healthSettings ? entry.balancer.handOverHealth() : undefined;
      // Read before the release closes the old health set.
      const carried = kept ? undefined : carriedHealth(this.latestHealth.get(service), entry.balancer.health, checkFingerprint(config, service) === entry.checkSettings);
      this.release(service, entry);
      const rebuilt = listed ? this.create(service, carried, entry.balancer.keeper, kept) : undefined;
      this.carrySubsets(service, entry.balancer.balancer, rebuilt);
    }
    const routes = config.routes.filter(selectsSubsets);
    const selected = selectedSubsets(config);
    for (const [id, subset] of [...this.subsets]) if (!selected.has(id)) this.dropSubset(id, subset);
    const splits = new Set(routes.flatMap((route) => (route.canary ? [splitKey(route.service!, route.canary)] : [])));
    for (const key of [...this.splits.keys()]) if (!splits.has(key)) this.splits.delete(key);
  }

  /** Closes every balancer and its health checks, and completes `health$`. */
  close(): void {
    this.subscription.unsubscribe();
    for (const [service, entry] of [...this.balancers]) this.release(service, entry);
    for (const [id, subset] of [...this.subsets]) this.dropSubset(id, subset, false);
    this.splits.clear();
    this.healthChanges.complete();
    this.forgottenNames.complete();
  }

  /**
   * Lets go of a service the source forgot: its balancer with its health checks and outlier state,
   * its subsets and splits, its latest health. A declared service would get a new balancer on its
   * next request, but the source never forgets one (the configuration names it).
   */
  private forget(service: string): void {
    this.listed.delete(service);
    const entry = this.balancers.get(service);
    if (entry) this.release(service, entry);
    for (const [id, subset] of [...this.subsets]) if (subset.service === service) this.dropSubset(id, subset);
    for (const key of [...this.splits.keys()]) if ((JSON.parse(key) as unknown[])[0] === service) this.splits.delete(key);
    this.latestHealth.delete(service);
    this.forgottenNames.next(service);
  }

  private create(service: string, previous?: CarriedHealth, keep?: BalancerKeeper, health?: ServiceHealth): ServiceBalancer {
    const balancer = this.source.create(service, serviceSettings(this.config, service), previous, keep, health);
    const subscription = balancer.health.endpoints$.subscribe((snapshot) => {
      this.latestHealth.set(service, snapshot);
      this.healthChanges.next(snapshot);
    });
    this.balancers.set(service, { balancer, settings: balancerFingerprint(this.config, service), healthSettings: healthFingerprint(this.config, service), checkSettings: checkFingerprint(this.config, service), subscription });
    return balancer;
  }

  private release(service: string, entry: Entry): void {
    entry.subscription.unsubscribe();
    entry.balancer.close();
    this.balancers.delete(service);
  }

  /**
   * The subsets of a rebuilt service read the released build's health: when `rebuilt` kept the
   * `previous` balancer they go on over its health with their balancers (weights, rotations) kept;
   * otherwise they go, and come back on the next request with the new algorithm.
   */
  private carrySubsets(service: string, previous: Balancer, rebuilt: ServiceBalancer | undefined): void {
    const parent = rebuilt?.balancer === previous ? rebuilt : undefined;
    const options = serviceBalancerOptions(serviceSettings(this.config, service));
    for (const [id, subset] of [...this.subsets]) {
      if (subset.service !== service) continue;
      if (!parent) {
        this.dropSubset(id, subset);
        continue;
      }
      const { source } = subset;
      source.balancer.close();
      source.balancer = createSubsetBalancer(parent, subset.selector, options.balancer, options.slowStart, source.balancer.keeper);
    }
  }

  /**
   * Closes a subset for good: its balancer lets go of the service's host loads. A route picker made
   * before (a request in flight across the reload, retrying) then reads, while `successor`, the
   * subset of the build in force when a route in force still selects it, else the whole service (as
   * a request whose route a reload dropped is given in `createRoutePicker`).
   */
  private dropSubset(id: string, subset: SubsetEntry, successor = true): void {
    const { service, selector } = subset;
    const frozen = subset.source.balancer;
    if (successor) {
      subset.source.successor = () => {
        if (!selectedSubsets(this.config).has(id)) return this.pickerFor(service) ?? frozen.picker;
        return this.subsetBalancer(service, selector, this.balancers.get(service)?.balancer ?? this.create(service)).picker;
      };
    }
    subset.source.balancer.close();
    subset.source.balancer.balancer.close();
    this.subsets.delete(id);
  }

  private createRoutePicker(service: string, route: RouteConfig): Picker | undefined {
    if (!this.has(service)) return undefined;
    // A request routed just before a reload, whose route the new configuration dropped: subsets are
    // made only for routes in force (so that `apply` can drop them), so it gets the whole service.
    if (!this.config.routes.includes(route)) return this.pickerFor(service);
    const parent = () => this.balancers.get(service)?.balancer ?? this.create(service);
    // Read on every pick, as a subset's source is: a fallback `any` of a picker made before a reload
    // that rebuilt the service (a request in flight, retrying) picks from the build in force, not
    // from the closed one, frozen at the reload.
    const whole: PickerSource = { get picker() { return parent().picker; } };
    const sources: SubsetSources = {
      service: () => whole,
      subset: (selector) => this.subsetBalancer(service, selector, parent()),
      split: (canary) => this.splitOf(service, canary),
    };
    const picker = routePicker(route, sources);
    this.routePickers.set(route, picker);
    return picker;
  }

  private subsetBalancer(service: string, selector: SubsetSelector, parent: ServiceBalancer): PickerSource {
    const id = subsetId(service, selector);
    let subset = this.subsets.get(id);
    if (!subset) {
      const options = serviceBalancerOptions(serviceSettings(this.config, service));
      subset = { service, selector, source: new SubsetSource(createSubsetBalancer(parent, selector, options.balancer, options.slowStart)) };
      this.subsets.set(id, subset);
    }
    return subset.source;
  }

  private splitOf(service: string, canary: CanaryRouting): SmoothSplit {
    const key = splitKey(service, canary);
    let split = this.splits.get(key);
    if (!split) {
      split = new SmoothSplit(canary.split.map(({ weight }) => weight));
      this.splits.set(key, split);
    }
    return split;
  }
}

/** What a service's balancer alone is built from (see `BalancerKeeper`). */
function balancerFingerprint(config: GatewayConfig, service: string): string {
  const { balancer, slowStart, sticky } = serviceSettings(config, service);
  // Only whether it is on: the cookie's attributes are read per request, the balancer knows none of them.
  return JSON.stringify({ balancer, slowStart, sticky: sticky !== false });
}

/** What a service's health (its `EndpointSet` and the stream feeding it) is built from; instances are left out, since they arrive through the registry stream. */
function healthFingerprint(config: GatewayConfig, service: string): string {
  const { healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs, protocol, tls } = serviceSettings(config, service);
  // The probe speaks the protocol with the TLS settings; files count by digest (PemFile hides its text).
  return JSON.stringify({ healthCheck, outlierDetection, panicThresholdPercent, removalGraceMs, protocol, tls });
}

/**
 * What a service's active check asks, leaving out when and how often (interval, timeout,
 * thresholds): a verdict answers its own question, so one of another path, port or protocol means
 * nothing to the new check.
 */
function checkFingerprint(config: GatewayConfig, service: string): string {
  const { healthCheck, protocol, tls } = serviceSettings(config, service);
  if (!healthCheck) return 'off';
  const { type, port, path, expectedStatuses, hostHeader, grpcService, protocol: spoken } = healthCheck;
  return JSON.stringify(type === 'tcp' ? { type, port } : { type, port, path, expectedStatuses, hostHeader, grpcService, spoken, protocol, tls });
}

/**
 * What a rebuild with other health settings keeps of the build it replaces: ejections (verdicts of
 * traffic) of instances present and departed alike, always, and which held instances refused a
 * connection (a fact about the instance, not a check's answer); their failing check verdicts too, but
 * when the check asks something else (not `sameCheck`) a verdict of another question holds only
 * until the new check's first answer, which decides: an instance that failed is not sent traffic
 * before anything vouches for it, nor held out for `healthyThreshold` passes of a check it never
 * failed. Passing verdicts of another question start unchecked. A failing verdict the old build
 * had carried from an earlier check and not yet put to its own is still one of another question,
 * however many reloads that changed only when checks run came since.
 */
function carriedHealth(snapshot: HealthSnapshot | undefined, view: HealthView, sameCheck: boolean): CarriedHealth {
  const departed: DepartedHealth = view instanceof EndpointSet ? view.departedHealth() : { unhealthyUntil: new Map(), ejectedUntil: new Map(), confirmedGone: new Set() };
  const ejectionHistory = view instanceof EndpointSet ? view.ejectionHistory() : new Map<string, EjectionHistory>();
  // A verdict the old build had carried from a check before its own still answers that one.
  if (sameCheck) return { snapshot, departed, ejectionHistory, checkDiffers: view instanceof EndpointSet ? view.awaitingFirstAnswer() : false };
  return {
    snapshot: snapshot && { ...snapshot, endpoints: snapshot.endpoints.map((endpoint) => (endpoint.active === 'healthy' ? { ...endpoint, active: 'unknown' as const } : endpoint)) },
    departed,
    ejectionHistory,
    checkDiffers: true,
  };
}

/** `conf` with `protocol` for every instance whose registry entry named none; the same object when none changes. */
function withServiceProtocol(conf: ServiceConf, protocol: InstanceProtocol): ServiceConf {
  let changed = false;
  const instances = conf.instances.map((instance) => {
    const resolved = withDefaultProtocol(instance, protocol);
    changed ||= resolved !== instance;
    return resolved;
  });
  return changed ? { ...conf, instances } : conf;
}
