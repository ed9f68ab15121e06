import type { CircuitBreakerSettings, ConcurrencyLimits, RetryBudgetSettings } from '../config/index.ts';
import { countsAgainstUpstream, type GatewayErrorClass } from '../proxy/upstream-error.ts';
import { Admission, CircuitBreaker, type BreakerListener } from './circuit-breaker.ts';
import { retryBudgetExhaustedTotal, trafficRejectionsTotal } from './guard-metrics.ts';
import { RetryBudget } from './retry-budget.ts';

/** `RequestGuard.enter` refused: the breaker is open (or has no trial slot left). */
export const REFUSED_OPEN = -1;
/** `RequestGuard.enter` refused: the breaker's `maxConcurrentRequests` are in flight. */
export const REFUSED_MAX_CONCURRENT = -2;
/** `RequestGuard.enter` refused: `maxRequests` in flight and `maxPendingRequests` waiting. */
export const REFUSED_MAX_REQUESTS = -3;
/** `RequestGuard.enter`: `maxRequests` in flight, but the request may wait for a slot (`RequestGuard.waitForSlot`). */
export const MUST_WAIT = -4;

/** A breaker with its settings, for a service or one route; outlives configurations while its settings do not change. */
export class BreakerSlot {
  readonly breaker: CircuitBreaker;
  /** 1 at the index of each status that counts as a failure. */
  readonly failing = new Uint8Array(600);
  inFlight = 0;

  constructor(
    readonly service: string,
    readonly route: string | null,
    readonly settings: CircuitBreakerSettings,
    listener: BreakerListener,
  ) {
    this.breaker = new CircuitBreaker(settings, listener);
    for (const status of settings.failureStatuses) {
      if (typeof status === 'number') this.failing[status] = 1;
      else this.failing.fill(1, status.from, status.to + 1);
    }
  }
}

/** The caps and retry budget of one service; outlives configurations while its settings do not change. */
export class ServiceLimits {
  inFlight = 0;
  pending = 0;
  activeRetries = 0;
  readonly budget: RetryBudget | undefined;
  /** Requests waiting for a slot, oldest first; made on the first wait. */
  private waiters: (() => void)[] | undefined;
  readonly rejectedMaxRequests;
  readonly rejectedMaxPending;
  readonly exhaustedBudget;
  readonly exhaustedActive;
  readonly exhaustedOpen;

  constructor(
    readonly service: string,
    readonly limits: ConcurrencyLimits,
    budget: RetryBudgetSettings | false,
  ) {
    this.budget = budget ? new RetryBudget(budget) : undefined;
    // Label children looked up once: a refusal costs one addition, not a label hash.
    this.rejectedMaxRequests = trafficRejectionsTotal.labels(service, 'max-requests');
    this.rejectedMaxPending = trafficRejectionsTotal.labels(service, 'max-pending');
    this.exhaustedBudget = retryBudgetExhaustedTotal.labels(service, 'budget');
    this.exhaustedActive = retryBudgetExhaustedTotal.labels(service, 'max-active-retries');
    this.exhaustedOpen = retryBudgetExhaustedTotal.labels(service, 'circuit-open');
  }

  /**
   * Resolves true when a slot frees within `timeoutMs`, false otherwise, or false at once when `left`
   * aborts (its client went away): that waiter leaves the line and its place. The exceptional path,
   * so a timer and closures are fine here.
   */
  wait(timeoutMs: number, left?: AbortSignal): Promise<boolean> {
    this.pending += 1;
    return new Promise<boolean>((resolve) => {
      const waiters = (this.waiters ??= []);
      const end = (woken: boolean): void => {
        clearTimeout(timer);
        left?.removeEventListener('abort', gone);
        this.pending -= 1;
        resolve(woken);
      };
      const wake = (): void => end(true);
      const gone = (): void => {
        const index = waiters.indexOf(wake);
        if (index >= 0) waiters.splice(index, 1);
        end(false);
      };
      const timer = setTimeout(gone, timeoutMs);
      waiters.push(wake);
      left?.addEventListener('abort', gone, { once: true });
    });
  }

  /** A request of the service ended: its slot goes to the oldest waiter. */
  release(): void {
    this.inFlight -= 1;
    this.waiters?.shift()?.();
  }
}

/**
 * What the proxy consults for one request of a service through a route: the route's (or the
 * service's) breaker and the service's caps and retry budget. The calls form one protocol: `enter`
 * (and when it says `MUST_WAIT`, `waitForSlot` then `enter` again), a `mayRetry` before each retry
 * with `retryEnded` after it, at most one `record` when the request ends, and `leave` exactly once
 * after an admission.
 */
export class RequestGuard {
  constructor(
    readonly limits: ServiceLimits,
    readonly slot: BreakerSlot | undefined,
    private readonly rejectedOpen: { inc(): void },
    private readonly rejectedConcurrent: { inc(): void },
  ) {}

