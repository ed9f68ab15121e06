import { Counter } from 'prom-client';
import { backoffDelay, type BackoffOptions } from '../../src/backoff.ts';
import { metricsRegistry } from '../../src/metrics.ts';

/** Restart delays of a worker that keeps crashing: 100 ms, then doubling up to 30 s. */
const RESTART_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 30_000 };
/** A worker that ran this long before it crashed starts its next restart from the first delay again. */
const STABLE_AFTER_MS = 10_000;

/** Workers replaced, by why the one before exited: it crashed, did not listen in time, or its heartbeat stopped and the primary killed it. */
export const workerRestartsTotal = new Counter({
  name: 'switchboard_worker_restarts_total',
  help: 'Workers replaced, by why the previous one exited (crashed, start-timeout, unresponsive).',
  labelNames: ['reason'] as const,
  registers: [metricsRegistry],
});

/**
 * When to replace a worker that exited after `livedMs`, having crashed `crashes` times in a row
 * before: one that ran at least `STABLE_AFTER_MS` starts the count afresh (about 0.1 s), and each
 * quick crash doubles the delay up to 30 s, so a crash loop costs a start every 30 s, not a spin.
 */
export function restartPlan(crashes: number, livedMs: number, random: () => number = Math.random): { crashes: number; delayMs: number } {
  const next = livedMs >= STABLE_AFTER_MS ? 1 : crashes + 1;
  return { crashes: next, delayMs: backoffDelay(next - 1, RESTART_BACKOFF, random) };
}
