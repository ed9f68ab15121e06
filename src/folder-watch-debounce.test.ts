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

/** With the first run still going, ending it starts exactly one more, never two at once, and nothing after that. */
async function expectOneRunQueued(state: ReturnType<typeof controlledTask>['state'], endRun: () => Promise<void>) {
  expect(state).toEqual({ started: 1, active: 1, mostActive: 1 });
  await endRun();
  expect(state.started).toBe(2);
  await endRun();
  await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
  expect(state).toEqual({ started: 2, active: 0, mostActive: 1 });
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

  it('runs the task the maximum wait after the first event of a burst that never leaves a quiet time, again each maximum wait while it lasts, and the quiet time after its end', async () => {
    const MAX_WAIT_MS = 1_000;
    const startedAt: number[] = [];
    const begin = performance.now();
    const debounce = new FolderWatchDebounce(async () => void startedAt.push(performance.now() - begin), DELAY_MS, () => {}, MAX_WAIT_MS);
    // An event every 30 ms from 0 to 2,580 ms, far inside the quiet time: only the maximum wait ends the waiting.
    for (let at = 0; at <= 2_580; at += 30) {
      debounce.schedule();
      await vi.advanceTimersByTimeAsync(30);
    }
    await vi.advanceTimersByTimeAsync(DELAY_MS * 5);
    // The first burst's events from 0 ms; the next from 1,020 ms, the first after the run at 1,000 ms
    // began (that run read the ones before); the last event at 2,580 ms, then a quiet time.
    expect(startedAt).toEqual([1_000, 2_020, 2_580 + DELAY_MS]);
  });

  it('tells the task when the first event it answers came, and that none came for a run() on its own', async () => {
    const changes: (number | undefined)[] = [];
    const begin = performance.now();
    const debounce = new FolderWatchDebounce(async (changedSince) => void changes.push(changedSince === undefined ? undefined : changedSince - begin), DELAY_MS, () => {});
    await vi.advanceTimersByTimeAsync(10);
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(50);
    debounce.schedule();
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    await debounce.run();
    expect(changes).toEqual([10, undefined]);
  });

  it('counts the maximum wait from the change a run did not read whole, not from the event after it', async () => {
    const startedAt: number[] = [];
    const begin = performance.now();
    const debounce = new FolderWatchDebounce(
      async (changedSince) => {
        startedAt.push(performance.now() - begin);
        // The first run finds a write in progress; its event is to bring the file back.
        if (startedAt.length === 1) debounce.notReadYet(changedSince);
      },
      DELAY_MS,
      () => {},
      1_000,
    );
    for (let at = 0; at <= 1_500; at += 30) {
      debounce.schedule();
      await vi.advanceTimersByTimeAsync(30);
    }
    // The run at 1,000 ms read nothing whole: the event after it (1,020 ms) is past the maximum wait of the change from 0 ms.
    expect(startedAt).toEqual([1_000, 1_020]);
  });

  it('counts the maximum wait of events that come during a long run from the first of them, and runs once after it', async () => {
    const { task, state, endRun } = controlledTask();
    const debounce = new FolderWatchDebounce(task, DELAY_MS, () => {}, 1_000);
    void debounce.run();
    // Events every 30 ms while the run goes on for 3 s: they are due 1 s after the first, and wait for the run.
    for (let at = 0; at < 3_000; at += 30) {
      debounce.schedule();
      await vi.advanceTimersByTimeAsync(30);
    }
    await expectOneRunQueued(state, endRun);
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
    await expectOneRunQueued(state, endRun);
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
