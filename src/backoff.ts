/** Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Multiplier per attempt; 2 by default. */
  factor?: number;
  /** Share of the delay that is randomised, 0..1; 0.5 by default (the delay stays above half its nominal value). */
  jitter?: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 5_000, factor: 2, jitter: 0.5 };

/**
 * Delay before retry number `attempt` (0-based), never above `maxMs`.
 * `random` is injectable so tests can pin the jitter.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const factor = options.factor ?? 2;
  const jitter = options.jitter ?? 0.5;
  const nominal = Math.min(options.maxMs, options.initialMs * factor ** Math.max(0, attempt));
  return Math.round(nominal * (1 - jitter * random()));
}
