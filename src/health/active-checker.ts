import { BehaviorSubject, type Observable } from 'rxjs';
import { componentLogger, type Logger } from '../logger.ts';
import { ActiveCheckLoop, type CheckLoopSettings } from './active-check-loop.ts';
import { healthChecksTotal, healthTransitionsTotal } from './health-metrics.ts';
import type { ActiveHealth } from './health-view.ts';
import type { HealthProbe, ProbeResult, ProbeTarget } from './probe.ts';

/** Default time between checks of a healthy or unchecked endpoint. */
export const DEFAULT_CHECK_INTERVAL_MS = 10_000;
/** Default time a probe may take before it counts as a failure. */
export const DEFAULT_CHECK_TIMEOUT_MS = 1_000;
/** Default consecutive passes that bring an unhealthy endpoint back (HAProxy's `rise`). */
export const DEFAULT_HEALTHY_THRESHOLD = 2;
/** Default consecutive failures that mark an endpoint unhealthy (HAProxy's `fall`). */
export const DEFAULT_UNHEALTHY_THRESHOLD = 3;
/**
 * How long the `unhealthy` verdict of an endpoint that left the targets is remembered: one that
 * comes back within it (a registry flap: an agent's session expired, a lease was re-granted) starts
 * from it and must pass `healthyThreshold` checks before it gets traffic again. Envoy's default
 * longest ejection, 300 s.
 */
export const DEPARTED_VERDICT_MEMORY_MS = 300_000;

/** Active health check settings of one service. */
export interface ActiveCheckOptions {
  /** What one check does: `httpProbe({ path })`, `tcpProbe()` or a custom probe. */
  readonly probe: HealthProbe;
  readonly intervalMs?: number;
  /** Interval while an endpoint is unhealthy (Envoy's `unhealthy_interval`); `intervalMs` by default. */
  readonly unhealthyIntervalMs?: number;
  /** Up to this much is added at random to every interval, so checks do not march in step; a tenth of the interval by default. */
  readonly jitterMs?: number;
  readonly timeoutMs?: number;
  readonly healthyThreshold?: number;
  readonly unhealthyThreshold?: number;
}

/**
 * Runs active checks for the endpoints of one service. `track()` sets the targets: new ones start
 * checking, departed ones stop (their probe is aborted and its result dropped). A target that left
 * unhealthy and comes back within `DEPARTED_VERDICT_MEMORY_MS` starts unhealthy; any other new
 * target starts `unknown`. Results feed `status$`; transitions are logged and counted.
 */
export class ActiveHealthChecker {
  /** Replays the health of every tracked address, then emits a new map whenever one changes or targets change. */
  readonly status$: Observable<ReadonlyMap<string, ActiveHealth>>;

  private readonly statuses = new BehaviorSubject<ReadonlyMap<string, ActiveHealth>>(new Map());
  private readonly loops = new Map<string, ActiveCheckLoop>();
  /** By address: until when (epoch ms) the `unhealthy` verdict of a target that left is remembered. */
  private readonly departedUnhealthy: Map<string, number>;
  private readonly settings: CheckLoopSettings;
  private readonly log: Logger;
  private closed = false;
  /** Verdicts carried over from the checker this one replaces, until the first `track()`. */
  private carried: ReadonlyMap<string, ActiveHealth>;
  /** Addresses whose carried `unhealthy` verdict answered another check: it holds until this check's first answer. */
  private readonly provisional: Set<string>;

  constructor(
    private readonly service: string,
    options: ActiveCheckOptions,
    random: () => number = Math.random,
    /** By address: the health each endpoint had under the checker this one replaces (a reload), to start from. */
    carried: ReadonlyMap<string, ActiveHealth> = new Map(),
    /** By address: `departedVerdicts()` of the checker this one replaces, remembered as if this one had seen them leave. */
    departed: ReadonlyMap<string, number> = new Map(),
    /**
     * True when the checker this one replaces asked something else (another path, port, protocol):
     * its failing verdicts (`carried`, `departed`) keep an endpoint out only until this checker's
     * first answer, since they say nothing of this check, yet an endpoint that failed is not sent
     * traffic before anything vouches for it. When it asked the same, the addresses whose failing
     * verdict there still answered an earlier check (its `awaitingFirstAnswer()`): the same holds for them.
     */
    carriedFromOtherCheck: boolean | ReadonlySet<string> = false,
  ) {
    this.carried = carried;
    this.departedUnhealthy = new Map(departed);
    const failing = [...departed.keys(), ...[...carried].flatMap(([address, health]) => (health === 'unhealthy' ? [address] : []))];
    this.provisional = new Set(carriedFromOtherCheck === true ? failing : carriedFromOtherCheck === false ? [] : failing.filter((address) => carriedFromOtherCheck.has(address)));
    const intervalMs = options.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.settings = {
      probe: options.probe,
      intervalMs,
      unhealthyIntervalMs: options.unhealthyIntervalMs ?? intervalMs,
      jitterMs: options.jitterMs ?? intervalMs / 10,
      timeoutMs: options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS,
      healthyThreshold: Math.max(1, options.healthyThreshold ?? DEFAULT_HEALTHY_THRESHOLD),
      unhealthyThreshold: Math.max(1, options.unhealthyThreshold ?? DEFAULT_UNHEALTHY_THRESHOLD),
      random,
    };
    this.status$ = this.statuses.asObservable();
    this.log = componentLogger('health-checker', { service });
  }

