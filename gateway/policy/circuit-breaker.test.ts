import { describe, expect, it } from 'vitest';
import { DEFAULT_CIRCUIT_BREAKER } from '../config/index.ts';
import { Admission, CircuitBreaker, type BreakerState } from './circuit-breaker.ts';
import { RetryBudget } from './retry-budget.ts';
import { RollingWindow } from './rolling-window.ts';
import { BreakerSlot, RequestGuard, ServiceLimits } from './service-guard.ts';

const thresholds = { windowMs: 10_000, buckets: 10, requestVolumeThreshold: 10, errorPercentThreshold: 50, sleepWindowMs: 5_000, halfOpenRequests: 2 };
const counter = { inc: () => undefined };

describe('RollingWindow', () => {
  it('counts from a clock that starts below one window (a fresh process) and forgets buckets older than the window', () => {
    const window = new RollingWindow(10_000, 10, 1);
    window.add(50, 0);
    window.add(1_500, 0, 2);
    expect(window.total(1_600, 0)).toBe(3);
    expect(window.total(10_100, 0)).toBe(2);
    expect(window.total(11_600, 0)).toBe(0);
  });
});

describe('CircuitBreaker', () => {
  it('opens at the volume threshold with half the calls failed, refuses until the sleep window ends, then closes after its trials succeed', () => {
    const changes: BreakerState[] = [];
    const breaker = new CircuitBreaker(thresholds, (_from, to) => changes.push(to));
    for (let call = 0; call < 9; call += 1) breaker.record(100 + call, call % 2 === 0, false);
    expect(breaker.state).toBe('closed');
    breaker.record(200, true, false);
    expect(breaker.state).toBe('open');
    expect(breaker.admit(5_100)).toBe(Admission.Refused);
    expect(breaker.admit(5_200)).toBe(Admission.Trial);
    expect(breaker.admit(5_200)).toBe(Admission.Trial);
    expect(breaker.admit(5_200)).toBe(Admission.Refused);
    breaker.record(5_300, false, true);
    expect(breaker.state).toBe('half-open');
    breaker.record(5_300, false, true);
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    expect(breaker.admit(5_400)).toBe(Admission.Admitted);
  });

  it('stays closed below the error percentage however many calls, and reopens on a failed trial', () => {
    const breaker = new CircuitBreaker(thresholds);
    for (let call = 0; call < 100; call += 1) breaker.record(call, call % 3 === 0, false);
    expect(breaker.state).toBe('closed');
    for (let call = 0; call < 100; call += 1) breaker.record(200, true, false);
    expect(breaker.state).toBe('open');
    expect(breaker.admit(6_000)).toBe(Admission.Trial);
    breaker.record(6_001, true, false);
    expect(breaker.state).toBe('half-open');
    breaker.record(6_001, true, true);
    expect(breaker.state).toBe('open');
    expect(breaker.admit(6_100)).toBe(Admission.Refused);
  });

  it('checks its thresholds at a success too: the success that brings the window to the volume, or that comes once older successes left it, opens it', () => {
    const opened: { requests: number; failures: number }[] = [];
    const low = { ...thresholds, requestVolumeThreshold: 2, errorPercentThreshold: 1 };
    const breaker = new CircuitBreaker(low, (_from, to, figures) => (to === 'open' ? opened.push({ ...figures }) : undefined));
    breaker.record(100, true, false);
    expect(breaker.state).toBe('closed');
    breaker.record(200, false, false);
    expect(breaker.state).toBe('open');
    expect(opened).toEqual([{ requests: 2, failures: 1 }]);

    // 20 successes, then 10 failures 5 s later (1 in 3, below 50 %): once the successes left the window, the next success finds 10 in 11.
    const aging = new CircuitBreaker(thresholds);
    for (let call = 0; call < 20; call += 1) aging.record(100, false, false);
    for (let call = 0; call < 10; call += 1) aging.record(5_100, true, false);
    expect(aging.state).toBe('closed');
    aging.record(10_500, false, false);
    expect(aging.state).toBe('open');
    expect(aging.figures(10_500)).toEqual({ requests: 11, failures: 10 });
  });

  it('gives a released trial slot to the next call', () => {
    const breaker = new CircuitBreaker({ ...thresholds, halfOpenRequests: 1 });
    for (let call = 0; call < 10; call += 1) breaker.record(0, true, false);
    expect(breaker.admit(5_000)).toBe(Admission.Trial);
    expect(breaker.admit(5_000)).toBe(Admission.Refused);
    breaker.releaseTrial();
    expect(breaker.admit(5_000)).toBe(Admission.Trial);
  });
});

