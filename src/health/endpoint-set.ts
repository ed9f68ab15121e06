import { BehaviorSubject, filter, Subscription, type Observable } from 'rxjs';
import { instanceAddress, type Instance } from '../discovery/instance.ts';
import type { HeldInstance, ServiceConf } from '../discovery/load-balance-conf.ts';
import { componentLogger, type Logger } from '../logger.ts';
import { ActiveHealthChecker, type ActiveCheckOptions } from './active-checker.ts';
import { healthPanic } from './health-metrics.ts';
import type { EndpointHealth, HealthSnapshot, HealthView } from './health-view.ts';
import { OutlierDetector, type EjectionHistory, type OutlierDetectionOptions } from './outlier-detector.ts';
import { isHealthy, sameSnapshot, snapshotOf } from './endpoint-verdict.ts';
import type { UpstreamOutcome } from './upstream-outcome.ts';

/** Envoy's default panic threshold: below half healthy, route to all. */
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;
/** How long an endpoint gone from the registry but still passing checks keeps traffic. */
export const DEFAULT_REMOVAL_GRACE_MS = 30_000;

/** Health settings of one service. */
export interface EndpointSetOptions {
  /** Active checks; none when absent (every registry member is then presumed healthy). */
  readonly active?: ActiveCheckOptions;
  /** Passive outlier detection; on with Envoy's defaults when absent, off with `false`. */
  readonly outlier?: OutlierDetectionOptions | false;
  /** Below this share of healthy weighted members (percent) every member gets traffic; 0 turns panic off. */
  readonly panicThresholdPercent?: number;
  /** Upper bound on Envoy's keep-while-passing rule for endpoints that left the registry; 0 drops them at once. */
  readonly removalGraceMs?: number;
  /**
   * The last snapshot of the set this one replaces (a reload that changed the service's settings):
   * active verdicts carry over where checks stay on, and running ejections where outlier detection
   * does, so an instance that was failing checks or ejected gets no traffic until it earns it back.
   */
  readonly previous?: HealthSnapshot;
  /**
   * What the set this one replaces remembered of instances that left (`departedHealth()`): one that
   * comes back while it holds starts failing or ejected, as it would have there, and a held one that
   * refused a connection there stays out while it is held.
   */
  readonly previousDeparted?: DepartedHealth;
  /**
   * True when the set this one replaces checked something else (another path, port, protocol):
   * the failing verdicts of `previous` and `previousDeparted` then hold only until this set's first
   * check of each endpoint answers, as they say nothing of this check. When it checked the same,
   * its `awaitingFirstAnswer()`: the failing verdicts that answered a check before its own, which
   * hold as long.
   */
  readonly previousCheckDiffers?: boolean | ReadonlySet<string>;
  /** `ejectionHistory()` of the set this one replaces: the counts of past ejections of its instances, present or departed, carry on. */
  readonly previousEjectionHistory?: ReadonlyMap<string, EjectionHistory>;
  /** For tests: jitter source of the active checker. */
  readonly random?: () => number;
  /** For tests: clock of the outlier detector (epoch ms). */
  readonly now?: () => number;
}

/** What an `EndpointSet` remembers of instances that left the registry, for when they come back. */
export interface DepartedHealth {
  /** By address: until when (epoch ms) a failing active verdict is remembered (`DEPARTED_VERDICT_MEMORY_MS`). */
  readonly unhealthyUntil: ReadonlyMap<string, number>;
  /** By address: when a running ejection ends (the outlier detector's clock). */
  readonly ejectedUntil: ReadonlyMap<string, number>;
  /**
   * Held instances (see `ServiceConf.held`) that refused a connection: a fact about the instance,
   * not a check's verdict, so it stays out while it is held, whatever the new settings.
   */
  readonly confirmedGone: ReadonlySet<string>;
}

interface Departed {
  readonly instance: Instance;
  readonly timer: NodeJS.Timeout;
}

/**
 * The health of one service's endpoints: the registry set from `conf$` combined with active
 * checks and passive outlier detection by Envoy's rule. A registry member that is healthy gets
 * traffic; one failing checks or ejected gets none; one gone from the registry that still passes
 * active checks keeps traffic until it fails or `removalGraceMs` ends (its checks stop then). When
 * the healthy share of weighted members falls below the panic threshold, every member is routable.
 * Subscribes on construction; `close()` stops checks, timers and the stream.
 */
export class EndpointSet implements HealthView {
  readonly endpoints$: Observable<HealthSnapshot>;

