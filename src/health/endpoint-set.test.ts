import { BehaviorSubject } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../test/harness/fake-timers.ts';
import type { Instance } from '../discovery/instance.ts';
import type { ServiceConf } from '../discovery/load-balance-conf.ts';
import { EndpointSet, type EndpointSetOptions } from './endpoint-set.ts';
import type { HealthSnapshot } from './health-view.ts';
import type { ProbeTarget } from './probe.ts';
import { healthAddress, healthInstance, ScriptedProbe } from './health-testing.ts';

const CHECK_MS = 100;
const GRACE_MS = 1_000;
const FAIL = { ok: false, latencyMs: 1, errorClass: 'http-5xx' } as const;

function confOf(instances: Instance[], version = 1): ServiceConf {
  return { service: 'svc', instances, sources: new Map(), version };
}

/** A service whose registry, checks and traffic the test drives by hand. */
function harness(octets: number[], options: Partial<EndpointSetOptions> = {}) {
  const scripted = new ScriptedProbe();
  const conf$ = new BehaviorSubject(confOf(octets.map((octet) => healthInstance(octet))));
  const set = new EndpointSet('svc', conf$, {
    active: { probe: scripted.probe, intervalMs: CHECK_MS, jitterMs: 0, healthyThreshold: 1, unhealthyThreshold: 1 },
    outlier: { consecutiveErrors: 1, baseEjectionMs: 10_000, maxEjectionPercent: 100 },
    removalGraceMs: GRACE_MS,
    random: () => 0,
    now: () => Date.now(),
    ...options,
  });
  const snapshots: HealthSnapshot[] = [];
  set.endpoints$.subscribe((snapshot) => snapshots.push(snapshot));
  const latest = () => snapshots.at(-1)!;
  return {
    scripted,
    set,
    snapshots,
    list: (...listed: number[]) => conf$.next(confOf(listed.map((octet) => healthInstance(octet)), conf$.getValue().version + 1)),
    /** Lists these instances as they are (weight, drain mark). */
    publish: (instances: Instance[]) => conf$.next(confOf(instances, conf$.getValue().version + 1)),
    /** Lets every pending check run once. */
    check: () => vi.advanceTimersByTimeAsync(CHECK_MS),
    routable: () => latest().endpoints.filter((endpoint) => endpoint.routable).map((endpoint) => endpoint.instance.id),
    present: () => latest().endpoints.map((endpoint) => endpoint.instance.id),
    endpoint: (octet: number) => latest().endpoints.find((endpoint) => endpoint.address === healthAddress(octet)),
    latest,
  };
}

