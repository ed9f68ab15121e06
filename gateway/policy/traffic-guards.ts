import { Subject, type Observable } from 'rxjs';
import { serviceSettings, type CircuitBreakerSettings, type GatewayConfig, type RouteConfig } from '../config/index.ts';
import { BREAKER_EVENT_TYPES, type BreakerChange } from './breaker-change.ts';
import type { BreakerListener, BreakerState } from './circuit-breaker.ts';
import { breakerStateGauge, breakerTransitionsTotal, STATE_VALUE, trafficRejectionsTotal } from './guard-metrics.ts';
import { BreakerSlot, RequestGuard, ServiceLimits } from './service-guard.ts';

interface Kept<T> {
  readonly fingerprint: string;
  readonly value: T;
}

/** One breaker as `/api/breakers` shows it. */
export interface BreakerView {
  service: string;
  route: string | null;
  state: BreakerState;
  /** ISO time of the last state change. */
  since: string;
  /** Calls and failures in the rolling window (closed only; a half-open or open breaker counts trials only). */
  requests: number;
  failures: number;
  /** ISO time an open breaker lets a trial through. */
  retryAt: string | null;
  inFlight: number;
  settings: CircuitBreakerSettings;
}

/** One service's caps as `/api/breakers` shows them. */
export interface LimitsView {
  service: string;
  inFlight: number;
  pending: number;
  activeRetries: number;
}

/**
 * The breakers, caps and retry budgets of every service (and the breakers of routes that have
 * their own), made on a service's first request. State is keyed by the settings it was built
 * from: a reload keeps every breaker window and in-flight count whose settings did not change.
 * Each process (each worker) keeps its own: see docs/configuration.md, "Several workers".
 */
export class TrafficGuards {
  /** Every breaker state change, as it happens. */
  readonly changes$: Observable<BreakerChange>;

  private readonly changes = new Subject<BreakerChange>();
  private readonly limits = new Map<string, Kept<ServiceLimits>>();
  private readonly serviceBreakers = new Map<string, Kept<BreakerSlot>>();
  /** By service and route name joined with a newline. */
  private readonly routeBreakers = new Map<string, Kept<BreakerSlot>>();
  // Route objects belong to one configuration, so a reload starts a fresh cache by itself.
  private readonly guards = new WeakMap<RouteConfig, Map<string, RequestGuard>>();
  private readonly routeless = new Map<string, RequestGuard>();

  constructor(
    private config: GatewayConfig,
    private readonly worker: number | null = null,
  ) {
    this.changes$ = this.changes.asObservable();
  }

  /** The guard of a request of `service` through `route`; one map lookup once made. */
  guardFor(service: string, route: RouteConfig | undefined): RequestGuard {
    const byService = route ? this.guards.get(route) : this.routeless;
    const guard = byService?.get(service);
    if (guard) return guard;
    const made = this.makeGuard(service, route);
    if (!route) this.routeless.set(service, made);
    else if (byService) byService.set(service, made);
    else this.guards.set(route, new Map([[service, made]]));
    return made;
  }

  /** Switches to `config`: state whose settings changed is dropped (and rebuilt on the next request). */
  apply(config: GatewayConfig): void {
    this.config = config;
    this.routeless.clear();
    for (const [service, kept] of this.limits) if (kept.fingerprint !== limitsFingerprint(config, service)) this.limits.delete(service);
    for (const [service, kept] of this.serviceBreakers) {
      const settings = serviceSettings(config, service).circuitBreaker;
      if (kept.fingerprint !== JSON.stringify(settings)) this.drop(this.serviceBreakers, service, kept.value);
    }
    const routes = new Map(config.routes.map((route) => [route.name, route.circuitBreaker]));
    for (const [key, kept] of this.routeBreakers) {
      if (kept.fingerprint !== JSON.stringify(routes.get(kept.value.route!) ?? null)) this.drop(this.routeBreakers, key, kept.value);
    }
  }