  private readonly snapshots = new BehaviorSubject<HealthSnapshot | undefined>(undefined);
  private readonly subscription = new Subscription();
  private readonly departed = new Map<string, Departed>();
  private readonly checker: ActiveHealthChecker | undefined;
  private readonly detector: OutlierDetector | undefined;
  private readonly panicThresholdPercent: number;
  private readonly removalGraceMs: number;
  private readonly log: Logger;
  private members: readonly Instance[] = [];
  private lastConf: ServiceConf | undefined;
  /** Held instances (see `ServiceConf.held`) that refused a connection: the registry was right, they are gone. */
  private readonly confirmedGone = new Set<string>();
  private listed = false;
  private closed = false;
  /** Set while `syncTargets` tells the detector and the checker in turn: a snapshot between them would mix old and new. */
  private syncing = false;
  private changedWhileSyncing = false;

  constructor(
    readonly service: string,
    conf$: Observable<ServiceConf>,
    options: EndpointSetOptions = {},
  ) {
    this.panicThresholdPercent = options.panicThresholdPercent ?? DEFAULT_PANIC_THRESHOLD_PERCENT;
    this.removalGraceMs = options.removalGraceMs ?? DEFAULT_REMOVAL_GRACE_MS;
    const previous = options.previous?.endpoints ?? [];
    const verdicts = new Map(previous.flatMap((endpoint) => (endpoint.active === 'unknown' ? [] : [[endpoint.address, endpoint.active] as const])));
    const ejections = new Map(previous.flatMap((endpoint) => (endpoint.ejectedUntil === undefined ? [] : [[endpoint.address, endpoint.ejectedUntil] as const])));
    this.checker = options.active ? new ActiveHealthChecker(service, options.active, options.random, verdicts, options.previousDeparted?.unhealthyUntil, options.previousCheckDiffers) : undefined;
    this.detector = options.outlier === false ? undefined : new OutlierDetector(service, options.outlier, options.now, ejections, options.previousDeparted?.ejectedUntil, options.previousEjectionHistory);
    this.log = componentLogger('endpoint-set', { service });
    // Before the first conf, which forgets any that the registry lists again or no longer holds.
    for (const address of options.previousDeparted?.confirmedGone ?? []) this.confirmedGone.add(address);
    this.endpoints$ = this.snapshots.pipe(filter((snapshot): snapshot is HealthSnapshot => snapshot !== undefined));
    if (this.checker) this.subscription.add(this.checker.status$.subscribe(() => this.onHealthChange()));
    if (this.detector) this.subscription.add(this.detector.ejected$.subscribe(() => this.onHealthChange()));
    this.subscription.add(conf$.subscribe((conf) => this.onConf(conf)));
  }

  /** The latest snapshot, or undefined until the registry has listed the service. */
  current(): HealthSnapshot | undefined {
    return this.snapshots.getValue();
  }

  /**
   * Feeds one traffic outcome to passive health. A connection failure is conclusive in two cases
   * where the registry already doubts the instance: one held after a post-outage removal leaves
   * the set at once (the registry was right), and any instance of a service whose registry has
   * just recovered from an outage is ejected at once instead of after `consecutiveErrors` (its
   * node may be a leftover of an owner that died during the outage). Retries carry the request on.
   */
  record(address: string, outcome: UpstreamOutcome): void {
    const connectFailure = outcome.errorClass === 'connect-refused' || outcome.errorClass === 'connect-timeout';
    if (connectFailure && this.lastConf?.held?.has(address) && !this.confirmedGone.has(address)) {
      this.confirmedGone.add(address);
      this.log.warn({ address, errorClass: outcome.errorClass }, 'held instance refused a connection: dropping it as the registry said');
      this.onConf(this.lastConf);
      return;
    }
    if (connectFailure && this.lastConf?.recovering?.()) this.detector?.ejectNow(address);
    this.detector?.record(address, outcome);
  }

  /** What is remembered now of instances that left: failing verdicts (with active checks), running ejections (with outlier detection), and held instances that refused a connection. */
  departedHealth(): DepartedHealth {
    return { unhealthyUntil: this.checker?.departedVerdicts() ?? new Map(), ejectedUntil: this.detector?.parkedEjections() ?? new Map(), confirmedGone: new Set(this.confirmedGone) };
  }

  /** By address: the past ejections not yet forgiven of instances present or departed (with outlier detection). */
  ejectionHistory(): ReadonlyMap<string, EjectionHistory> {
    return this.detector?.history() ?? new Map();
  }