describe('EndpointSet', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('routes to registry members presumed healthy before their first check', () => {
    const { set, routable, latest } = harness([1, 2]);
    expect(routable()).toEqual(['i-1', 'i-2']);
    expect(latest().endpoints.map((endpoint) => endpoint.active)).toEqual(['unknown', 'unknown']);
    set.close();
  });

  it('takes traffic away from a member that fails its checks and gives it back when it passes', async () => {
    const { set, scripted, check, routable } = harness([1, 2, 3]);
    scripted.set(healthAddress(2), false);
    await check();
    expect(routable()).toEqual(['i-1', 'i-3']);
    scripted.set(healthAddress(2), true);
    await check();
    expect(routable()).toEqual(['i-1', 'i-2', 'i-3']);
    set.close();
  });

  it('takes traffic away from a member that outlier detection ejects, and says until when', () => {
    const { set, routable, endpoint } = harness([1, 2, 3]);
    set.record(healthAddress(3), FAIL);
    expect(endpoint(3)).toMatchObject({ ejected: true, ejectedUntil: Date.now() + 10_000 });
    expect(endpoint(2)?.ejectedUntil).toBeUndefined();
    expect(routable()).toEqual(['i-1', 'i-2']);
    set.close();
  });

  it('keeps a member that left the registry but passes its checks until the grace period ends, then stops checking it', async () => {
    const { set, scripted, check, list, routable, endpoint, present } = harness([1, 2, 3]);
    await check();
    list(1, 2);
    expect(endpoint(3)).toMatchObject({ inRegistry: false, routable: true });
    expect(routable()).toEqual(['i-1', 'i-2', 'i-3']);
    await vi.advanceTimersByTimeAsync(GRACE_MS - CHECK_MS);
    expect(present()).toContain('i-3');
    const checks = scripted.count(healthAddress(3));
    await vi.advanceTimersByTimeAsync(CHECK_MS);
    expect(present()).toEqual(['i-1', 'i-2']);
    await vi.advanceTimersByTimeAsync(CHECK_MS * 5);
    expect(scripted.count(healthAddress(3))).toBeLessThanOrEqual(checks + 1);
    set.close();
  });

  it('drops a departed member at once when it fails a check during its grace period', async () => {
    const { set, scripted, check, list, present } = harness([1, 2, 3]);
    await check();
    list(1, 2);
    scripted.set(healthAddress(3), false);
    await check();
    expect(present()).toEqual(['i-1', 'i-2']);
    set.close();
  });

  it.each([
    { name: 'failing its checks', prepare: (h: ReturnType<typeof harness>) => h.scripted.set(healthAddress(3), false) },
    { name: 'ejected', prepare: (h: ReturnType<typeof harness>) => h.set.record(healthAddress(3), FAIL) },
    { name: 'never checked yet', prepare: () => undefined, skipCheck: true },
  ])('drops a member that leaves the registry while $name', async ({ prepare, skipCheck }) => {
    const h = harness([1, 2, 3]);
    prepare(h);
    if (!skipCheck) await h.check();
    h.list(1, 2);
    expect(h.present()).toEqual(['i-1', 'i-2']);
    h.set.close();
  });

  it('keeps a member that left while failing its checks out when it comes back, until a check passes', async () => {
    const { set, scripted, check, list, routable, endpoint } = harness([1, 2, 3]);
    scripted.set(healthAddress(3), false);
    await check();
    list(1, 2);
    list(1, 2, 3);
    // A registry flap (an agent's session expired, a lease re-granted) is no pass.
    expect(endpoint(3)).toMatchObject({ inRegistry: true, active: 'unhealthy', routable: false });
    await check();
    expect(routable()).toEqual(['i-1', 'i-2']);
    scripted.set(healthAddress(3), true);
    await check();
    expect(routable()).toEqual(['i-1', 'i-2', 'i-3']);
    set.close();
  });

  it('forgets the failing verdict of a member that stays away five minutes', async () => {
    const { set, scripted, check, list, endpoint } = harness([1, 2, 3]);
    scripted.set(healthAddress(3), false);
    await check();
    list(1, 2);
    await vi.advanceTimersByTimeAsync(300_000);
    list(1, 2, 3);
    expect(endpoint(3)).toMatchObject({ active: 'unknown', routable: true });
    set.close();
  });

  it('keeps a member that left while ejected ejected when it comes back before the ejection ends, and not after', async () => {
    const { set, list, routable, endpoint } = harness([1, 2, 3], { active: undefined });
    set.record(healthAddress(3), FAIL);
    const until = Date.now() + 10_000;
    list(1, 2);
    await vi.advanceTimersByTimeAsync(4_000);
    list(1, 2, 3);
    expect(endpoint(3)).toMatchObject({ inRegistry: true, ejected: true, ejectedUntil: until, routable: false });
    await vi.advanceTimersByTimeAsync(6_000);
    expect(routable()).toEqual(['i-1', 'i-2', 'i-3']);
    // Gone again while ejected, back after the end: nothing of it is kept.
    set.record(healthAddress(3), FAIL);
    list(1, 2);
    await vi.advanceTimersByTimeAsync(30_000);
    list(1, 2, 3);
    expect(endpoint(3)).toMatchObject({ ejected: false, routable: true });
    set.close();
  });

  it('shows members that come back together, one failing its checks and one ejected, as before in the first snapshot that lists them', async () => {
    const { set, scripted, check, list, snapshots } = harness([1, 2, 3, 4], { panicThresholdPercent: 0 });
    scripted.set(healthAddress(3), false);
    await check();
    set.record(healthAddress(2), FAIL);
    list(1, 4);
    const from = snapshots.length;
    list(1, 2, 3, 4);
    // The detector hears of the return before the checker: no snapshot in between may show 3 unchecked and routable.
    expect(snapshots.slice(from).map((snapshot) => snapshot.endpoints.filter((endpoint) => endpoint.routable).map((endpoint) => endpoint.instance.id))).toEqual([['i-1', 'i-4']]);
    set.close();
  });

  it('drops a departed member at once when no active checks are configured', () => {
    const { set, list, present } = harness([1, 2, 3], { active: undefined });
    list(1, 2);
    expect(present()).toEqual(['i-1', 'i-2']);
    set.close();
  });

  it('makes a departed member a registry member again when it returns within the grace period', async () => {
    const { set, check, list, endpoint } = harness([1, 2, 3]);
    await check();
    list(1, 2);
    list(1, 2, 3);
    await vi.advanceTimersByTimeAsync(GRACE_MS * 2);
    expect(endpoint(3)).toMatchObject({ inRegistry: true, routable: true });
    set.close();
  });

  it.each([
    { unhealthy: [1], panic: false, routable: ['i-2', 'i-3', 'i-4'] },
    { unhealthy: [1, 2], panic: false, routable: ['i-3', 'i-4'] },
    { unhealthy: [1, 2, 3], panic: true, routable: ['i-1', 'i-2', 'i-3', 'i-4'] },
    { unhealthy: [1, 2, 3, 4], panic: true, routable: ['i-1', 'i-2', 'i-3', 'i-4'] },
  ])('with $unhealthy.length of 4 unhealthy and a 50% panic threshold, panic is $panic', async ({ unhealthy, panic, routable: expected }) => {
    const { set, scripted, check, routable, latest } = harness([1, 2, 3, 4], { panicThresholdPercent: 50 });
    for (const octet of unhealthy) scripted.set(healthAddress(octet), false);
    await check();
    expect(latest().panic).toBe(panic);
    expect(routable()).toEqual(expected);
    set.close();
  });

  it('leaves members with weight 0 out of the healthy share', async () => {
    const scripted = new ScriptedProbe();
    const conf$ = new BehaviorSubject(confOf([healthInstance(1), healthInstance(2), healthInstance(3, 0), healthInstance(4, 0)]));
    const set = new EndpointSet('svc', conf$, { active: { probe: scripted.probe, intervalMs: CHECK_MS, jitterMs: 0, unhealthyThreshold: 1 }, random: () => 0 });
    scripted.set(healthAddress(1), false);
    await vi.advanceTimersByTimeAsync(CHECK_MS);
    // One of two weighted members is healthy: 50% is not below 50%, and the drained ones do not dilute it.
    expect(set.current()?.panic).toBe(false);
    set.close();
  });

  it.each([
    { idle: 'draining', instance: { ...healthInstance(3), draining: true } },
    { idle: 'with weight 0', instance: healthInstance(3, 0) },
    { idle: 'in removal grace', instance: undefined },
  ])('leaves a member $idle out of the outlier ejection cap, as it takes no traffic', async ({ instance }) => {
    // 67% of three members allows two out; of the two that take traffic, only one.
    const { set, check, list, publish, endpoint } = harness([1, 2, 3], { outlier: { consecutiveErrors: 1, baseEjectionMs: 10_000, maxEjectionPercent: 67 } });
    await check();
    if (instance) publish([healthInstance(1), healthInstance(2), instance]);
    else list(1, 2);
    expect(endpoint(3)).toBeDefined();
    set.record(healthAddress(1), FAIL);
    set.record(healthAddress(2), FAIL);
    expect(endpoint(1)?.ejected).toBe(true);
    expect(endpoint(2)?.ejected).toBe(false);
    set.close();
  });

  it('never panics with the threshold at 0, so failing members get no traffic at all', async () => {
    const { set, scripted, check, routable } = harness([1, 2], { panicThresholdPercent: 0 });
    scripted.set(healthAddress(1), false);
    scripted.set(healthAddress(2), false);
    await check();
    expect(routable()).toEqual([]);
    set.close();
  });

  it('checks each endpoint with a target naming its service, which a probe names in what it logs', async () => {
    const targets: ProbeTarget[] = [];
    const conf$ = new BehaviorSubject(confOf([healthInstance(1)]));
    const probe = async (target: ProbeTarget) => (targets.push(target), { healthy: true, detail: 'ok' });
    const set = new EndpointSet('svc', conf$, { active: { probe, intervalMs: CHECK_MS, jitterMs: 0 }, random: () => 0 });
    await vi.advanceTimersByTimeAsync(CHECK_MS);
    expect(targets[0]).toEqual({ service: 'svc', address: healthAddress(1), host: healthInstance(1).host, port: healthInstance(1).port, protocol: 'http' });
    set.close();
  });

  it('emits only when something a balancer or operator sees changes', async () => {
    const { set, check, snapshots } = harness([1, 2]);
    await check();
    const count = snapshots.length;
    await check();
    await check();
    expect(snapshots).toHaveLength(count);
    set.close();
  });

  it('starts from the verdicts of the set it replaces, which then live on as if made here', async () => {
    const first = harness([1, 2, 3], { panicThresholdPercent: 0 });
    first.scripted.set(healthAddress(2), false);
    await first.check();
    first.set.record(healthAddress(3), FAIL);
    expect(first.routable()).toEqual(['i-1']);
    const previous = first.latest();
    first.set.close();

    const second = harness([1, 2, 3], { panicThresholdPercent: 0, previous });
    expect(second.routable()).toEqual(['i-1']);
    expect(second.endpoint(3)?.ejectedUntil).toBe(previous.endpoints[2]!.ejectedUntil);
    // Instance 2 comes back by passing a check here; instance 3 when the carried ejection ends.
    await second.check();
    expect(second.routable()).toEqual(['i-1', 'i-2']);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(second.routable()).toEqual(['i-1', 'i-2', 'i-3']);
    second.set.close();

    // Carried only into the first listing: an address that leaves and comes back starts afresh.
    const third = harness([1], { panicThresholdPercent: 0, previous });
    third.list(1, 2, 3);
    expect(third.routable()).toEqual(['i-1', 'i-2', 'i-3']);
    third.set.close();
  });

  it('stops every check and timer and completes its stream when closed', async () => {
    const { set, scripted, check, list } = harness([1, 2, 3]);
    await check();
    // Timers are counted around the calls alone: other code in this process may arm its own while the test awaits.
    expect(timersArmedBy(() => list(1, 2))).toBe(1); // 3 departs, still passing: its grace timer
    expect(timersArmedBy(() => set.record(healthAddress(1), FAIL))).toBe(1); // 1 is ejected until its return timer
    let completed = false;
    set.endpoints$.subscribe({ complete: () => (completed = true) });
    // The grace timer, the return timer and the next check of each of the three checked instances.
    expect(timersArmedBy(() => set.close())).toBe(-5);
    expect(completed).toBe(true);
    const calls = scripted.calls.length;
    await vi.advanceTimersByTimeAsync(CHECK_MS * 10);
    expect(scripted.calls).toHaveLength(calls);
  });
});