describe('RequestGuard', () => {
  const guardOf = (statuses = DEFAULT_CIRCUIT_BREAKER.failureStatuses) => {
    const slot = new BreakerSlot('svc', null, { ...DEFAULT_CIRCUIT_BREAKER, requestVolumeThreshold: 4, failureStatuses: statuses }, () => undefined);
    return new RequestGuard(new ServiceLimits('svc', { maxConnections: undefined, maxPendingRequests: 0, maxRequests: 1, maxActiveRetries: undefined }, false), slot, counter, counter);
  };

  it('never counts what the client or the gateway caused against the upstream', () => {
    const guard = guardOf();
    for (const errorClass of ['cancelled', 'client-body-error', 'request-rejected', 'deadline-exceeded', 'internal', 'unsupported-protocol'] as const) {
      expect(guard.judges(errorClass)).toBe(false);
    }
    for (const errorClass of [undefined, 'http-5xx', 'grpc-error', 'connect-refused', 'reset-before-headers', 'headers-timeout'] as const) expect(guard.judges(errorClass)).toBe(true);
    for (let call = 0; call < 4; call += 1) guard.record(call, 'connect-refused', 0, Admission.Admitted);
    expect(guard.slot!.breaker.state).toBe('open');
  });

  it('counts the configured statuses as failures and no others', () => {
    const guard = guardOf([429, { from: 502, to: 504 }]);
    for (let call = 0; call < 8; call += 1) guard.record(call, 'http-5xx', 500, Admission.Admitted);
    expect(guard.slot!.breaker.state).toBe('closed');
    for (let call = 0; call < 8; call += 1) guard.record(call, undefined, 429, Admission.Admitted);
    expect(guard.slot!.breaker.state).toBe('open');
  });

  it("counts a gRPC call its server failed by the status it stands for, as a 5xx: failureStatuses decide", () => {
    const narrow = guardOf([429, 503]);
    for (let call = 0; call < 8; call += 1) narrow.record(call, 'grpc-error', 500, Admission.Admitted);
    expect(narrow.slot!.breaker.state).toBe('closed');
    const guard = guardOf();
    for (let call = 0; call < 4; call += 1) guard.record(call, 'grpc-error', 503, Admission.Admitted);
    expect(guard.slot!.breaker.state).toBe('open');
  });

  it('lets exactly halfOpenRequests trials through per half-open period: trials of an earlier period that end later neither count nor free a slot', () => {
    const slot = new BreakerSlot('svc', null, { ...DEFAULT_CIRCUIT_BREAKER, ...thresholds, requestVolumeThreshold: 4, halfOpenRequests: 3 }, () => undefined);
    const guard = new RequestGuard(new ServiceLimits('svc', { maxConnections: undefined, maxPendingRequests: 0, maxRequests: undefined, maxActiveRetries: undefined }, false), slot, counter, counter);
    for (let call = 0; call < 4; call += 1) guard.record(call, 'connect-refused', 0, Admission.Admitted);
    // First half-open period: three trials; one fails at once and the breaker opens again, two (slow) are still out.
    const [slow, left, failing] = [guard.enter(5_100), guard.enter(5_100), guard.enter(5_100)];
    expect([slow, left, failing].every((admission) => admission > 0)).toBe(true);
    guard.record(5_110, 'connect-refused', 0, failing);
    guard.leave(failing, true);
    expect(slot.breaker.state).toBe('open');
    // Second period: three new trials take every slot.
    const trials = [guard.enter(10_200), guard.enter(10_200), guard.enter(10_200)];
    expect(trials.every((admission) => admission > 0)).toBe(true);
    // The first period's slow trials end now: one succeeds, the other's client left (no outcome).
    guard.record(10_300, undefined, 200, slow);
    guard.leave(slow, true);
    guard.leave(left, false);
    expect(guard.enter(10_300)).toBeLessThan(0);
    for (const trial of trials.slice(0, 2)) guard.record(10_400, undefined, 200, trial);
    expect(slot.breaker.state).toBe('half-open');
    guard.record(10_400, undefined, 200, trials[2]!);
    expect(slot.breaker.state).toBe('closed');
  });

  it('makes no retry unless the breaker is closed: one of a call admitted earlier would go out beside the half-open trials', () => {
    const slot = new BreakerSlot('svc', null, { ...DEFAULT_CIRCUIT_BREAKER, ...thresholds, requestVolumeThreshold: 4, halfOpenRequests: 1 }, () => undefined);
    const guard = new RequestGuard(new ServiceLimits('svc', { maxConnections: undefined, maxPendingRequests: 0, maxRequests: undefined, maxActiveRetries: undefined }, false), slot, counter, counter);
    const early = guard.enter(0);
    expect(guard.mayRetry(1)).toBe(true);
    guard.retryEnded();
    for (let call = 0; call < 4; call += 1) guard.record(call, 'connect-refused', 0, Admission.Admitted);
    expect(guard.mayRetry(100)).toBe(false);
    // The sleep window is over: one trial goes out; the early call's slow attempt fails now.
    expect(guard.enter(5_100)).toBeGreaterThan(0);
    expect(slot.breaker.state).toBe('half-open');
    guard.record(5_200, 'headers-timeout', 0, early);
    expect(guard.mayRetry(5_200)).toBe(false);
  });

  it('refuses the request beyond maxRequests until one leaves', () => {
    const guard = guardOf();
    const first = guard.enter(0);
    expect(first).toBe(Admission.Admitted);
    expect(guard.enter(1)).toBeLessThan(0);
    guard.leave(first, true);
    expect(guard.enter(2)).toBe(Admission.Admitted);
  });
});

describe('RetryBudget', () => {
  it('allows retries up to the percentage of recent requests plus the floor', () => {
    const budget = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, windowMs: 10_000 });
    let retries = 0;
    for (let request = 0; request < 100; request += 1) {
      budget.request(request);
      if (budget.tryRetry(request)) retries += 1;
    }
    expect(retries).toBe(20);
    const floored = new RetryBudget({ percent: 0, minRetriesPerSecond: 1, windowMs: 10_000 });
    let allowed = 0;
    while (floored.tryRetry(0) && allowed < 100) allowed += 1;
    expect(allowed).toBe(10);
  });
});
