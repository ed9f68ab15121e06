import { BehaviorSubject, type Observable } from 'rxjs';
import { componentLogger, type Logger } from '../logger.ts';
import { outlierEjectionsSkippedTotal, outlierEjectionsTotal } from './health-metrics.ts';
import { isUpstreamFailure, type UpstreamOutcome } from './upstream-outcome.ts';

/** Envoy's default: five failures in a row eject. */
export const DEFAULT_CONSECUTIVE_ERRORS = 5;
/** Envoy's default base ejection time. */
export const DEFAULT_BASE_EJECTION_MS = 30_000;
/** Envoy's default cap on one ejection. */
export const DEFAULT_MAX_EJECTION_MS = 300_000;
/** Envoy's default maximum share of a service that may be ejected at once. */
export const DEFAULT_MAX_EJECTION_PERCENT = 10;
/** Envoy's default analysis interval: each one spent back in service forgives one past ejection. */
export const DEFAULT_EJECTION_DECAY_INTERVAL_MS = 10_000;

/** Passive outlier detection settings of one service. */
export interface OutlierDetectionOptions {
  readonly consecutiveErrors?: number;
  readonly baseEjectionMs?: number;
  readonly maxEjectionMs?: number;
  readonly maxEjectionPercent?: number;
  readonly decayIntervalMs?: number;
}

/** What counts towards an endpoint's next ejection: its past ejections and when the last one ended. */
export interface EjectionHistory {
  readonly timesEjected: number;
  /** When its last ejection ended (the detector's clock); each `decayIntervalMs` since forgives one. */
  readonly returnedAt: number;
}

interface Tracker {
  consecutive: number;
  timesEjected: number;
  returnedAt: number;
  timer: NodeJS.Timeout | undefined;
  /** When the current ejection ends (clock of `now`); meaningful only while `timer` is set. */
  until: number;
}

/**
 * Passive health from real traffic, after Envoy's consecutive-5xx outlier detection: after
 * `consecutiveErrors` failures in a row (5xx or transport errors; client cancels do not count) an
 * endpoint is ejected for `baseEjectionMs × times ejected`, capped at `maxEjectionMs`; the count
 * stops growing at the cap. Each `decayIntervalMs` spent back in service forgives one past ejection. No ejection happens while
 * it would put more than `maxEjectionPercent` of the members out, except that one endpoint may
 * always be ejected (as Envoy does). The share counts only the members that would otherwise take
 * traffic (Envoy's hosts of the cluster): an idle one (see `setMembers`) counts for neither side,
 * and ejecting it is never held back, as it takes no capacity away.
 */
export class OutlierDetector {
  /** Replays the ejected addresses, then emits a new set on every ejection and return. */
  readonly ejected$: Observable<ReadonlySet<string>>;

  private readonly ejected = new BehaviorSubject<ReadonlySet<string>>(new Set());
  private readonly trackers = new Map<string, Tracker>();
  /** Members that take no traffic whatever their health: left out of the ejection cap. */
  private idle: ReadonlySet<string> = new Set();
  /**
   * Endpoints that left the members with past ejections not yet forgiven: a running ejection runs
   * on out of sight, and one that comes back before it ends serves the rest of it; one that comes
   * back later keeps its count of past ejections, less what its time away forgave (a registry flap
   * must not clear an ejection nor its history). Dropped once the count is forgiven.
   */
  private readonly parked = new Map<string, Tracker>();
  private readonly settings: Required<OutlierDetectionOptions>;
  private readonly log: Logger;
  private closed = false;
  /** Ejections carried over from the detector this one replaces, until the first `setMembers()`. */
  private carried: ReadonlyMap<string, number>;
  /** Counts of past ejections carried over from the detector this one replaces, until the first `setMembers()`. */
  private carriedHistory: ReadonlyMap<string, EjectionHistory>;

