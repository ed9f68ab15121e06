import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timersArmedBy } from '../../../test/harness/fake-timers.ts';
import { StallDetector } from './stall-detector.ts';

describe('StallDetector', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('reports a stall once no probe has answered for longer than the timeout', async () => {
    const onStall = vi.fn();
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe: () => new Promise<boolean>(() => undefined), onStall });
    expect(timersArmedBy(() => detector.start())).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(onStall).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(250);
    expect(onStall).toHaveBeenCalledTimes(1);
    expect(onStall.mock.calls[0]?.[0]).toBeGreaterThan(1_000);
    // Stopped by the stall: a tick still running would find the silence longer still and report it again.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('never reports a stall while probes keep answering', async () => {
    const onStall = vi.fn();
    const probe = vi.fn(() => Promise.resolve(true));
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe, onStall });
    detector.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(onStall).not.toHaveBeenCalled();
    expect(probe.mock.calls.length).toBeGreaterThanOrEqual(30);
    detector.stop();
  });

  it('counts failed probes as silence', async () => {
    const onStall = vi.fn();
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe: () => Promise.reject(new Error('deadline')), onStall });
    detector.start();
    await vi.advanceTimersByTimeAsync(1_250);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('counts probe answers that find the watch behind the registry as silence', async () => {
    const onStall = vi.fn();
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe: () => Promise.resolve(false), onStall });
    detector.start();
    await vi.advanceTimersByTimeAsync(1_250);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('keeps at most one probe in flight', async () => {
    const probe = vi.fn(() => new Promise<boolean>(() => undefined));
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe, onStall: () => undefined });
    detector.start();
    await vi.advanceTimersByTimeAsync(900);
    expect(probe).toHaveBeenCalledTimes(1);
    detector.stop();
  });

  it('treats watch responses reported with alive() as signs of life', async () => {
    const onStall = vi.fn();
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe: () => new Promise<boolean>(() => undefined), onStall });
    detector.start();
    for (let i = 0; i < 10; i += 1) {
      await vi.advanceTimersByTimeAsync(500);
      detector.alive();
    }
    expect(onStall).not.toHaveBeenCalled();
    detector.stop();
  });

  it('sends no probe while the watch keeps delivering, and probes again once it falls silent', async () => {
    const onStall = vi.fn();
    const probe = vi.fn(() => Promise.resolve(false));
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe, onStall });
    detector.start();
    for (let i = 0; i < 40; i += 1) {
      await vi.advanceTimersByTimeAsync(100);
      detector.alive();
    }
    expect(probe).not.toHaveBeenCalled();
    // Silent from here: the probe runs within a tick past a tick's silence, and a stall is still reported on time.
    await vi.advanceTimersByTimeAsync(500);
    expect(probe).toHaveBeenCalled();
    expect(onStall).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(750);
    expect(onStall).toHaveBeenCalledTimes(1);
  });

  it('ignores a probe that answers after stop()', async () => {
    const onStall = vi.fn();
    let answer: () => void = () => undefined;
    const probe = vi.fn(() => new Promise<boolean>((resolve) => (answer = () => resolve(true))));
    const detector = new StallDetector({ stallTimeoutMs: 1_000, probe, onStall });
    detector.start();
    await vi.advanceTimersByTimeAsync(250);
    expect(probe).toHaveBeenCalledTimes(1);
    // Only the detector's own timer counts: others in this process may arm theirs while the test awaits.
    expect(timersArmedBy(() => detector.stop())).toBe(-1);
    answer();
    // A tick still running would probe again within 250 ms and report a stall after 1 s.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probe).toHaveBeenCalledTimes(1);
    expect(onStall).not.toHaveBeenCalled();
  });
});
