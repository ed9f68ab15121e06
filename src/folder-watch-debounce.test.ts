import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FolderWatchDebounce } from './folder-watch-debounce.ts';

const DELAY_MS = 200;

/** A task whose runs end when the test says so, counting how many started and how many run at once. */
function controlledTask() {
  const ends: (() => void)[] = [];
  const state = { started: 0, active: 0, mostActive: 0 };
  const task = () => {
    state.started += 1;
    state.active += 1;
    state.mostActive = Math.max(state.mostActive, state.active);
    return new Promise<void>((resolve) => ends.push(resolve)).finally(() => {
      state.active -= 1;
    });
  };
  /** Ends the oldest run still going and lets the promise callbacks behind it run. */
  const endRun = async () => {
    ends.shift()?.();
    await vi.advanceTimersByTimeAsync(0);
  };
  return { task, state, endRun };
}

describe('FolderWatchDebounce', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs the task once per burst, the delay after the last event of it', async () => {
    const { task, state, endRun } = controlledTask();
    const debounce = new FolderWatchDebounce(task, DELAY_MS, () => {});
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS - 50);
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS - 50);
    expect(state.started).toBe(0);
    await vi.advanceTimersByTimeAsync(50);
    expect(state.started).toBe(1);
    await endRun();
    await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
    expect(state.started).toBe(1);
  });

  it('never runs the task twice at once, and bursts during a run lead to exactly one more run after it', async () => {
    const { task, state, endRun } = controlledTask();
    const debounce = new FolderWatchDebounce(task, DELAY_MS, () => {});
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    expect(state.started).toBe(1);
    // Three bursts end while the first run goes on.
    for (let burst = 0; burst < 3; burst += 1) {
      debounce.schedule();
      await vi.advanceTimersByTimeAsync(DELAY_MS);
    }
    expect(state).toEqual({ started: 1, active: 1, mostActive: 1 });
    await endRun();
    expect(state.started).toBe(2);
    await endRun();
    await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
    expect(state).toEqual({ started: 2, active: 0, mostActive: 1 });
  });

  it('run() starts at once when idle, queues one run behind a run in progress, and resolves once a run after it is done', async () => {
    const { task, state, endRun } = controlledTask();
    const debounce = new FolderWatchDebounce(task, DELAY_MS, () => {});
    let firstDone = false;
    void debounce.run().then(() => (firstDone = true));
    expect(state.started).toBe(1);
    let secondDone = false;
    void debounce.run().then(() => (secondDone = true));
    await endRun();
    expect([secondDone, state.started, state.active]).toEqual([false, 2, 1]);
    await endRun();
    expect([firstDone, secondDone]).toEqual([true, true]);
  });

  it('on close drops the scheduled and the queued run, ignores later events and waits for the run in progress', async () => {
    const { task, state, endRun } = controlledTask();
    const debounce = new FolderWatchDebounce(task, DELAY_MS, () => {});
    void debounce.run();
    void debounce.run();
    debounce.schedule();
    let closed = false;
    void debounce.close().then(() => (closed = true));
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
    expect(closed).toBe(false);
    await endRun();
    await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
    expect(closed).toBe(true);
    expect(state).toEqual({ started: 1, active: 0, mostActive: 1 });
  });

  it('reports a task that fails, even before its first await, and runs it again with backoff until it succeeds', async () => {
    const failures: unknown[] = [];
    let runs = 0;
    const debounce = new FolderWatchDebounce(
      () => {
        runs += 1;
        if (runs === 1) throw new Error('thrown');
        return runs === 2 ? Promise.reject(new Error('rejected')) : Promise.resolve();
      },
      DELAY_MS,
      (error) => failures.push(error),
    );
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS * 50);
    expect(failures.map((error) => (error as Error).message)).toEqual(['thrown', 'rejected']);
    expect(runs).toBe(3);
  });
});
