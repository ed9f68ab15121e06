import { expect, vi } from 'vitest';
import { LOAD_WAIT_ON_CLOSE_MS } from '../../src/close-while-loading.ts';

/** A client load that never settles, as a lazy import stuck for good. */
export const loadThatNeverSettles = (): Promise<never> => new Promise<never>(() => undefined);

/**
 * Starts `owner`, whose load never settles, and closes it at once; checks that close() is still
 * pending 1 ms before LOAD_WAIT_ON_CLOSE_MS and has resolved at it. Requires fake timers to be on.
 */
export async function expectCloseToAbandonTheLoad(owner: { start(): void; close(): Promise<unknown> }): Promise<void> {
  owner.start();
  let closed = false;
  void owner.close().then(() => (closed = true));
  await vi.advanceTimersByTimeAsync(LOAD_WAIT_ON_CLOSE_MS - 1);
  expect(closed).toBe(false);
  await vi.advanceTimersByTimeAsync(1);
  expect(closed).toBe(true);
}
