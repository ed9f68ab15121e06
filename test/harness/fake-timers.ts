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
