import { BehaviorSubject, filter, type Observable } from 'rxjs';
import { BalancerKeeper, ServiceBalancer, type OutcomeListener } from '../../src/balance/index.ts';
import { unconnectedRegistriesIn, type UnconnectedRegistries } from '../../src/discovery/index.ts';
import type { HealthSnapshot, HealthView, UpstreamOutcome } from '../../src/health/index.ts';
import { serviceBalancerOptions, type ServiceSettings } from '../config/index.ts';
import type { BalancerSource, CarriedHealth } from '../service-registry.ts';

/**
 * A worker's view of the primary's registries and health: the services listed, the latest
 * health snapshot of each, and which registries have not yet connected, as the primary sends them. Balancers it creates are fed from those
 * snapshots (no checks of their own, no registry session) and report every pick's outcome to
 * `onOutcome`, which carries it to the primary's passive health.
 */
export class PrimaryFeed implements BalancerSource {
  readonly services$: Observable<readonly string[]>;

  private readonly names = new BehaviorSubject<readonly string[]>([]);
  private readonly views = new Map<string, BehaviorSubject<HealthSnapshot | undefined>>();
  // None until the primary says: a worker would rather give the plain answer than name registries on a guess.
  private unconnectedState: UnconnectedRegistries = { registries: [], unlisted: [] };
  /** The names of `names`, for a lookup per `no-instances` answer. */
  private listed: ReadonlySet<string> = new Set();

  constructor(private readonly onOutcome: (service: string, address: string, outcome: UpstreamOutcome) => void) {
    this.services$ = this.names.asObservable();
  }

  /** Takes a service's snapshot from the primary; its balancers see it at once. */
  health(snapshot: HealthSnapshot): void {
    this.view(snapshot.service).next(snapshot);
  }

  /**
   * Takes the primary's list of services. A service the list no longer names was forgotten by the
   * primary: once the balancers have let go of it (they follow `services$`), its view goes too.
   */
  services(names: readonly string[]): void {
    const previous = this.names.getValue();
    const listed = new Set(names);
    this.listed = listed;
    this.names.next(names);
    for (const name of previous) {
      if (listed.has(name)) continue;
      this.views.get(name)?.complete();
      this.views.delete(name);
    }
  }

  /** Takes the primary's registries not yet connected (`DiscoveryAggregator.unconnected$`); requests see it at once. */
  unconnected(state: UnconnectedRegistries): void {
    this.unconnectedState = state;
  }

  /** The registries not yet connected while none has given `service` an instance set, as the primary last said. */
  unconnectedRegistriesOf(service: string): readonly string[] {
    return unconnectedRegistriesIn(this.unconnectedState, this.listed, service);
  }

  /** The latest snapshot of `service`, once the primary has sent one. */
  latest(service: string): HealthSnapshot | undefined {
    return this.views.get(service)?.getValue();
  }

  create(service: string, settings: ServiceSettings, _previous?: CarriedHealth, keep?: BalancerKeeper): ServiceBalancer {
    const snapshots = this.view(service);
    const health: HealthView = { endpoints$: snapshots.pipe(filter((snapshot): snapshot is HealthSnapshot => snapshot !== undefined)) };
    const recordOutcome: OutcomeListener = (address, outcome) => this.onOutcome(service, address, outcome);
    const options = serviceBalancerOptions(settings, service);
    const keeper = BalancerKeeper.keep(keep, options.balancer, options.slowStart, recordOutcome, undefined, options.stickySalt);
    return new ServiceBalancer(health, keeper.balancer, () => undefined, recordOutcome, keeper);
  }

  private view(service: string): BehaviorSubject<HealthSnapshot | undefined> {
    let view = this.views.get(service);
    if (!view) {
      view = new BehaviorSubject<HealthSnapshot | undefined>(undefined);
      this.views.set(service, view);
    }
    return view;
  }
}
