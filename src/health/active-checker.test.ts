import { afterEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../test/harness/fake-timers.ts';
import { ActiveHealthChecker } from './active-checker.ts';
import type { ActiveHealth } from './health-view.ts';
import { ScriptedProbe, startSwitchableBackend, type SwitchableBackend } from './health-testing.ts';
import { httpProbe } from './probe-http.ts';
import type { HealthProbe, ProbeTarget } from './probe.ts';

const target = (octet: number): ProbeTarget => ({ address: `10.2.0.${octet}:80`, host: `10.2.0.${octet}`, port: 80, protocol: 'http' });

describe('ActiveHealthChecker against real HTTP servers', () => {
  const open: Array<ActiveHealthChecker | SwitchableBackend> = [];
  afterEach(async () => {
    for (const item of open.splice(0)) {
      if (item instanceof ActiveHealthChecker) item.close();
      else await item.close();
    }
  });

  it('follows the fall and rise thresholds as a backend flips between 200 and 500', async () => {
    const backend = await startSwitchableBackend(200);
    const checker = new ActiveHealthChecker('svc', { probe: httpProbe(), intervalMs: 10, jitterMs: 0, unhealthyThreshold: 3, healthyThreshold: 2 });
    open.push(backend, checker);
    // The statuses the backend had served when each transition was announced.
    const transitions: Array<{ health: ActiveHealth | undefined; served: number[] }> = [];
    checker.status$.subscribe((statuses) => {
      const health = statuses.get(backend.target.address);
      if (health !== transitions.at(-1)?.health) transitions.push({ health, served: [...backend.served] });
    });
    checker.track([backend.target]);
    const reach = (health: ActiveHealth) => vi.waitFor(() => expect(transitions.at(-1)?.health).toBe(health), { timeout: 5_000, interval: 5 });

    await reach('healthy');
    backend.status = 500;
    await reach('unhealthy');
    backend.status = 200;
    await reach('healthy');

    const [unknown, confirmed, down, up] = transitions;
    expect(unknown?.health).toBe('unknown');
    expect(confirmed?.served).toEqual([200]);
    // Exactly the third 500 in a row marks it unhealthy, and exactly the second 200 after that brings it back.
    expect(down!.served.slice(confirmed!.served.length).filter((status) => status === 500)).toEqual([500, 500, 500]);
    expect(down!.served.slice(-3)).toEqual([500, 500, 500]);
    expect(up!.served.slice(down!.served.length)).toEqual([200, 200]);
    expect(transitions).toHaveLength(4);
  });
});

describe('ActiveHealthChecker timing', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('probes an unhealthy endpoint on its own interval and a healthy one on the normal interval', async () => {
    vi.useFakeTimers();
    const scripted = new ScriptedProbe();
    const checker = new ActiveHealthChecker('svc', { probe: scripted.probe, intervalMs: 1_000, unhealthyIntervalMs: 100, jitterMs: 0, unhealthyThreshold: 1 });
    const [good, bad] = [target(1), target(2)];
    scripted.set(bad.address, false);
    checker.track([good, bad]);
    await vi.advanceTimersByTimeAsync(0);
    expect(checker.health(bad.address)).toBe('unhealthy');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(scripted.count(good.address)).toBe(2);
    expect(scripted.count(bad.address)).toBe(11);
    checker.close();
  });

  it('spreads the first probe of each endpoint over the jitter', async () => {
    vi.useFakeTimers();
    const scripted = new ScriptedProbe();
    const checker = new ActiveHealthChecker('svc', { probe: scripted.probe, intervalMs: 1_000, jitterMs: 200 }, () => 0.5);
    checker.track([target(1)]);
    await vi.advanceTimersByTimeAsync(99);
    expect(scripted.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(scripted.calls).toHaveLength(1);
    // Next one: interval plus half the jitter again.
    await vi.advanceTimersByTimeAsync(1_099);
    expect(scripted.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(scripted.calls).toHaveLength(2);
    checker.close();
  });

  it.each<{ name: string; probe: HealthProbe; failsAtMs: number }>([
    { name: 'never settles', probe: () => new Promise(() => undefined), failsAtMs: 50 },
    { name: 'rejects', probe: () => Promise.reject(Object.assign(new Error('boom'), { code: 'EBOOM' })), failsAtMs: 0 },
    {
      name: 'throws synchronously',
      probe: () => {
        throw new Error('bad probe');
      },
      failsAtMs: 0,
    },
  ])('counts a probe that $name as a failure, after $failsAtMs ms', async ({ probe, failsAtMs }) => {
    vi.useFakeTimers();
    const checker = new ActiveHealthChecker('svc', { probe, intervalMs: 1_000, jitterMs: 0, timeoutMs: 50, unhealthyThreshold: 1 });
    checker.track([target(1)]);
    if (failsAtMs > 0) {
      await vi.advanceTimersByTimeAsync(failsAtMs - 1);
      expect(checker.health(target(1).address)).toBe('unknown');
    }
    await vi.advanceTimersByTimeAsync(1);
    expect(checker.health(target(1).address)).toBe('unhealthy');
    checker.close();
  });

  it('counts no check the gateway could not send for want of file descriptors, for or against the endpoint', async () => {
    vi.useFakeTimers();
    let error: string | undefined;
    // As tcpProbe and httpProbe fail when connect() gives EMFILE or ENFILE; undefined passes.
    const probe: HealthProbe = async () => {
      if (error === undefined) return { healthy: true, detail: 'connected' };
      throw Object.assign(new Error(`connect ${error}`), { code: error });
    };
    const checker = new ActiveHealthChecker('svc', { probe, intervalMs: 100, jitterMs: 0, unhealthyThreshold: 1, healthyThreshold: 1 });
    checker.track([target(1)]);
    await vi.advanceTimersByTimeAsync(0);
    expect(checker.health(target(1).address)).toBe('healthy');
    error = 'EMFILE';
    await vi.advanceTimersByTimeAsync(500);
    error = 'ENFILE';
    await vi.advanceTimersByTimeAsync(500);
    expect(checker.health(target(1).address)).toBe('healthy');
    error = 'ECONNREFUSED';
    await vi.advanceTimersByTimeAsync(100);
    expect(checker.health(target(1).address)).toBe('unhealthy');
    checker.close();
  });

  it('stops checking an endpoint that leaves the tracked set and keeps checking the others', async () => {
    vi.useFakeTimers();
    const scripted = new ScriptedProbe();
    const checker = new ActiveHealthChecker('svc', { probe: scripted.probe, intervalMs: 100, jitterMs: 0 });
    checker.track([target(1), target(2)]);
    await vi.advanceTimersByTimeAsync(250);
    expect(scripted.count(target(2).address)).toBe(3);
    checker.track([target(1)]);
    expect(checker.health(target(2).address)).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(scripted.count(target(2).address)).toBe(3);
    expect(scripted.count(target(1).address)).toBe(13);
    checker.close();
  });

  it.each([
    // A verdict of the check it replaces (same question): healthyThreshold passes bring it back.
    { from: 'the same check', otherCheck: false, first: true, after: ['unhealthy', 'healthy'] },
    // A verdict of another question keeps it out only until this check's first answer, which decides.
    { from: 'another check', otherCheck: true, first: true, after: ['healthy', 'healthy'] },
    { from: 'another check', otherCheck: true, first: false, after: ['unhealthy', 'unhealthy'] },
  ])('starts a present and a departed endpoint carried as failing $from unhealthy, then follows passes=$first as $after', async ({ otherCheck, first, after }) => {
    vi.useFakeTimers();
    const scripted = new ScriptedProbe();
    scripted.set(target(1).address, first);
    scripted.set(target(2).address, first);
    const carried = new Map<string, ActiveHealth>([[target(1).address, 'unhealthy']]);
    const departed = new Map([[target(2).address, Date.now() + 60_000]]);
    const checker = new ActiveHealthChecker('svc', { probe: scripted.probe, intervalMs: 100, jitterMs: 0, healthyThreshold: 2 }, Math.random, carried, departed, otherCheck);
    checker.track([target(1), target(2)]);
    // Before any answer, neither gets traffic, whichever check the verdict came from.
    expect([checker.health(target(1).address), checker.health(target(2).address)]).toEqual(['unhealthy', 'unhealthy']);
    const seen: ActiveHealth[][] = [];
    for (let round = 0; round < 2; round += 1) {
      await vi.advanceTimersByTimeAsync(round === 0 ? 1 : 100);
      seen.push([checker.health(target(1).address)!, checker.health(target(2).address)!]);
    }
    expect(seen).toEqual(after.map((health) => [health, health]));
    checker.close();
  });

  it('hands failing verdicts of another check that still await a first answer on as such, through a checker of the same check', async () => {
    vi.useFakeTimers();
    const scripted = new ScriptedProbe();
    for (const octet of [1, 2, 3]) scripted.set(target(octet).address, true);
    const settings = { probe: scripted.probe, intervalMs: 100, jitterMs: 0, healthyThreshold: 2 };
    // Replaced another check: 1 present and 2 departed, both failing it, neither asked yet.
    const first = new ActiveHealthChecker('svc', settings, Math.random, new Map([[target(1).address, 'unhealthy']]), new Map([[target(2).address, Date.now() + 60_000]]), true);
    first.track([target(1)]);
    expect(first.awaitingFirstAnswer()).toEqual(new Set([target(1).address, target(2).address]));
    // Replaced by the same check before any answer; 3 failed this very check.
    const carried = new Map<string, ActiveHealth>([[target(1).address, 'unhealthy'], [target(3).address, 'unhealthy']]);
    const second = new ActiveHealthChecker('svc', settings, Math.random, carried, first.departedVerdicts(), first.awaitingFirstAnswer());
    first.close();
    second.track([target(1), target(2), target(3)]);
    await vi.advanceTimersByTimeAsync(1);
    // The first answer decides for 1 and 2; 3 needs healthyThreshold passes.
    expect([1, 2, 3].map((octet) => second.health(target(octet).address))).toEqual(['healthy', 'healthy', 'unhealthy']);
    expect(second.awaitingFirstAnswer()).toEqual(new Set());
    second.close();
  });

  it('leaves no timer behind once closed, even with a probe in flight', async () => {
    vi.useFakeTimers();
    const signals: AbortSignal[] = [];
    const probe = vi.fn<HealthProbe>((_target, signal) => {
      signals.push(signal);
      return new Promise(() => undefined);
    });
    const checker = new ActiveHealthChecker('svc', { probe, intervalMs: 1_000, timeoutMs: 500, jitterMs: 0 });
    checker.track([target(1), target(2)]);
    await vi.advanceTimersByTimeAsync(1);
    expect(probe).toHaveBeenCalledTimes(2);
    // Each probe in flight holds its deadline; close() clears both. Counted around close() alone:
    // other code in this process may arm timers of its own while the test awaits.
    expect(timersArmedBy(() => checker.close())).toBe(-2);
    expect(signals.map((signal) => signal.aborted)).toEqual([true, true]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probe).toHaveBeenCalledTimes(2);
  });
});