  constructor(
    private readonly service: string,
    options: OutlierDetectionOptions = {},
    private readonly now: () => number = Date.now,
    /** By address: when the ejections of the detector this one replaces (a reload) end, on the clock of `now`; they run on here. */
    carried: ReadonlyMap<string, number> = new Map(),
    /** By address: when the ejections of endpoints that had left the detector this one replaces end (`parkedEjections()`); they run on parked here. */
    parked: ReadonlyMap<string, number> = new Map(),
    /** By address: `history()` of the detector this one replaces, present and departed endpoints alike: their counts carry on here. */
    history: ReadonlyMap<string, EjectionHistory> = new Map(),
  ) {
    this.settings = {
      consecutiveErrors: Math.max(1, options.consecutiveErrors ?? DEFAULT_CONSECUTIVE_ERRORS),
      baseEjectionMs: options.baseEjectionMs ?? DEFAULT_BASE_EJECTION_MS,
      maxEjectionMs: Math.max(options.maxEjectionMs ?? DEFAULT_MAX_EJECTION_MS, options.baseEjectionMs ?? DEFAULT_BASE_EJECTION_MS),
      maxEjectionPercent: options.maxEjectionPercent ?? DEFAULT_MAX_EJECTION_PERCENT,
      decayIntervalMs: options.decayIntervalMs ?? DEFAULT_EJECTION_DECAY_INTERVAL_MS,
    };
    this.carried = carried;
    // A count past where these settings stop counting (another base or cap before the reload) would
    // take more than two decay intervals to shorten the next ejection: it stops at this cap too.
    const countCap = this.countCap();
    this.carriedHistory = new Map([...history].map(([address, past]) => [address, { ...past, timesEjected: Math.min(past.timesEjected, countCap) }]));
    const start = now();
    for (const [address, until] of parked) {
      if (until <= start) continue;
      const tracker: Tracker = { consecutive: 0, timesEjected: this.carriedHistory.get(address)?.timesEjected ?? 1, returnedAt: start, timer: undefined, until };
      tracker.timer = setTimeout(() => this.restore(address, tracker), until - start);
      tracker.timer.unref();
      this.parked.set(address, tracker);
    }
    this.ejected$ = this.ejected.asObservable();
    this.log = componentLogger('outlier-detector', { service });
  }

  /** True while `address` is ejected. */
  isEjected(address: string): boolean {
    return this.ejected.getValue().has(address);
  }

  /** When the ejection of `address` ends (the detector's clock, epoch ms by default), or undefined when it is not ejected. */
  ejectedUntil(address: string): number | undefined {
    const tracker = this.trackers.get(address);
    return tracker?.timer === undefined ? undefined : tracker.until;
  }

  /** By address: when the ejection of each endpoint that left while ejected ends (see `setMembers`). */
  parkedEjections(): ReadonlyMap<string, number> {
    return new Map([...this.parked].flatMap(([address, tracker]) => (tracker.timer === undefined ? [] : [[address, tracker.until] as const])));
  }

  /** By address: the past ejections not yet forgiven of each endpoint, present or departed, for a detector that replaces this one. */
  history(): ReadonlyMap<string, EjectionHistory> {
    const all = [...this.trackers, ...this.parked].filter(([, tracker]) => tracker.timer !== undefined || !this.forgiven(tracker));
    return new Map(all.map(([address, { timesEjected, returnedAt }]) => [address, { timesEjected, returnedAt }]));
  }

