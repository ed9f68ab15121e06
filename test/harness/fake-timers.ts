import { vi } from 'vitest';

/**
 * How many fake timers `act` left armed (negative: cleared), counted around one synchronous call.
 * `vi.getTimerCount()` counts every timer on the fake clock, including those that code outside the
 * test arms through the faked global `setTimeout` while the test awaits: in the unit project the
 * files share one process (isolate: false), so an earlier file's late socket or an undici request
 * answering late can add timers mid-test, and an absolute count then blames the code under test.
 * Nothing else runs during a synchronous call, so the change across one is the code's own.
 * Requires fake timers to be on.
 */
export function timersArmedBy(act: () => void): number {
  const before = vi.getTimerCount();
  act();
  return vi.getTimerCount() - before;
}

/**
 * Watches the fake clock's setTimeout and clearTimeout for the timers set for `ms`: `armed()` lists those
 * neither fired nor cleared. For a timer armed or cleared across an await, which `timersArmedBy` cannot
 * count: the timers are told apart by their duration, so give the code under test one that nothing else
 * uses. Requires fake timers to be on; the spies wrap the fake functions, so call `vi.restoreAllMocks()`
 * before `vi.useRealTimers()`.
 */
export function watchTimersOf(ms: number): { armed(): unknown[] } {
  const armed = new Set<unknown>();
  const fakeSetTimeout = globalThis.setTimeout;
  const fakeClearTimeout = globalThis.clearTimeout;
  const setTimeoutWatched = (callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]): NodeJS.Timeout => {
    if (delay !== ms) return fakeSetTimeout(callback, delay, ...args);
    const timer = fakeSetTimeout(() => {
      armed.delete(timer);
      callback(...args);
    }, delay);
    armed.add(timer);
    return timer;
  };
  vi.spyOn(globalThis, 'setTimeout').mockImplementation(setTimeoutWatched as typeof setTimeout);
  vi.spyOn(globalThis, 'clearTimeout').mockImplementation((timer) => {
    armed.delete(timer);
    fakeClearTimeout(timer);
  });
  return { armed: () => [...armed] };
}