  /** The addresses, present or departed, whose failing verdict answered an earlier check and still awaits the first answer of this set's. */
  awaitingFirstAnswer(): ReadonlySet<string> {
    return this.checker?.awaitingFirstAnswer() ?? new Set();
  }

  /** Stops checks and timers, completes `endpoints$`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscription.unsubscribe();
    for (const { timer } of this.departed.values()) clearTimeout(timer);
    this.departed.clear();
    this.checker?.close();
    this.detector?.close();
    healthPanic.remove({ service: this.service });
    this.snapshots.complete();
  }

  private onConf(conf: ServiceConf): void {
    this.lastConf = conf;
    const held: ReadonlyMap<string, HeldInstance> = conf.held ?? new Map();
    for (const address of [...this.confirmedGone]) if (!held.has(address)) this.confirmedGone.delete(address);
    const instances = conf.instances.filter((instance) => !this.confirmedGone.has(instanceAddress(instance)));
    const next = new Set(instances.map(instanceAddress));
    for (const instance of this.members) {
      const address = instanceAddress(instance);
      if (!next.has(address) && !this.confirmedGone.has(address)) this.depart(address, instance);
    }
    for (const address of next) this.forget(address);
    this.members = instances;
    this.listed = true;
    this.syncTargets();
    this.recompute();
  }

  /** Envoy's removal rule: an endpoint outside the registry stays only while it passes checks and is not ejected. */
  private stillPassing(address: string): boolean {
    return this.checker?.health(address) === 'healthy' && !this.detector?.isEjected(address);
  }

  private depart(address: string, instance: Instance): void {
    if (this.removalGraceMs <= 0 || !this.stillPassing(address)) return;
    const timer = setTimeout(() => {
      this.departed.delete(address);
      this.syncTargets();
      this.recompute();
    }, this.removalGraceMs);
    timer.unref();
    this.departed.set(address, { instance, timer });
  }

  private forget(address: string): boolean {
    const entry = this.departed.get(address);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.departed.delete(address);
    return true;
  }

  private onHealthChange(): void {
    if (this.syncing) {
      this.changedWhileSyncing = true;
      return;
    }
    let dropped = false;
    for (const address of [...this.departed.keys()]) {
      if (!this.stillPassing(address)) dropped = this.forget(address) || dropped;
    }
    if (dropped) this.syncTargets();
    this.recompute();
  }

  private syncTargets(): void {
    const instances = [...this.members, ...[...this.departed.values()].map((entry) => entry.instance)];
    // As the panic share counts: the endpoints that would take traffic were they healthy.
    const idle = [...this.members.filter((instance) => instance.weight <= 0 || instance.draining === true).map(instanceAddress), ...this.departed.keys()];
    this.syncing = true;
    try {
      this.detector?.setMembers(instances.map(instanceAddress), idle);
      this.checker?.track(instances.map((instance) => ({ service: this.service, address: instanceAddress(instance), host: instance.host, port: instance.port, protocol: instance.protocol })));
    } finally {
      this.syncing = false;
    }
    if (this.changedWhileSyncing) {
      this.changedWhileSyncing = false;
      this.onHealthChange();
    }
  }

  private recompute(): void {
    if (!this.listed || this.closed) return;
    const describe = (instance: Instance, inRegistry: boolean): Omit<EndpointHealth, 'routable'> => {
      const address = instanceAddress(instance);
      const health = { address, instance, inRegistry, active: this.checker?.health(address) ?? 'unknown', ejected: this.detector?.isEjected(address) ?? false };
      const ejectedUntil = health.ejected ? this.detector?.ejectedUntil(address) : undefined;
      return ejectedUntil === undefined ? health : { ...health, ejectedUntil };
    };
    const endpoints = [
      ...this.members.map((instance) => describe(instance, true)),
      ...[...this.departed.values()].map((entry) => describe(entry.instance, false)),
    ];
    const snapshot = snapshotOf(this.service, endpoints, this.panicThresholdPercent);
    const previous = this.snapshots.getValue();
    if (previous && sameSnapshot(previous, snapshot)) return;
    if (snapshot.panic !== previous?.panic) {
      healthPanic.set({ service: this.service }, snapshot.panic ? 1 : 0);
      const healthy = snapshot.endpoints.filter((endpoint) => endpoint.inRegistry && isHealthy(endpoint)).length;
      if (snapshot.panic) this.log.warn({ healthy, members: this.members.length, thresholdPercent: this.panicThresholdPercent }, 'panic: too few healthy endpoints, routing to all');
      else if (previous) this.log.info({ healthy, members: this.members.length }, 'panic over');
    }
    this.snapshots.next(snapshot);
  }
}
