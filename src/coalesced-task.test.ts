import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CoalescedTask } from './coalesced-task.ts';

/** A task whose runs the test finishes by hand. */
function manualTask() {
  const runs: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  const task = () => new Promise<void>((resolve, reject) => runs.push({ resolve, reject }));
  return { runs, task };
}

const flush = () => vi.advanceTimersByTimeAsync(0);

describe('CoalescedTask', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs once more after the run in flight however many requests arrived during it', async () => {
    const { runs, task } = manualTask();
    const coalesced = new CoalescedTask(task, { onError: () => undefined });
    const first = coalesced.request();
    await flush();
    const during = [coalesced.request(), coalesced.request(), coalesced.request()];
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await flush();
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await Promise.all([first, ...during]);
    await flush();
    expect(runs).toHaveLength(2);
    expect(coalesced.busy).toBe(false);
  });

  it('resolves a request only after a run that started after it', async () => {
    const { runs, task } = manualTask();
    const coalesced = new CoalescedTask(task, { onError: () => undefined });
    void coalesced.request();
    await flush();
    let settled = false;
    void coalesced.request().then(() => (settled = true));
    runs[0]!.resolve();
    await flush();
    expect(settled).toBe(false);
    runs[1]!.resolve();
    await flush();
    expect(settled).toBe(true);
  });

  it('retries a failed run with backoff and reports each failure', async () => {
    const { runs, task } = manualTask();
    const errors: number[] = [];
    const coalesced = new CoalescedTask(task, {
      onError: (_error, attempt) => errors.push(attempt),
      backoff: { initialMs: 100, maxMs: 1_000, jitter: 0 },
    });
    const done = coalesced.request();
    await flush();
    runs[0]!.reject(new Error('connection loss'));
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2);
    runs[1]!.reject(new Error('connection loss'));
    await vi.advanceTimersByTimeAsync(200);
    expect(runs).toHaveLength(3);
    runs[2]!.resolve();
    await done;
    expect(errors).toEqual([0, 1]);
  });

  it('stops retrying and settles its requests when disposed', async () => {
    const { runs, task } = manualTask();
    const coalesced = new CoalescedTask(task, { onError: () => undefined, backoff: { initialMs: 100, maxMs: 100, jitter: 0 } });
    const done = coalesced.request();
    await flush();
    runs[0]!.reject(new Error('connection loss'));
    await flush();
    coalesced.dispose();
    await done;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toHaveLength(1);
    await coalesced.request();
    expect(runs).toHaveLength(1);
  });
});