  /**
   * Sets the endpoints outcomes may be recorded for. One that leaves and comes back is judged as if
   * it had stayed without traffic meanwhile (Envoy keeps a host's ejection multiplier while the host
   * exists; a registry flap is the same host): an ejection it was serving runs on, and should it come
   * back before the end it is ejected still; its count of past ejections stays, each `decayIntervalMs`
   * since its last ejection ended forgiving one, whether it spent them away or not. One that comes
   * back with nothing left to forgive starts afresh, as a new endpoint would. `idle` names the
   * members that take no traffic whatever their health (in removal grace, draining, weight 0):
   * they count for neither side of `maxEjectionPercent`.
   */
  setMembers(addresses: Iterable<string>, idle: Iterable<string> = []): void {
    if (this.closed) return;
    const wanted = new Set(addresses);
    const wasIdle = this.idle;
    this.idle = new Set(idle);
    for (const [address, tracker] of this.trackers) {
      if (wanted.has(address)) continue;
      this.trackers.delete(address);
      if (tracker.timer !== undefined || !this.forgiven(tracker)) this.parked.set(address, tracker);
    }
    for (const [address, tracker] of this.parked) if (tracker.timer === undefined && this.forgiven(tracker)) this.parked.delete(address);
    const resumed: string[] = [];
    const returning: [string, Tracker][] = [];
    for (const address of wanted) {
      if (this.trackers.has(address)) continue;
      const parked = this.parked.get(address);
      if (parked) {
        this.parked.delete(address);
        parked.consecutive = 0;
        this.trackers.set(address, parked);
        if (parked.timer !== undefined) returning.push([address, parked]);
        continue;
      }
      const history = this.carriedHistory.get(address);
      const tracker: Tracker = { consecutive: 0, timesEjected: history?.timesEjected ?? 0, returnedAt: history?.returnedAt ?? this.now(), timer: undefined, until: 0 };
      this.trackers.set(address, tracker);
      const until = this.carried.get(address);
      if (until !== undefined && until > this.now()) {
        // The rest of an ejection made under the settings before a reload; it counts as one ejection at least.
        tracker.timesEjected = Math.max(1, tracker.timesEjected);
        tracker.returnedAt = this.now();
        tracker.until = until;
        tracker.timer = setTimeout(() => this.restore(address, tracker), until - tracker.returnedAt);
        tracker.timer.unref();
        resumed.push(address);
      }
    }
    // Only the endpoints of the set in force at the replacement: one that comes back later is parked below.
    this.carried = new Map();
    // Those of the replaced detector's history that are not members wait parked, as if they had left here.
    for (const [address, { timesEjected, returnedAt }] of this.carriedHistory) {
      if (wanted.has(address) || this.parked.has(address)) continue;
      const tracker: Tracker = { consecutive: 0, timesEjected, returnedAt, timer: undefined, until: 0 };
      if (!this.forgiven(tracker)) this.parked.set(address, tracker);
    }
    this.carriedHistory = new Map();
    const current = this.ejected.getValue();
    const kept = new Set([...[...current].filter((address) => wanted.has(address)), ...resumed]);
    // One ejected while it took no traffic (ejecting it cost nothing) that takes traffic again counts
    // from now on: it is judged as one that comes back.
    for (const address of [...kept]) {
      if (!wasIdle.has(address) || this.idle.has(address)) continue;
      kept.delete(address);
      returning.push([address, this.trackers.get(address)!]);
    }
    // One that comes back serves the rest of its ejection within maxEjectionPercent, as an ejection
    // would be decided now (others were ejected while it was away); beyond it, it is back in service.
    for (const [address, tracker] of returning) {
      if (this.withinEjectionCap(address, kept)) {
        kept.add(address);
        continue;
      }
      clearTimeout(tracker.timer);
      tracker.timer = undefined;
      tracker.consecutive = 0;
      tracker.returnedAt = this.now();
      this.log.info({ address }, 'ejected endpoint came back to the members or takes traffic again; back in service, as the ejection would exceed maxEjectionPercent');
    }
    if (kept.size !== current.size || [...current].some((address) => !kept.has(address))) this.ejected.next(kept);
  }

  /** Counts one outcome of traffic to `address`; ignored for non-members and while it is ejected. */
  record(address: string, outcome: UpstreamOutcome): void {
    const tracker = this.trackers.get(address);
    if (!tracker || tracker.timer !== undefined) return;
    if (!isUpstreamFailure(outcome)) {
      if (outcome.ok) tracker.consecutive = 0;
      return;
    }
    tracker.consecutive += 1;
    if (tracker.consecutive >= this.settings.consecutiveErrors) this.eject(address, tracker);
  }

