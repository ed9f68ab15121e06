import type { BreakerThresholds } from '../config/types-breaker.ts';
import { RollingWindow } from './rolling-window.ts';

/** Hystrix's three states: `closed` lets everything through, `open` nothing, `half-open` a few trial calls. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** What `admit` decided: refused, a normal call, or one of the half-open trials. */
export const Admission = { Refused: 0, Admitted: 1, Trial: 2 } as const;
/** One of `Admission`'s values. */
export type Admission = (typeof Admission)[keyof typeof Admission];

/** Told of every state change, with the window's figures when it opened; must not throw. */
export type BreakerListener = (from: BreakerState, to: BreakerState, figures: { readonly requests: number; readonly failures: number }) => void;

const REQUESTS = 0;
const FAILURES = 1;

/**
 * A Hystrix circuit breaker (closed → open after `requestVolumeThreshold` calls with at least
 * `errorPercentThreshold` % failures in the rolling window; open → half-open after `sleepWindowMs`;
 * half-open → closed after `halfOpenRequests` trial successes, back to open on a trial failure).
 * The thresholds are checked at every outcome recorded while closed, a success's too (an error
 * percentage above the threshold opens the breaker at the call that brings the window to the volume).
 * Driven by the caller's clock and outcomes: no timer, no allocation per call. Outcomes of calls
 * admitted before a state change (not trials) do not move a half-open breaker.
 */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private readonly window: RollingWindow;
  private openedAt = 0;
  private trialsAdmitted = 0;
  private trialSuccesses = 0;
  private halfOpenings = 0;
  /** Epoch ms of the last change, for views. */
  changedAt = Date.now();

  constructor(
    readonly thresholds: BreakerThresholds,
    private readonly listener: BreakerListener = () => undefined,
  ) {
    this.window = new RollingWindow(thresholds.windowMs, thresholds.buckets, 2);
  }

  get state(): BreakerState {
    return this.current;
  }

  /**
   * The number of the current (or last) half-open period: a trial admitted in an earlier one that
   * ends later must neither count as a trial nor give back a slot of this one (`RequestGuard`).
   */
  get round(): number {
    return this.halfOpenings;
  }

  /** Whether a call may go ahead at `nowMs`; a `Trial` must end in `record(…, true)` or `releaseTrial()`. */
  admit(nowMs: number): Admission {
    if (this.current === 'closed') return Admission.Admitted;
    if (this.current === 'open') {
      if (nowMs - this.openedAt < this.thresholds.sleepWindowMs) return Admission.Refused;
      this.trialsAdmitted = 0;
      this.trialSuccesses = 0;
      this.halfOpenings += 1;
      this.move('half-open', 0, 0);
    }
    if (this.trialsAdmitted >= this.thresholds.halfOpenRequests) return Admission.Refused;
    this.trialsAdmitted += 1;
    return Admission.Trial;
  }

  /**
   * True unless closed: a retry should not go out. Open, no call should; half-open (or open past its
   * sleep, before the first trial), only the trials, so that a retry of a call admitted while closed
   * is not one more call beside them.
   */
  refusesRetries(): boolean {
    return this.current !== 'closed';
  }

  /** One call's outcome: `failed` by the one upstream classification (plus the configured statuses). */
  record(nowMs: number, failed: boolean, trial: boolean): void {
    if (this.current === 'closed') {
      // Checked on a success too (resilience4j's onSuccess): the success that brings the window to the
      // volume, or that comes once older successes left it, finds the rate the docs open at.
      const requests = this.window.add(nowMs, REQUESTS);
      const failures = failed ? this.window.add(nowMs, FAILURES) : this.window.total(nowMs, FAILURES);
      if (requests >= this.thresholds.requestVolumeThreshold && failures * 100 >= this.thresholds.errorPercentThreshold * requests) this.open(nowMs, requests, failures);
      return;
    }
    if (this.current !== 'half-open' || !trial) return;
    if (failed) return this.open(nowMs, 0, 1);
    this.trialSuccesses += 1;
    if (this.trialSuccesses >= this.thresholds.halfOpenRequests) {
      this.window.reset();
      this.move('closed', 0, 0);
    }
  }

  /** A trial that ended without an outcome for the upstream (the client left, no instance): its slot goes to the next call. */
  releaseTrial(): void {
    if (this.current === 'half-open' && this.trialsAdmitted > 0) this.trialsAdmitted -= 1;
  }

  /** The window's figures now, for views. */
  figures(nowMs: number): { requests: number; failures: number } {
    return { requests: this.window.total(nowMs, REQUESTS), failures: this.window.total(nowMs, FAILURES) };
  }

  /** Epoch ms at which an open breaker will let a trial through; undefined unless open. */
  retryAt(nowMs: number): number | undefined {
    return this.current === 'open' ? Date.now() + Math.max(0, this.openedAt + this.thresholds.sleepWindowMs - nowMs) : undefined;
  }

  private open(nowMs: number, requests: number, failures: number): void {
    this.openedAt = nowMs;
    this.move('open', requests, failures);
  }

  private move(to: BreakerState, requests: number, failures: number): void {
    const from = this.current;
    this.current = to;
    this.changedAt = Date.now();
    this.listener(from, to, { requests, failures });
  }
}
