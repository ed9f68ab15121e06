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
import { sameInstances } from './instance.ts';
import { KeyedTimers } from '../keyed-timers.ts';
import { componentLogger } from '../logger.ts';
import { protectedInstances } from './discovery-metrics.ts';
import { LoadBalanceConf, sameHeld, type ServiceConf } from './load-balance-conf.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';
import {
  DEFAULT_PROTECTION_HOLD_MS,
  DEFAULT_PROTECTION_THRESHOLD_PERCENT,
  protectionChangesOf,
  RemovalProtection,
  type ProtectedSet,
  type ProtectionChange,
  type RemovalProtectionOptions,
} from './removal-protection.ts';
import { DEFAULT_FORGET_AFTER_MS, ServiceForgetting, type ForgettingOptions } from './service-forgetting.ts';
import { mergeSnapshots } from './snapshot-merge.ts';
import { UnconnectedTracker, type UnconnectedRegistries } from './unconnected-registries.ts';

/** Default window in which per-service snapshots are coalesced; the newest set in a window wins. */
export const DEFAULT_THROTTLE_MS = 100;

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
  /** Per service: when its earliest removal-protection hold ends (`scheduleExpiry`). */
  private readonly expiryTimers = new KeyedTimers<string>();
  /** Counts down to forgetting each service no source lists and none of whose instances is left. */
  private readonly forgetting: ServiceForgetting;
  private readonly pipelines = new Map<string, Subscription>();
  private readonly forgottenNames = new Subject<string>();
  private readonly log = componentLogger('discovery-aggregator');
  private readonly rank: ReadonlyMap<string, number>;
  /** Which registries never connected, and which services none lists (`unconnectedRegistriesOf`). */
  private readonly unconnected: UnconnectedTracker;
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
    this.forgetting = new ServiceForgetting(
      options.forgetting ?? { afterMs: DEFAULT_FORGET_AFTER_MS, retained: new Set() },
      (service) => (this.latestByService.get(service)?.size ?? 1) === 0 && (this.confs.get(service)?.current()?.instances.length ?? 0) === 0,
      (service) => this.forget(service),
    );
    this.services$ = this.serviceNames.asObservable();
    this.unconnected = new UnconnectedTracker(providers.map((provider) => provider.name));
    this.unconnected$ = this.unconnected.state$;
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
          this.protection.onStatus(status);
          this.unconnected.status(provider.name, status);
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
    return this.unconnected.neverConnected();
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
    this.forgetting.configure(options, this.latestByService.keys());
  }

  /** Closes every provider and completes every conf stream. */
  async close(): Promise<void> {
    this.closed = true;
    this.subscriptions.unsubscribe();
    this.expiryTimers.clear();
    this.forgetting.close();
    this.protectionChanges.complete();
    this.forgottenNames.complete();
    await Promise.all(this.providers.map((provider) => provider.close()));
    for (const input of this.inputs.values()) input.complete();
    for (const conf of this.confs.values()) conf.complete();
    this.serviceNames.complete();
    this.unconnected.close();
  }

  private accept(snapshot: ProviderSnapshot): void {
    let perProvider = this.latestByService.get(snapshot.service);
    if (snapshot.gone) {
      // The provider no longer lists the service: its (empty) set no longer counts, and once no
      // provider lists it, `forgetting.review` starts its countdown.
      this.latestRevision.set(snapshot.provider, snapshot.revision);
      if (!perProvider?.delete(snapshot.provider)) return;
      if (perProvider.size === 0) this.unconnected.unlistedNow(snapshot.service, true);
      this.inputFor(snapshot.service).next(this.orderedSnapshots(snapshot.service));
      return;
    }
    if (!perProvider) {
      perProvider = new Map();
      this.latestByService.set(snapshot.service, perProvider);
      this.serviceNames.next([...this.latestByService.keys()].sort());
    }
    perProvider.set(snapshot.provider, snapshot);
    this.unconnected.unlistedNow(snapshot.service, false);
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
    this.forgetting.review(service);
  }

  /**
   * Drops everything kept of `service`. `services$` goes first, so that whoever builds on the conf
   * (balancers, health checks) lets go of it before its `conf$` completes.
   */
  private forget(service: string): void {
    this.expiryTimers.cancel(service);
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
    this.unconnected.unlistedNow(service, false);
    this.forgottenNames.next(service);
    this.confs.get(service)?.complete();
    this.confs.delete(service);
  }

  /** Logs and tells `protection$` what `result` changed of what removal protection holds for `service`. */
  private report(service: string, result: ProtectedSet): void {
    const changes = protectionChangesOf(service, result);
    if (changes.length === 0) return;
    protectedInstances.set({ service }, result.held.size);
    for (const change of changes) {
      const addresses = change.instances.map((held) => held.address);
      if (change.action === 'held') {
        const first = change.instances[0]!;
        this.log.warn({ service, held: addresses, untilMs: first.until - first.since }, 'registry removal held: most of the service vanished right after a registry outage');
      } else this.log.info({ service, addresses, reason: change.reason }, 'held instances released');
      this.protectionChanges.next(change);
    }
  }

  /** Re-evaluates `conf`'s service when its earliest hold ends, from the latest snapshots. */
  private scheduleExpiry(conf: LoadBalanceConf): void {
    const { service } = conf;
    const next = this.protection.nextExpiry(service);
    if (next === undefined || this.closed) {
      this.expiryTimers.cancel(service);
      return;
    }
    this.expiryTimers.restart(service, Math.max(0, next - this.now()), () => this.update(conf, mergeSnapshots(service, this.orderedSnapshots(service))));
  }
}