  /**
   * Whether `enter` must be given the time of the moment: true while the breaker is open or half-open,
   * whose admission is a matter of time (the sleep window). A closed breaker reads no time, and the
   * retry budget is content with a request's arrival (a time before its window's latest bucket counts
   * there), so the usual request enters with its arrival and reads no clock.
   */
  get needsClock(): boolean {
    return this.slot !== undefined && this.slot.breaker.state !== 'closed';
  }

  /**
   * An admission (positive: `Admission.Admitted`, or for a half-open breaker's trial
   * `Admission.Trial` plus the breaker's `round`, so that a trial outliving its half-open period
   * touches no later one) or a refusal code (negative).
   */
  enter(nowMs: number): number {
    const slot = this.slot;
    let admission = 1;
    if (slot) {
      admission = slot.breaker.admit(nowMs);
      if (admission === Admission.Refused) {
        this.rejectedOpen.inc();
        return REFUSED_OPEN;
      }
      const max = slot.settings.maxConcurrentRequests;
      if (max !== undefined && slot.inFlight >= max) {
        if (admission === Admission.Trial) slot.breaker.releaseTrial();
        this.rejectedConcurrent.inc();
        return REFUSED_MAX_CONCURRENT;
      }
    }
    const limits = this.limits;
    const maxRequests = limits.limits.maxRequests;
    if (maxRequests !== undefined && limits.inFlight >= maxRequests) {
      if (admission === Admission.Trial) slot!.breaker.releaseTrial();
      if (limits.pending < limits.limits.maxPendingRequests) return MUST_WAIT;
      (limits.limits.maxPendingRequests > 0 ? limits.rejectedMaxPending : limits.rejectedMaxRequests).inc();
      return REFUSED_MAX_REQUESTS;
    }
    limits.inFlight += 1;
    if (slot) slot.inFlight += 1;
    limits.budget?.request(nowMs);
    return admission === Admission.Trial ? Admission.Trial + slot!.breaker.round : admission;
  }

  /** Waits (bounded by `timeoutMs`, ended by `left` aborting) for a `maxRequests` slot; then call `enter` again. */
  waitForSlot(timeoutMs: number, left?: AbortSignal): Promise<boolean> {
    return this.limits.wait(timeoutMs, left);
  }

  /**
   * Whether an attempt ending in `attemptClass` is a verdict on the upstream that the breaker may
   * hear (an answer, or one of the upstream's faults): false when it was nobody's fault but the
   * client's or the gateway's, which the breaker never counts.
   */
  judges(attemptClass: GatewayErrorClass | undefined): boolean {
    return attemptClass === undefined || attemptClass === 'http-5xx' || attemptClass === 'grpc-error' || countsAgainstUpstream(attemptClass);
  }

  /**
   * The request's outcome for the breaker, once, when it ends: its last attempt that `judges`
   * accepted (Hystrix's command, around the retries: a request retried to success is a success,
   * one whose every attempt failed one failure). `attemptClass` is as the attempt observer gets it
   * (undefined, `http-5xx` or `grpc-error` for an answer, whose `status` decides: for a gRPC call,
   * the status its `grpc-status` stands for, `answerStatusOf`), `admission` what `enter` returned.
   */
  record(nowMs: number, attemptClass: GatewayErrorClass | undefined, status: number, admission: number): void {
    const slot = this.slot;
    if (!slot) return;
    const trial = admission === Admission.Trial + slot.breaker.round;
    const failed = (attemptClass !== undefined && attemptClass !== 'http-5xx' && attemptClass !== 'grpc-error') || slot.failing[status] === 1;
    slot.breaker.record(nowMs, failed, trial);
  }

  /** True (and one retry taken) when the breaker is closed, `maxActiveRetries` is not reached and the budget has a retry left. */
  mayRetry(nowMs: number): boolean {
    const limits = this.limits;
    if (this.slot?.breaker.refusesRetries()) {
      limits.exhaustedOpen.inc();
      return false;
    }
    const maxActive = limits.limits.maxActiveRetries;
    if (maxActive !== undefined && limits.activeRetries >= maxActive) {
      limits.exhaustedActive.inc();
      return false;
    }
    if (limits.budget && !limits.budget.tryRetry(nowMs)) {
      limits.exhaustedBudget.inc();
      return false;
    }
    limits.activeRetries += 1;
    return true;
  }

  /** A retry that `mayRetry` allowed has ended. */
  retryEnded(): void {
    this.limits.activeRetries -= 1;
  }

  /** The admitted request ended; `recorded` tells whether a trial got an outcome (else its slot goes to the next call). */
  leave(admission: number, recorded: boolean): void {
    const slot = this.slot;
    if (slot) {
      slot.inFlight -= 1;
      if (!recorded) this.releaseTrial(admission);
    }
    this.limits.release();
  }

  /** A trial that ended without an outcome gives its breaker slot to the next call (no-op for any other admission). */
  releaseTrial(admission: number): void {
    const slot = this.slot;
    if (slot && admission === Admission.Trial + slot.breaker.round) slot.breaker.releaseTrial();
  }
}
