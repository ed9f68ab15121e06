import { BehaviorSubject, type Observable, type Subscription } from 'rxjs';
import { sameInstance } from '../discovery/instance.ts';
import type { LoadBalanceConf } from '../discovery/load-balance-conf.ts';
import { EndpointSet, type EndpointSetOptions } from '../health/endpoint-set.ts';
import { isHealthy } from '../health/endpoint-verdict.ts';
import type { HealthSnapshot, HealthView } from '../health/health-view.ts';
import type { Balancer, BalancerEndpoint, OutcomeListener } from './balancer.ts';
import type { BalancerConfig } from './balancer-factory.ts';
import { BalancerKeeper } from './balancer-keeper.ts';
import { nonePicker, type Picker } from './picker.ts';
import type { SlowStartOptions } from './slow-start.ts';

/**
 * Drives one balancer from a health view: every snapshot that changes what the balancer sees
 * (addresses, instances, routability) becomes one `update()`. While a member is in slow start, a
 * timer calls `reweigh()` every `rampTickMs` and publishes that picker too; without slow start no
 * timer runs and the pickers are those of plain updates. Exposes the current picker.
 */
export class ServiceBalancer {
  /** Replays the current picker, then each new one. Completes on `close()`. */
  readonly picker$: Observable<Picker>;

  private readonly pickers = new BehaviorSubject<Picker>(nonePicker('no-instances'));
  private current: Picker = this.pickers.getValue();
  private readonly subscription: Subscription;
  private fed: readonly BalancerEndpoint[] = [];
  private closed = false;
  private rampTimer: NodeJS.Timeout | undefined;

  constructor(
    /** The health view the balancer is fed from; the admin view reads it too. */
    readonly health: HealthView,
    readonly balancer: Balancer,
    private teardown: () => void = () => undefined,
    /** Where outcomes of picks go for passive health; subset balancers over the same health report here too. */
    readonly recordOutcome: OutcomeListener = () => undefined,
    /** Holds `balancer` when a rebuild of the service may keep it (`ServiceBalancerOptions.keep`). */
    readonly keeper?: BalancerKeeper,
  ) {
    this.picker$ = this.pickers.asObservable();
    this.subscription = health.endpoints$.subscribe((snapshot) => this.feed(balancerEndpointsOf(snapshot)));
  }

  /** The picker to use for the next request; `no-instances` until the registry lists the service. */
  get picker(): Picker {
    return this.current;
  }

  /**
   * Gives this build's health, with its teardown and outcome listener, to the build of the service
   * that replaces it (`ServiceBalancerOptions.keepHealth`): `close()` then leaves it running. Call it
   * right before closing this build.
   */
  handOverHealth(): ServiceHealth {
    const handed: ServiceHealth = { view: this.health, teardown: this.teardown, recordOutcome: this.recordOutcome };
    this.teardown = () => undefined;
    return handed;
  }

  /** Unsubscribes, runs the owner's teardown (checks, timers) and completes `picker$`; the last picker stays usable. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.rampTimer);
    this.subscription.unsubscribe();
    this.teardown();
    this.pickers.complete();
  }

  private feed(endpoints: readonly BalancerEndpoint[]): void {
    if (sameEndpoints(this.fed, endpoints)) return;
    this.fed = endpoints;
    this.publish(this.balancer.update(endpoints));
  }

  private publish(picker: Picker): void {
    if (picker !== this.current) {
      this.current = picker;
      this.pickers.next(picker);
    }
    if (this.rampTimer === undefined && this.balancer.ramping && !this.closed) {
      // Unref'd: a ramp never keeps the process alive; close() clears it.
      this.rampTimer = setTimeout(() => {
        this.rampTimer = undefined;
        if (!this.closed) this.publish(this.balancer.reweigh());
      }, this.balancer.rampTickMs).unref();
    }
  }
}

/** The health one build of a service runs on, as `ServiceBalancer.handOverHealth()` passes it to the next. */
export interface ServiceHealth {
  readonly view: HealthView;
  /** Stops its checks and timers; run by the build that holds it last, on `close()`. */
  readonly teardown: () => void;
  /** Where outcomes of picks go for passive health. */
  readonly recordOutcome: OutcomeListener;
}

/** Settings of `createServiceBalancer`. */
export interface ServiceBalancerOptions {
  readonly balancer: BalancerConfig;
  readonly health?: EndpointSetOptions;
  /** Slow start for instances that join later; honoured by the algorithms in `SLOW_START_ALGORITHMS`. */
  readonly slowStart?: SlowStartOptions;
  /** Sticky sessions by cookie: the salt of the service's sticky ids (`stickyId`), its name; undefined when off. */
  readonly stickySalt?: string;
  /** The `keeper` of the closed balancer of the service this one rebuilds: its balancer is kept when `balancer` and `slowStart` are unchanged. */
  readonly keep?: BalancerKeeper;
  /**
   * The health of the build of the service this one replaces (`ServiceBalancer.handOverHealth()`),
   * for a rebuild that left the health settings alone: it carries on as it was (checks, verdicts of
   * instances that left, parked ejections, removal grace), as across a reload that changed nothing
   * of the service, and `health` is unused.
   */
  readonly keepHealth?: ServiceHealth;
}

/**
 * The whole per-service composition: an `EndpointSet` over `conf.conf$` (active checks, outlier
 * detection, Envoy's rule, panic; or the one of `options.keepHealth`) feeding a balancer built from `options.balancer` (or kept, see
 * `BalancerKeeper`), with every pick's outcome reported to outlier detection. `close()` tears down
 * all of it but the balancer, which holds no timers or connections.
 */
export function createServiceBalancer(conf: Pick<LoadBalanceConf, 'service' | 'conf$'>, options: ServiceBalancerOptions): ServiceBalancer {
  const kept = options.keepHealth;
  if (kept) {
    const keeper = BalancerKeeper.keep(options.keep, options.balancer, options.slowStart, kept.recordOutcome, undefined, options.stickySalt);
    return new ServiceBalancer(kept.view, keeper.balancer, kept.teardown, kept.recordOutcome, keeper);
  }
  const endpoints = new EndpointSet(conf.service, conf.conf$, options.health);
  const recordOutcome: OutcomeListener = (address, outcome) => endpoints.record(address, outcome);
  const keeper = BalancerKeeper.keep(options.keep, options.balancer, options.slowStart, recordOutcome, undefined, options.stickySalt);
  return new ServiceBalancer(endpoints, keeper.balancer, () => endpoints.close(), recordOutcome, keeper);
}

/**
 * The endpoints a snapshot feeds its balancer: in panic, each says whether it is healthy, since
 * every registry member is routable then (`BalancerEndpoint.healthy`); otherwise as they are.
 */
function balancerEndpointsOf(snapshot: HealthSnapshot): readonly BalancerEndpoint[] {
  return snapshot.panic ? snapshot.endpoints.map((endpoint) => ({ ...endpoint, healthy: isHealthy(endpoint) })) : snapshot.endpoints;
}

function sameEndpoints(a: readonly BalancerEndpoint[], b: readonly BalancerEndpoint[]): boolean {
  return (
    a.length === b.length &&
    a.every((left, index) => {
      const right = b[index]!;
      return left.address === right.address && left.routable === right.routable && (left.healthy !== false) === (right.healthy !== false) && sameInstance(left.instance, right.instance);
    })
  );
}
