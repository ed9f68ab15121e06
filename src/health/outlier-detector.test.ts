import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../test/harness/fake-timers.ts';
import { OutlierDetector, type OutlierDetectionOptions } from './outlier-detector.ts';
import type { UpstreamOutcome } from './upstream-outcome.ts';

const FAIL: UpstreamOutcome = { ok: false, latencyMs: 1, errorClass: 'http-5xx' };
const REFUSED: UpstreamOutcome = { ok: false, latencyMs: 1, errorClass: 'connect-refused' };
const OK: UpstreamOutcome = { ok: true, latencyMs: 1 };
const CANCELLED: UpstreamOutcome = { ok: false, latencyMs: 1, errorClass: 'cancelled' };

const members = (count: number) => Array.from({ length: count }, (_, index) => `10.3.0.${index}:80`);

function detector(options: OutlierDetectionOptions = {}, count = 10): OutlierDetector {
  const created = new OutlierDetector('svc', { consecutiveErrors: 3, baseEjectionMs: 1_000, maxEjectionMs: 2_500, decayIntervalMs: 10_000, ...options }, () => Date.now());
  created.setMembers(members(count));
  return created;
}

function feed(target: OutlierDetector, address: string, ...outcomes: UpstreamOutcome[]): void {
  for (const outcome of outcomes) target.record(address, outcome);
}

