import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage } from '../../src/errors.ts';
import { WaitTimeoutError } from './errors.ts';

/** Tuning for `waitFor`; `message` names the condition in the timeout error. */
export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  message?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_INTERVAL_MS = 50;

/**
 * Polls `probe` until it returns a truthy value and resolves with it; a throwing probe counts as "not yet".
 * After `timeoutMs` (default 10 s) it rejects with a WaitTimeoutError carrying `message` and the last error.
 * A probe that hangs is abandoned at the deadline, so the wait itself never outlives `timeoutMs`.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      const value = await raceDeadline(probe, deadline);
      if (value === TIMED_OUT) lastError ??= new Error('the probe was still pending at the deadline');
      else if (value) return value as NonNullable<T>;
      else lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await delay(Math.min(intervalMs, remaining));
  }
  const what = options.message ?? 'condition';
  const last = lastError === undefined ? '' : `; last error: ${errorMessage(lastError)}`;
  throw new WaitTimeoutError(`${what} not met within ${timeoutMs} ms (${attempts} attempts)${last}`, { cause: lastError });
}

const TIMED_OUT: unique symbol = Symbol('timed out');
const timedOut = (): typeof TIMED_OUT => TIMED_OUT;

async function raceDeadline<T>(probe: () => T | Promise<T>, deadline: number): Promise<T | typeof TIMED_OUT> {
  const controller = new AbortController();
  const pending = Promise.resolve().then(probe);
  // A late rejection of an abandoned probe must not surface as an unhandled rejection.
  pending.catch(() => undefined);
  try {
    return await Promise.race([
      pending,
      // Aborting the timer rejects it; that rejection is expected and swallowed.
      delay(Math.max(0, deadline - Date.now()), undefined, { signal: controller.signal }).then(timedOut, timedOut),
    ]);
  } finally {
    controller.abort();
  }
}
