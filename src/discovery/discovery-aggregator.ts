import {
  asyncScheduler,
  BehaviorSubject,
  combineLatest,
  map,
  merge,
  Subject,
  Subscription,
  throttleTime,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import { instanceAddress, sameInstances, sortInstances, type Instance } from './instance.ts';
import { componentLogger } from '../logger.ts';
import { protectedInstances } from './discovery-metrics.ts';
import { LoadBalanceConf, type HeldInstance, type ServiceConf } from './load-balance-conf.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';
import {
  DEFAULT_PROTECTION_HOLD_MS,
  DEFAULT_PROTECTION_THRESHOLD_PERCENT,
  RemovalProtection,
  type ProtectedSet,
  type RemovalProtectionOptions,
} from './removal-protection.ts';

/** Default window in which per-service snapshots are coalesced; the newest set in a window wins. */
export const DEFAULT_THROTTLE_MS = 100;

/**
 * How long a service no source lists any more, with no instance left, is kept before it is
 * forgotten: as long as the health verdicts of departed endpoints are remembered
 * (`DEPARTED_VERDICT_MEMORY_MS`, Envoy's longest ejection), so a redeploy or a registry flap within
 * it finds the service as it left it.
 */
export const DEFAULT_FORGET_AFTER_MS = 300_000;

/** Which services may be forgotten, and when (`DiscoveryAggregator.configureForgetting`). */
export interface ForgettingOptions {
  /** How long a service stays after no source lists it and it has no instances; false: never forgotten. */
  readonly afterMs: number | false;
  /** Services never forgotten (those the configuration names): they stay, empty, once their sources drop them. */
  readonly retained: ReadonlySet<string>;
}

/** Options of the aggregator. */
export interface DiscoveryAggregatorOptions {
  /** Per-service coalescing window: the first change passes at once, later ones in the window collapse into one. */
  throttleMs?: number;
  /** For tests: the scheduler that times the throttle window. */
  scheduler?: SchedulerLike;
  /** Post-outage removal protection; on with a 50 % threshold and a 10 s hold when absent, off with `false`. */
  protection?: RemovalProtectionOptions | false;
  /** For tests: the clock of removal protection (epoch ms). */
  now?: () => number;
  /** When services no source lists are forgotten; after `DEFAULT_FORGET_AFTER_MS`, none retained, when absent. */
  forgetting?: ForgettingOptions;
}

/** A change of what removal protection holds for one service, for logs and admin events. */
export interface ProtectionChange {
  readonly service: string;
  /** `held`: a post-outage removal is held; `released`: held instances were listed again (`relisted`) or their hold ended (`expired`). */
  readonly action: 'held' | 'released';
  readonly reason: 'mass-removal-after-outage' | 'relisted' | 'expired';
  readonly instances: readonly HeldInstance[];
  /** How many instances of the service are held after this change. */
  readonly heldCount: number;
}

/**
 * What `DiscoveryAggregator.unconnectedRegistriesOf` answers from, besides `services$`, as plain
 * values for a process that answers for the aggregator without holding it (a worker, from its
 * primary). Small on purpose: a service's first listing changes `services$`, not this.
 */
export interface UnconnectedRegistries {
  /** The registries that have never connected yet (closed ones aside), in configuration order. */
  readonly registries: readonly string[];
  /** While `registries` names any, the services `services$` names that no registry gives an instance set any more (each said it is gone), sorted; else empty. */
  readonly unlisted: readonly string[];
}

/**
 * What `DiscoveryAggregator.unconnectedRegistriesOf(service)` answers, from `state` and the names
 * `services$` gave last (`listed`).
 */
export function unconnectedRegistriesIn(state: UnconnectedRegistries, listed: ReadonlySet<string>, service: string): readonly string[] {
  if (state.registries.length === 0) return [];
  return listed.has(service) && !state.unlisted.includes(service) ? [] : state.registries;
}

/**
 * Merges the snapshots of several providers into one `LoadBalanceConf` per service. Per service it
 * unions the latest snapshot of every provider (on an address clash the provider listed first wins),
 * throttles with the newest value winning, and drops values whose instances did not change.
 */
export class DiscoveryAggregator {
  /** Names of every service any provider has reported, sorted; replays the current list. */
  readonly services$: Observable<readonly string[]>;
  /** The latest status of every provider, in configuration order; replays the current list. */
  readonly statuses$: Observable<readonly ProviderStatus[]>;
  /** Every change of what removal protection holds (no replay). Completes on `close()`. */
  readonly protection$: Observable<ProtectionChange>;
  /**
   * The name of each service forgotten (no replay), emitted after `services$` dropped it and
   * before its `conf$` completes. Completes on `close()`.
   */
  readonly forgotten$: Observable<string>;
  /**
   * What `unconnectedRegistriesOf` answers from besides `services$`, replayed, then again on every
   * change: a registry connects for the first time or closes, or, while one has never connected, a
   * listed service loses its last instance set or gets one again, or is forgotten. Once every
   * registry has connected it never changes again. Completes on `close()`.
   */
  readonly unconnected$: Observable<UnconnectedRegistries>;

  private readonly confs = new Map<string, LoadBalanceConf>();
  private readonly inputs = new Map<string, Subject<ReadonlyMap<string, ProviderSnapshot>>>();
  private readonly latestByService = new Map<string, Map<string, ProviderSnapshot>>();
  private readonly serviceNames = new BehaviorSubject<readonly string[]>([]);
  private readonly latestRevision = new Map<string, string>();
  private readonly subscriptions = new Subscription();
  private readonly throttleMs: number;
  private readonly scheduler: SchedulerLike;
  private readonly protection: RemovalProtection;
  private readonly protectionChanges = new Subject<ProtectionChange>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private readonly forgetTimers = new Map<string, NodeJS.Timeout>();
  private readonly pipelines = new Map<string, Subscription>();
  private readonly forgottenNames = new Subject<string>();
  private forgetting: ForgettingOptions;
  private readonly log = componentLogger('discovery-aggregator');
  private readonly rank: ReadonlyMap<string, number>;
  /** The latest status of each provider, and which have ever connected (`unconnectedRegistriesOf`). */
  private readonly latestStatus = new Map<string, ProviderStatus>();
  private readonly everConnected = new Set<string>();
  private readonly unconnectedState: BehaviorSubject<UnconnectedRegistries>;
  /** The services of `latestByService` no provider lists (`UnconnectedRegistries.unlisted`), kept as they change so that no change scans every service. */
  private readonly unlisted = new Set<string>();
  private readonly now: () => number;
  private started = false;
  private closed = false;

  constructor(
    private readonly providers: readonly DiscoveryProvider[],
    options: DiscoveryAggregatorOptions = {},
  ) {
    this.throttleMs = options.throttleMs ?? DEFAULT_THROTTLE_MS;
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.now = options.now ?? Date.now;
    this.rank = new Map(providers.map((provider, index) => [provider.name, index]));
    this.protection = new RemovalProtection(
      options.protection ?? { thresholdPercent: DEFAULT_PROTECTION_THRESHOLD_PERCENT, holdMs: DEFAULT_PROTECTION_HOLD_MS },
      this.now,
    );
    this.protection$ = this.protectionChanges.asObservable();
    this.forgotten$ = this.forgottenNames.asObservable();
    this.forgetting = options.forgetting ?? { afterMs: DEFAULT_FORGET_AFTER_MS, retained: new Set() };
    this.services$ = this.serviceNames.asObservable();
    this.unconnectedState = new BehaviorSubject<UnconnectedRegistries>({ registries: providers.map((provider) => provider.name), unlisted: [] });
    this.unconnected$ = this.unconnectedState.asObservable();
    this.statuses$ = providers.length === 0 ? new BehaviorSubject<readonly ProviderStatus[]>([]) : combineLatest(providers.map((p) => p.status$));
  }

  /** Subscribes to every provider and starts them; calling it again does nothing. */
  start(): void {
    if (this.started) return;
    this.started = true;
    // Statuses first: a re-list that follows a stale period must already count as post-outage.
    for (const provider of this.providers) {
      this.subscriptions.add(
        provider.status$.subscribe((status) => {
          this.latestStatus.set(provider.name, status);
          if (status.state === 'connected') this.everConnected.add(provider.name);
          this.protection.onStatus(status);
          this.reviewUnconnected();
        }),
      );
    }
    this.subscriptions.add(
      merge(...this.providers.map((provider) => provider.snapshots$)).subscribe((snapshot) => this.accept(snapshot)),
    );
    for (const provider of this.providers) provider.start();
  }

  /**
   * The conf of `service`, created on first request so that a route can observe a service before
   * any registry lists it. The same object is returned for the life of the aggregator.
   */
  service(service: string): LoadBalanceConf {
    let conf = this.confs.get(service);
    if (!conf) {
      conf = new LoadBalanceConf(service);
      this.confs.set(service, conf);
    }
    return conf;
  }

  /** The latest snapshot of `service` from each provider that has reported it, unthrottled; for the admin view. */
  snapshotsOf(service: string): ReadonlyMap<string, ProviderSnapshot> {
    return this.latestByService.get(service) ?? new Map();
  }

  /**
   * The registries that have never connected yet (still `connecting`, or failed before their first
   * listing), in configuration order, while no registry has given `service` an instance set: its
   * lack of instances then says nothing of what is registered. Empty once any registry has listed
   * the service, or when every registry has connected at least once (closed ones aside).
   */
  unconnectedRegistriesOf(service: string): readonly string[] {
    if ((this.latestByService.get(service)?.size ?? 0) > 0) return [];
    return this.neverConnected();
  }

  /** The registries that have never connected yet (closed ones aside), in configuration order. */
  private neverConnected(): string[] {
    return this.providers
      .map((provider) => provider.name)
      .filter((name) => !this.everConnected.has(name) && this.latestStatus.get(name)?.state !== 'closed');
  }

  /** The revision of the latest snapshot received from `provider` (the registry as last seen), if any. */
  revisionOf(provider: string): string | undefined {
    return this.latestRevision.get(provider);
  }

  /** Switches the removal protection settings; holds already made keep their end time. */
  configureProtection(options: RemovalProtectionOptions | false): void {
    this.protection.configure(options);
  }

  /**
   * Switches when services are forgotten and which never are. A service that no source lists any
   * more (each said it is gone, see `ProviderSnapshot.gone`) and that has no instance left (none
   * held either) is forgotten `afterMs` after that became true, unless it is retained: then
   * `services$` no longer names it, `forgotten$` says so, its `conf$` completes, and what the
   * aggregator kept of it goes. Listed again before, it stays as it was. A new `afterMs`
   * starts the running countdowns over; a service retained now stops its countdown.
   */
  configureForgetting(options: ForgettingOptions): void {
    const changedDelay = options.afterMs !== this.forgetting.afterMs;
    this.forgetting = options;
    if (changedDelay) for (const service of [...this.forgetTimers.keys()]) this.cancelForgetting(service);
    for (const service of this.latestByService.keys()) this.reviewForgetting(service);
  }

  /** Closes every provider and completes every conf stream. */
  async close(): Promise<void> {
    this.closed = true;
    this.subscriptions.unsubscribe();
    for (const timer of this.expiryTimers.values()) clearTimeout(timer);
    this.expiryTimers.clear();
    for (const timer of this.forgetTimers.values()) clearTimeout(timer);
    this.forgetTimers.clear();
    this.protectionChanges.complete();
    this.forgottenNames.complete();
    await Promise.all(this.providers.map((provider) => provider.close()));
    for (const input of this.inputs.values()) input.complete();
    for (const conf of this.confs.values()) conf.complete();
    this.serviceNames.complete();
    this.unconnectedState.complete();
  }

  /** Emits on `unconnected$` when what `unconnectedRegistriesOf` answers from has changed; nothing to do once every registry has connected. */
  private reviewUnconnected(): void {
    const previous = this.unconnectedState.getValue();
    if (previous.registries.length === 0 || this.closed) return;
    const registries = this.neverConnected();
    const unlisted = registries.length === 0 ? [] : [...this.unlisted].sort();
    if (sameNames(previous.registries, registries) && sameNames(previous.unlisted, unlisted)) return;
    this.unconnectedState.next({ registries, unlisted });
  }

  private accept(snapshot: ProviderSnapshot): void {
    let perProvider = this.latestByService.get(snapshot.service);
    if (snapshot.gone) {
      // The provider no longer lists the service: its (empty) set no longer counts, and once no
      // provider lists it, `reviewForgetting` starts its countdown.
      this.latestRevision.set(snapshot.provider, snapshot.revision);
      if (!perProvider?.delete(snapshot.provider)) return;
      if (perProvider.size === 0) {
        this.unlisted.add(snapshot.service);
        this.reviewUnconnected();
      }
      this.inputFor(snapshot.service).next(this.orderedSnapshots(snapshot.service));
      return;
    }
    if (!perProvider) {
      perProvider = new Map();
      this.latestByService.set(snapshot.service, perProvider);
      this.serviceNames.next([...this.latestByService.keys()].sort());
    }
    perProvider.set(snapshot.provider, snapshot);
    if (this.unlisted.delete(snapshot.service)) this.reviewUnconnected();
    this.latestRevision.set(snapshot.provider, snapshot.revision);
    this.inputFor(snapshot.service).next(this.orderedSnapshots(snapshot.service));
  }

  /** The latest snapshot of every provider for `service`, in configuration order. */
  private orderedSnapshots(service: string): ReadonlyMap<string, ProviderSnapshot> {
    const perProvider = this.latestByService.get(service) ?? new Map<string, ProviderSnapshot>();
    return new Map([...perProvider].sort(([a], [b]) => (this.rank.get(a) ?? 0) - (this.rank.get(b) ?? 0)));
  }

  private inputFor(service: string): Subject<ReadonlyMap<string, ProviderSnapshot>> {
    let input = this.inputs.get(service);
    if (input) return input;
    input = new Subject();
    this.inputs.set(service, input);
    const conf = this.service(service);
    const pipeline = input
      .pipe(
        throttleTime(this.throttleMs, this.scheduler, { leading: true, trailing: true }),
        map((snapshots) => mergeSnapshots(service, snapshots)),
      )
      .subscribe((merged) => this.update(conf, merged));
    this.pipelines.set(service, pipeline);
    this.subscriptions.add(pipeline);
    return input;
  }

  /** Applies removal protection to a merged set and pushes the result when it changed. */
  private update(conf: LoadBalanceConf, merged: Pick<ServiceConf, 'instances' | 'sources'>): void {
    const { service } = conf;
    const previous = conf.current();
    const result = this.protection.apply(service, previous, merged);
    this.report(service, result);
    this.scheduleExpiry(conf);
    if (!(previous && sameInstances(previous.instances, result.instances) && sameHeld(previous.held, result.held))) {
      const providers = () => new Set(this.snapshotsOf(service).keys());
      conf.push({
        service,
        instances: result.instances,
        sources: result.sources,
        version: (previous?.version ?? 0) + 1,
        held: result.held,
        recovering: () => this.protection.recoveringUntilOf(providers()) !== undefined,
      });
    }
    this.reviewForgetting(service);
  }

  /** True when no provider lists `service`, none of its instances is left (held ones count) and it is not retained. */
  private forgettable(service: string): boolean {
    if (this.closed || this.forgetting.afterMs === false || this.forgetting.retained.has(service)) return false;
    if ((this.latestByService.get(service)?.size ?? 1) > 0) return false;
    return (this.confs.get(service)?.current()?.instances.length ?? 0) === 0;
  }

  /** Starts `service`'s countdown to being forgotten when it became forgettable, stops it when it no longer is. */
  private reviewForgetting(service: string): void {
    const { afterMs } = this.forgetting;
    if (!this.forgettable(service) || afterMs === false) {
      this.cancelForgetting(service);
      return;
    }
    if (this.forgetTimers.has(service)) return;
    const timer = setTimeout(() => {
      this.forgetTimers.delete(service);
      if (this.forgettable(service)) this.forget(service);
    }, afterMs);
    timer.unref();
    this.forgetTimers.set(service, timer);
  }

  private cancelForgetting(service: string): void {
    clearTimeout(this.forgetTimers.get(service));
    this.forgetTimers.delete(service);
  }

  /**
   * Drops everything kept of `service`. `services$` goes first, so that whoever builds on the conf
   * (balancers, health checks) lets go of it before its `conf$` completes.
   */
  private forget(service: string): void {
    clearTimeout(this.expiryTimers.get(service));
    this.expiryTimers.delete(service);
    const pipeline = this.pipelines.get(service);
    if (pipeline) {
      pipeline.unsubscribe();
      this.subscriptions.remove(pipeline);
      this.pipelines.delete(service);
    }
    this.inputs.get(service)?.complete();
    this.inputs.delete(service);
    this.latestByService.delete(service);
    this.protection.forget(service);
    protectedInstances.remove({ service });
    this.log.info({ service, afterMs: this.forgetting.afterMs }, 'service forgotten: no registry or list has named it since the grace began');
    this.serviceNames.next([...this.latestByService.keys()].sort());
    if (this.unlisted.delete(service)) this.reviewUnconnected();
    this.forgottenNames.next(service);
    this.confs.get(service)?.complete();
    this.confs.delete(service);
  }

  private report(service: string, result: ProtectedSet): void {
    const heldCount = result.held.size;
    if (result.newlyHeld.length === 0 && result.released.length === 0) return;
    protectedInstances.set({ service }, heldCount);
    if (result.newlyHeld.length > 0) {
      const addresses = result.newlyHeld.map((held) => held.address);
      this.log.warn({ service, held: addresses, untilMs: result.newlyHeld[0]!.until - result.newlyHeld[0]!.since }, 'registry removal held: most of the service vanished right after a registry outage');
      this.protectionChanges.next({ service, action: 'held', reason: 'mass-removal-after-outage', instances: result.newlyHeld, heldCount });
    }
    for (const reason of ['relisted', 'expired'] as const) {
      const instances = result.released.filter((release) => release.reason === reason).map((release) => release.held);
      if (instances.length === 0) continue;
      this.log.info({ service, addresses: instances.map((held) => held.address), reason }, 'held instances released');
      this.protectionChanges.next({ service, action: 'released', reason, instances, heldCount });
    }
  }

  /** Re-evaluates `conf`'s service when its earliest hold ends, from the latest snapshots. */
  private scheduleExpiry(conf: LoadBalanceConf): void {
    const { service } = conf;
    clearTimeout(this.expiryTimers.get(service));
    this.expiryTimers.delete(service);
    const next = this.protection.nextExpiry(service);
    if (next === undefined || this.closed) return;
    const timer = setTimeout(() => {
      this.expiryTimers.delete(service);
      this.update(conf, mergeSnapshots(service, this.orderedSnapshots(service)));
    }, Math.max(0, next - this.now()));
    timer.unref();
    this.expiryTimers.set(service, timer);
  }
}

/** True when two lists of names are the same, in the same order. */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, index) => name === b[index]);
}

/** True when two held maps hold the same addresses. */
function sameHeld(a: ReadonlyMap<string, HeldInstance> | undefined, b: ReadonlyMap<string, HeldInstance>): boolean {
  if ((a?.size ?? 0) !== b.size) return false;
  return [...b.keys()].every((address) => a?.has(address));
}

/** Unions provider snapshots in rank order; the first provider to list an address keeps it. */
function mergeSnapshots(service: string, snapshots: ReadonlyMap<string, ProviderSnapshot>): Pick<ServiceConf, 'instances' | 'sources'> {
  const byAddress = new Map<string, Instance>();
  const sources = new Map<string, string>();
  for (const [provider, snapshot] of snapshots) {
    for (const instance of snapshot.instances) {
      const address = instanceAddress(instance);
      if (byAddress.has(address)) continue;
      byAddress.set(address, instance.service === service ? instance : { ...instance, service });
      sources.set(address, provider);
    }
  }
  return { instances: sortInstances(byAddress.values()), sources };
}