  /**
   * Lets go of the state of `service`, a forgotten service (one the configuration does not name,
   * such as a service reached through a namespace route): its caps and retry budget, its breakers
   * with their state series, and the guards made for it, so that names that churn do not pile up.
   * A request of that name later starts afresh, as a new service's does; a request in flight keeps
   * the guard it holds.
   */
  forget(service: string): void {
    this.limits.delete(service);
    const breaker = this.serviceBreakers.get(service);
    if (breaker) this.drop(this.serviceBreakers, service, breaker.value);
    for (const [key, kept] of this.routeBreakers) if (kept.value.service === service) this.drop(this.routeBreakers, key, kept.value);
    this.routeless.delete(service);
    // Guards of an earlier configuration's routes go with those routes (a WeakMap).
    for (const route of this.config.routes) this.guards.get(route)?.delete(service);
  }

  /** Every breaker made so far, services first, by name. */
  breakers(nowMs = performance.now()): BreakerView[] {
    const slots = [...this.serviceBreakers.values(), ...this.routeBreakers.values()].map((kept) => kept.value);
    return slots.map((slot) => {
      const figures = slot.breaker.state === 'closed' ? slot.breaker.figures(nowMs) : { requests: 0, failures: 0 };
      const retryAt = slot.breaker.retryAt(nowMs);
      return {
        service: slot.service,
        route: slot.route,
        state: slot.breaker.state,
        since: new Date(slot.breaker.changedAt).toISOString(),
        ...figures,
        retryAt: retryAt === undefined ? null : new Date(retryAt).toISOString(),
        inFlight: slot.inFlight,
        settings: slot.settings,
      };
    });
  }

  /** The caps' counters of every service that has had a request. */
  serviceLimits(): LimitsView[] {
    return [...this.limits.values()].map(({ value }) => ({ service: value.service, inFlight: value.inFlight, pending: value.pending, activeRetries: value.activeRetries }));
  }

  /** Completes `changes$`. */
  close(): void {
    this.changes.complete();
  }

  private makeGuard(service: string, route: RouteConfig | undefined): RequestGuard {
    const settings = serviceSettings(this.config, service);
    let limits = this.limits.get(service)?.value;
    if (!limits) {
      limits = new ServiceLimits(service, settings.concurrency, settings.retryBudget);
      this.limits.set(service, { fingerprint: limitsFingerprint(this.config, service), value: limits });
    }
    const own = route?.circuitBreaker;
    let slot: BreakerSlot | undefined;
    if (own) slot = this.slot(this.routeBreakers, `${service}\n${route.name}`, service, route.name, own);
    else if (own === undefined && settings.circuitBreaker) slot = this.slot(this.serviceBreakers, service, service, null, settings.circuitBreaker);
    return new RequestGuard(limits, slot, trafficRejectionsTotal.labels(service, 'circuit-open'), trafficRejectionsTotal.labels(service, 'max-concurrent'));
  }

  private slot(map: Map<string, Kept<BreakerSlot>>, key: string, service: string, route: string | null, settings: CircuitBreakerSettings): BreakerSlot {
    const fingerprint = JSON.stringify(settings);
    const kept = map.get(key);
    if (kept && kept.fingerprint === fingerprint) return kept.value;
    if (kept) this.drop(map, key, kept.value);
    const report = this.listener(service, route);
    // A breaker dropped (its settings changed, its service forgotten) may still see the requests that
    // held it finish: its transitions then say nothing, or they would write the series and events of
    // a breaker that is gone (or of the one that replaced it, under the same labels).
    const slot: BreakerSlot = new BreakerSlot(service, route, settings, (from, to, figures) => {
      if (map.get(key)?.value === slot) report(from, to, figures);
    });
    breakerStateGauge.set({ service, route: route ?? '' }, 0);
    map.set(key, { fingerprint, value: slot });
    return slot;
  }

  private drop(map: Map<string, Kept<BreakerSlot>>, key: string, slot: BreakerSlot): void {
    map.delete(key);
    breakerStateGauge.remove({ service: slot.service, route: slot.route ?? '' });
  }

  private listener(service: string, route: string | null): BreakerListener {
    const labels = { service, route: route ?? '' };
    return (from, to, figures) => {
      breakerStateGauge.set(labels, STATE_VALUE[to]);
      breakerTransitionsTotal.inc({ ...labels, to });
      this.changes.next({ type: BREAKER_EVENT_TYPES[to], data: { service, route, from, to, requests: figures.requests, failures: figures.failures, worker: this.worker } });
    };
  }
}

function limitsFingerprint(config: GatewayConfig, service: string): string {
  const { concurrency, retryBudget } = serviceSettings(config, service);
  return JSON.stringify({ concurrency, retryBudget });
}