  /** The health of `address`, or undefined when it is not tracked. */
  health(address: string): ActiveHealth | undefined {
    return this.loops.get(address)?.health;
  }

  /** By address: until when (epoch ms) the `unhealthy` verdict of each target that left is still remembered. */
  departedVerdicts(): ReadonlyMap<string, number> {
    const now = Date.now();
    return new Map([...this.departedUnhealthy].filter(([, until]) => until > now));
  }

  /**
   * The addresses, tracked or remembered as departed, whose `unhealthy` verdict answered the check
   * of a checker this one replaced and still awaits this one's first answer: a checker that replaces
   * this one with the same check holds them out only until its own first answer.
   */
  awaitingFirstAnswer(): ReadonlySet<string> {
    const departed = [...this.departedVerdicts().keys()].filter((address) => this.provisional.has(address));
    const tracked = [...this.loops].flatMap(([address, loop]) => (loop.awaitingFirstAnswer && loop.health === 'unhealthy' ? [address] : []));
    return new Set([...departed, ...tracked]);
  }

  /** Makes `targets` the checked set: starts new addresses, stops departed ones. Ignored after `close()`. */
  track(targets: Iterable<ProbeTarget>): void {
    if (this.closed) return;
    const wanted = new Map<string, ProbeTarget>();
    for (const target of targets) wanted.set(target.address, target);
    let changed = false;
    const now = Date.now();
    for (const [address, until] of this.departedUnhealthy) if (until <= now) this.departedUnhealthy.delete(address);
    for (const [address, loop] of this.loops) {
      if (wanted.has(address)) continue;
      loop.stop();
      this.loops.delete(address);
      if (loop.awaitingFirstAnswer) this.provisional.add(address);
      if (loop.health === 'unhealthy') this.departedUnhealthy.set(address, now + DEPARTED_VERDICT_MEMORY_MS);
      changed = true;
    }
    for (const [address, target] of wanted) {
      const loop = this.loops.get(address);
      if (loop) {
        loop.target = target;
        continue;
      }
      const initial = this.carried.get(address) ?? (this.departedUnhealthy.has(address) ? 'unhealthy' : undefined);
      this.departedUnhealthy.delete(address);
      const provisional = initial === 'unhealthy' && this.provisional.has(address);
      this.provisional.delete(address);
      const created = new ActiveCheckLoop(target, this.settings, (from, result, previous) => this.onResult(from, result, previous), initial, provisional);
      this.loops.set(address, created);
      created.start();
      changed = true;
    }
    // Only the endpoints of the set in force at the replacement: one that comes back later starts afresh.
    this.carried = new Map();
    if (changed) this.publish();
  }

  /** Stops every check and completes `status$`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const loop of this.loops.values()) loop.stop();
    this.loops.clear();
    this.departedUnhealthy.clear();
    this.provisional.clear();
    this.statuses.complete();
  }

  private onResult(loop: ActiveCheckLoop, result: ProbeResult, previous: ActiveHealth): void {
    healthChecksTotal.inc({ service: this.service, result: result.healthy ? 'pass' : 'fail' });
    if (loop.health === previous) return;
    healthTransitionsTotal.inc({ service: this.service, state: loop.health });
    // A first pass only confirms what was presumed; at start-up there is one per endpoint.
    const level = loop.health === 'unhealthy' ? 'warn' : previous === 'unknown' ? 'debug' : 'info';
    this.log[level]({ address: loop.target.address, health: loop.health, detail: result.detail }, 'endpoint health changed');
    this.publish();
  }

  private publish(): void {
    this.statuses.next(new Map([...this.loops].map(([address, loop]) => [address, loop.health])));
  }
}