  /**
   * Ejects `address` now, without waiting for `consecutiveErrors`, for a failure that is already
   * conclusive (see `EndpointSet.record`). The ejection time and the percent cap apply as usual.
   */
  ejectNow(address: string): void {
    const tracker = this.trackers.get(address);
    if (!tracker || tracker.timer !== undefined || this.closed) return;
    tracker.consecutive = Math.max(tracker.consecutive, 1);
    this.eject(address, tracker);
  }

  /** Cancels every return timer and completes `ejected$`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const tracker of [...this.trackers.values(), ...this.parked.values()]) clearTimeout(tracker.timer);
    this.trackers.clear();
    this.parked.clear();
    this.ejected.complete();
  }

  private eject(address: string, tracker: Tracker): void {
    const current = this.ejected.getValue();
    if (!this.withinEjectionCap(address, current)) {
      outlierEjectionsSkippedTotal.inc({ service: this.service });
      return;
    }
    const now = this.now();
    const forgiven = Math.floor((now - tracker.returnedAt) / this.settings.decayIntervalMs);
    const { baseEjectionMs, maxEjectionMs } = this.settings;
    tracker.timesEjected = Math.min(Math.max(0, tracker.timesEjected - forgiven) + 1, this.countCap());
    const durationMs = Math.min(baseEjectionMs * tracker.timesEjected, maxEjectionMs);
    tracker.until = now + durationMs;
    tracker.timer = setTimeout(() => this.restore(address, tracker), durationMs);
    tracker.timer.unref();
    outlierEjectionsTotal.inc({ service: this.service });
    this.log.warn({ address, durationMs, timesEjected: tracker.timesEjected, consecutive: tracker.consecutive }, 'endpoint ejected');
    this.ejected.next(new Set([...current, address]));
  }

  /**
   * Whether `address` may be ejected while `ejected` are: always when it is idle, else when the
   * members that take traffic would stay within `maxEjectionPercent` ejected, or none of them is yet.
   */
  private withinEjectionCap(address: string, ejected: ReadonlySet<string>): boolean {
    if (this.idle.has(address)) return true;
    let counted = 0;
    for (const member of this.trackers.keys()) if (!this.idle.has(member)) counted += 1;
    let out = 0;
    for (const member of ejected) if (member !== address && this.trackers.has(member) && !this.idle.has(member)) out += 1;
    return out === 0 || (out + 1) * 100 <= this.settings.maxEjectionPercent * counted;
  }

  /**
   * Where the count of past ejections stops: where the ejection reaches `maxEjectionMs` (as Envoy's
   * backoff does), so two decay intervals back in service shorten the next one, however long the
   * flapping before was.
   */
  private countCap(): number {
    const { baseEjectionMs, maxEjectionMs } = this.settings;
    return baseEjectionMs > 0 ? Math.max(1, Math.ceil(maxEjectionMs / baseEjectionMs)) : 1;
  }

  /** True when `decayIntervalMs` spans since its last ejection ended have forgiven every past one. */
  private forgiven(tracker: Tracker): boolean {
    return tracker.timesEjected <= Math.floor((this.now() - tracker.returnedAt) / this.settings.decayIntervalMs);
  }

  private restore(address: string, tracker: Tracker): void {
    tracker.timer = undefined;
    tracker.consecutive = 0;
    tracker.returnedAt = this.now();
    // The ejection of an endpoint that left ran out before it came back: its count stays parked.
    if (this.parked.get(address) === tracker) return;
    this.log.info({ address }, 'ejected endpoint returned');
    const next = new Set(this.ejected.getValue());
    next.delete(address);
    this.ejected.next(next);
  }
}
