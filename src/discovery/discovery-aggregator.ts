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
import { LoadBalanceConf, type ServiceConf } from './load-balance-conf.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';

/** Default window in which per-service snapshots are coalesced; the newest set in a window wins. */
export const DEFAULT_THROTTLE_MS = 100;

/** Options of the aggregator. */
export interface DiscoveryAggregatorOptions {
  /** Per-service coalescing window: the first change passes at once, later ones in the window collapse into one. */
  throttleMs?: number;
  /** For tests: the scheduler that times the throttle window. */
  scheduler?: SchedulerLike;
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

  private readonly confs = new Map<string, LoadBalanceConf>();
  private readonly inputs = new Map<string, Subject<ReadonlyMap<string, ProviderSnapshot>>>();
  private readonly latestByService = new Map<string, Map<string, ProviderSnapshot>>();
  private readonly serviceNames = new BehaviorSubject<readonly string[]>([]);
  private readonly latestRevision = new Map<string, string>();
  private readonly subscriptions = new Subscription();
  private readonly throttleMs: number;
  private readonly scheduler: SchedulerLike;
  private started = false;

  constructor(
    private readonly providers: readonly DiscoveryProvider[],
    options: DiscoveryAggregatorOptions = {},
  ) {
    this.throttleMs = options.throttleMs ?? DEFAULT_THROTTLE_MS;
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.services$ = this.serviceNames.asObservable();
    this.statuses$ = providers.length === 0 ? new BehaviorSubject<readonly ProviderStatus[]>([]) : combineLatest(providers.map((p) => p.status$));
  }

  /** Subscribes to every provider and starts them; calling it again does nothing. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const rank = new Map(this.providers.map((provider, index) => [provider.name, index]));
    this.subscriptions.add(
      merge(...this.providers.map((provider) => provider.snapshots$)).subscribe((snapshot) => this.accept(snapshot, rank)),
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

  /** The revision of the latest snapshot received from `provider` (the registry as last seen), if any. */
  revisionOf(provider: string): string | undefined {
    return this.latestRevision.get(provider);
  }

  /** Closes every provider and completes every conf stream. */
  async close(): Promise<void> {
    this.subscriptions.unsubscribe();
    await Promise.all(this.providers.map((provider) => provider.close()));
    for (const input of this.inputs.values()) input.complete();
    for (const conf of this.confs.values()) conf.complete();
    this.serviceNames.complete();
  }

  private accept(snapshot: ProviderSnapshot, rank: ReadonlyMap<string, number>): void {
    let perProvider = this.latestByService.get(snapshot.service);
    if (!perProvider) {
      perProvider = new Map();
      this.latestByService.set(snapshot.service, perProvider);
      this.serviceNames.next([...this.latestByService.keys()].sort());
    }
    perProvider.set(snapshot.provider, snapshot);
    this.latestRevision.set(snapshot.provider, snapshot.revision);
    const ordered = new Map([...perProvider].sort(([a], [b]) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0)));
    this.inputFor(snapshot.service).next(ordered);
  }

  private inputFor(service: string): Subject<ReadonlyMap<string, ProviderSnapshot>> {
    let input = this.inputs.get(service);
    if (input) return input;
    input = new Subject();
    this.inputs.set(service, input);
    const conf = this.service(service);
    this.subscriptions.add(
      input
        .pipe(
          throttleTime(this.throttleMs, this.scheduler, { leading: true, trailing: true }),
          map((snapshots) => mergeSnapshots(service, snapshots)),
        )
        .subscribe(({ instances, sources }) => {
          const previous = conf.current();
          if (previous && sameInstances(previous.instances, instances)) return;
          conf.push({ service, instances, sources, version: (previous?.version ?? 0) + 1 });
        }),
    );
    return input;
  }
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