describe('OutlierDetector', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([
    { name: 'three 5xx in a row eject', outcomes: [FAIL, FAIL, FAIL], ejected: true },
    { name: 'connect errors count like 5xx', outcomes: [REFUSED, FAIL, REFUSED], ejected: true },
    { name: 'two failures do not eject', outcomes: [FAIL, FAIL], ejected: false },
    { name: 'a success resets the count', outcomes: [FAIL, FAIL, OK, FAIL, FAIL], ejected: false },
    { name: 'a client cancel neither counts nor resets', outcomes: [FAIL, CANCELLED, FAIL, CANCELLED, FAIL], ejected: true },
    { name: 'a failure without a class counts', outcomes: [{ ok: false, latencyMs: 1 }, FAIL, FAIL], ejected: true },
    ...(['cancelled', 'client-body-error', 'body-too-large', 'request-rejected', 'deadline-exceeded', 'internal'] as const).map((errorClass) => ({
      name: `twelve ${errorClass} failures, caused by the client or the gateway, never eject`,
      outcomes: Array.from({ length: 12 }, (): UpstreamOutcome => ({ ok: false, latencyMs: 1, errorClass })),
      ejected: false,
    })),
  ])('$name', ({ outcomes, ejected }) => {
    const target = detector();
    feed(target, members(1)[0]!, ...outcomes);
    expect(target.isEjected(members(1)[0]!)).toBe(ejected);
    target.close();
  });

  it('ejects for base time × times ejected, capped at the maximum', async () => {
    const target = detector();
    const address = members(1)[0]!;
    const durations: number[] = [];
    for (let round = 0; round < 4; round += 1) {
      feed(target, address, FAIL, FAIL, FAIL);
      const start = Date.now();
      expect(target.isEjected(address)).toBe(true);
      while (target.isEjected(address)) await vi.advanceTimersByTimeAsync(100);
      durations.push(Date.now() - start);
    }
    expect(durations).toEqual([1_000, 2_000, 2_500, 2_500]);
    target.close();
  });

  it('tells when an ejection ends, and nothing once the endpoint is back', async () => {
    const target = detector();
    const address = members(1)[0]!;
    expect(target.ejectedUntil(address)).toBeUndefined();
    feed(target, address, FAIL, FAIL, FAIL);
    expect(target.ejectedUntil(address)).toBe(Date.now() + 1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(target.ejectedUntil(address)).toBeUndefined();
    target.close();
  });

  it('forgives one past ejection per decay interval spent back in service', async () => {
    const target = detector();
    const address = members(1)[0]!;
    for (let round = 0; round < 3; round += 1) {
      feed(target, address, FAIL, FAIL, FAIL);
      await vi.advanceTimersByTimeAsync(2_500);
    }
    // Three ejections so far; two decay intervals in service forgive two, so the next counts as the second.
    await vi.advanceTimersByTimeAsync(20_000);
    feed(target, address, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(target.isEjected(address)).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(target.isEjected(address)).toBe(false);
    target.close();
  });

  it('counts past ejections only up to the cap, so two decay intervals back shorten the next after a long flapping', async () => {
    const target = detector();
    const address = members(1)[0]!;
    for (let round = 0; round < 8; round += 1) {
      feed(target, address, FAIL, FAIL, FAIL);
      await vi.advanceTimersByTimeAsync(2_500);
    }
    // 2.5 s is 3 × the base: the count stays at 3, and two intervals back make the next the second.
    await vi.advanceTimersByTimeAsync(20_000);
    feed(target, address, FAIL, FAIL, FAIL);
    expect(target.ejectedUntil(address)).toBe(Date.now() + 2_000);
    target.close();
  });

  it('ignores outcomes while ejected, so requests still finishing do not extend the ejection', async () => {
    const target = detector();
    const address = members(1)[0]!;
    feed(target, address, FAIL, FAIL, FAIL, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(target.isEjected(address)).toBe(false);
    feed(target, address, FAIL, FAIL);
    expect(target.isEjected(address)).toBe(false);
    target.close();
  });

  it.each([
    { members: 10, percent: 10, failing: 3, ejected: 1 },
    { members: 4, percent: 50, failing: 4, ejected: 2 },
    { members: 3, percent: 10, failing: 3, ejected: 1 },
    { members: 10, percent: 100, failing: 10, ejected: 10 },
  ])('with $members members and at most $percent% ejected, $failing failing members lead to $ejected ejections', ({ members: count, percent, failing, ejected }) => {
    const target = detector({ maxEjectionPercent: percent }, count);
    for (const address of members(count).slice(0, failing)) feed(target, address, FAIL, FAIL, FAIL);
    expect(members(count).filter((address) => target.isEjected(address))).toHaveLength(ejected);
    target.close();
  });

  it('ejects a member held back by the cap on its next failure once another returns', async () => {
    const target = detector({ maxEjectionPercent: 10 });
    const [first, second] = members(2) as [string, string];
    feed(target, first, FAIL, FAIL, FAIL);
    feed(target, second, FAIL, FAIL, FAIL);
    expect(target.isEjected(second)).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    feed(target, second, FAIL);
    expect(target.isEjected(second)).toBe(true);
    target.close();
  });

  it('counts only the members that take traffic against maxEjectionPercent, and ejects an idle one regardless', () => {
    // Twenty members, ten of them idle (draining, weight 0, in removal grace): 10% of the ten that take traffic is one.
    const target = detector({ maxEjectionPercent: 10, consecutiveErrors: 1 }, 0);
    const all = members(20);
    target.setMembers(all, all.slice(10));
    const [first, second] = all as [string, string];
    feed(target, first, FAIL);
    feed(target, second, FAIL);
    expect(target.isEjected(first)).toBe(true);
    // With the idle ten counted, two of twenty (10%) were allowed out.
    expect(target.isEjected(second)).toBe(false);
    feed(target, all[10]!, FAIL);
    expect(target.isEjected(all[10]!)).toBe(true);
    target.close();
  });

  it('judges one ejected while idle against maxEjectionPercent once it takes traffic again (a drain cancelled, a weight raised)', () => {
    const target = detector({ maxEjectionPercent: 50, consecutiveErrors: 1 }, 0);
    const all = members(4);
    const [a, b, c] = all as [string, string, string];
    // a and b draining: their failing requests eject them at no cost; c is then the one the cap allows.
    target.setMembers(all, [a, b]);
    for (const address of [a, b, c]) feed(target, address, FAIL);
    expect(all.filter((address) => target.isEjected(address))).toEqual([a, b, c]);
    // The drain is cancelled: four take traffic, and 50% of them is two.
    target.setMembers(all, []);
    expect(all.filter((address) => target.isEjected(address))).toHaveLength(2);
    expect(target.isEjected(c)).toBe(true);
    target.close();
  });

  it('emits the ejected set on every ejection and return', async () => {
    const target = detector();
    const sets: string[][] = [];
    target.ejected$.subscribe((set) => sets.push([...set]));
    feed(target, members(1)[0]!, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sets).toEqual([[], [members(1)[0]], []]);
    target.close();
  });

  it('takes a member that leaves out of the ejected set, and ignores outcomes for addresses it does not know', () => {
    const target = detector();
    const address = members(1)[0]!;
    feed(target, address, FAIL, FAIL, FAIL);
    target.setMembers(members(10).slice(1));
    expect(target.isEjected(address)).toBe(false);
    feed(target, 'stranger:1', FAIL, FAIL, FAIL);
    expect(target.isEjected('stranger:1')).toBe(false);
    target.close();
  });

  it.each([
    { maxEjectionPercent: 10, resumed: false },
    { maxEjectionPercent: 100, resumed: true },
  ])('resumes the ejection of a member that comes back only within maxEjectionPercent ($maxEjectionPercent %), and keeps its count either way', async ({ maxEjectionPercent, resumed }) => {
    const target = detector({ maxEjectionPercent });
    const [away, other] = members(2) as [string, string];
    feed(target, away, FAIL, FAIL, FAIL);
    const until = target.ejectedUntil(away);
    // Away, out of the count: the first ejection among those left is always allowed.
    target.setMembers(members(10).slice(1));
    feed(target, other, FAIL, FAIL, FAIL);
    expect(target.isEjected(other)).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    target.setMembers(members(10));
    // Two of ten would be 20 %: over a 10 % cap the member comes back in service.
    expect(target.isEjected(away)).toBe(resumed);
    expect(target.ejectedUntil(away)).toBe(resumed ? until : undefined);
    expect(target.isEjected(other)).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect([target.isEjected(away), target.isEjected(other)]).toEqual([false, false]);
    // Its one past ejection still counts: the next is twice the base.
    feed(target, away, FAIL, FAIL, FAIL);
    expect(target.ejectedUntil(away)).toBe(Date.now() + 2_000);
    target.close();
  });

  it.each([
    // A registry flap: it is the same endpoint, judged as if it had stayed without traffic.
    { left: 'while ejected', awayMs: 3_000, next: 2_000 },
    { left: 'after its ejection ended', awayMs: 3_000, next: 2_000 },
    // Time away forgives as time back in service does: one decay interval, one past ejection.
    { left: 'while ejected', awayMs: 11_500, next: 1_000 },
    { left: 'after its ejection ended', awayMs: 11_500, next: 1_000 },
  ])('keeps the count of past ejections of a member that left $left and comes back $awayMs ms later, less what the time forgave (next: $next ms)', async ({ left, awayMs, next }) => {
    const target = detector();
    const address = members(1)[0]!;
    feed(target, address, FAIL, FAIL, FAIL);
    if (left !== 'while ejected') await vi.advanceTimersByTimeAsync(1_000);
    expect(target.isEjected(address)).toBe(left === 'while ejected');
    target.setMembers(members(10).slice(1));
    await vi.advanceTimersByTimeAsync(awayMs);
    target.setMembers(members(10));
    expect(target.isEjected(address)).toBe(false);
    feed(target, address, FAIL, FAIL, FAIL);
    expect(target.ejectedUntil(address)).toBe(Date.now() + next);
    target.close();
  });

  it('forgets a member that left once its past ejections are forgiven, and starts one that comes back then afresh', async () => {
    const target = detector();
    const address = members(1)[0]!;
    feed(target, address, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_000);
    feed(target, address, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(2_000);
    target.setMembers(members(10).slice(1));
    // Two decay intervals forgive both; the next change of members lets it go.
    await vi.advanceTimersByTimeAsync(20_000);
    target.setMembers(members(10).slice(2));
    target.setMembers(members(10));
    feed(target, address, FAIL, FAIL, FAIL);
    expect(target.ejectedUntil(address)).toBe(Date.now() + 1_000);
    target.close();
  });

  it('hands the counts of past ejections of present and departed members to a detector that replaces it', async () => {
    const settings = { consecutiveErrors: 3, baseEjectionMs: 1_000, maxEjectionMs: 10_000, decayIntervalMs: 10_000, maxEjectionPercent: 100 };
    const old = new OutlierDetector('svc', settings, () => Date.now());
    old.setMembers(members(10));
    const [back, ejected, away] = members(3) as [string, string, string];
    feed(old, back, FAIL, FAIL, FAIL);
    feed(old, away, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_000);
    // Ejected a second time (2 s), the other never before.
    feed(old, ejected, FAIL, FAIL, FAIL);
    await vi.advanceTimersByTimeAsync(1_000);
    feed(old, ejected, FAIL, FAIL, FAIL);
    old.setMembers(members(10).filter((address) => address !== away));
    const carried = new Map([[ejected, old.ejectedUntil(ejected)!]]);
    const next = new OutlierDetector('svc', settings, () => Date.now(), carried, old.parkedEjections(), old.history());
    old.close();
    next.setMembers(members(10).filter((address) => address !== away));
    expect(next.isEjected(ejected)).toBe(true);
    await vi.advanceTimersByTimeAsync(2_000);
    next.setMembers(members(10));
    for (const address of [back, ejected, away]) feed(next, address, FAIL, FAIL, FAIL);
    // Once ejected: twice the base; twice: three times.
    expect([back, ejected, away].map((address) => next.ejectedUntil(address)! - Date.now())).toEqual([2_000, 3_000, 2_000]);
    next.close();
  });

  it('counts past ejections carried from a detector with a higher cap only up to its own cap, so two decay intervals still shorten the next ejection', async () => {
    const before = { consecutiveErrors: 3, baseEjectionMs: 1_000, maxEjectionMs: 4_000, decayIntervalMs: 10_000, maxEjectionPercent: 100 };
    const old = new OutlierDetector('svc', before, () => Date.now());
    old.setMembers(members(10));
    const [present, away] = members(2) as [string, string];
    // Ejected four times each: 1, 2, 3 and 4 s, the cap of these settings.
    for (let time = 1; time <= 4; time += 1) {
      feed(old, present, FAIL, FAIL, FAIL);
      feed(old, away, FAIL, FAIL, FAIL);
      await vi.advanceTimersByTimeAsync(time * 1_000);
    }
    old.setMembers(members(10).filter((address) => address !== away));
    // A reload to a base of 2 s under the same cap: two ejections reach it.
    const next = new OutlierDetector('svc', { ...before, baseEjectionMs: 2_000 }, () => Date.now(), new Map(), old.parkedEjections(), old.history());
    old.close();
    next.setMembers(members(10).filter((address) => address !== away));
    await vi.advanceTimersByTimeAsync(20_000);
    next.setMembers(members(10));
    for (const address of [present, away]) feed(next, address, FAIL, FAIL, FAIL);
    // Two decay intervals forgave two of the two past ejections these settings count: the base again.
    expect([present, away].map((address) => next.ejectedUntil(address)! - Date.now())).toEqual([2_000, 2_000]);
    next.close();
  });

  it('cancels the return timer of an ejected member that left when closed', () => {
    const target = detector();
    feed(target, members(1)[0]!, FAIL, FAIL, FAIL);
    target.setMembers(members(10).slice(1));
    expect(timersArmedBy(() => target.close())).toBe(-1);
  });

  it('cancels every return timer when closed', () => {
    const target = detector();
    // Counted around the calls alone: other code in this process may arm timers of its own meanwhile.
    expect(timersArmedBy(() => feed(target, members(1)[0]!, FAIL, FAIL, FAIL))).toBe(1);
    expect(timersArmedBy(() => target.close())).toBe(-1);
  });
});
