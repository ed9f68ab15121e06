import type { BreakerState } from './circuit-breaker.ts';

/** The admin event types of breaker state changes, by the state entered. */
export const BREAKER_EVENT_TYPES = { open: 'breaker-opened', 'half-open': 'breaker-half-open', closed: 'breaker-closed' } as const;

/** The payload of `breaker-opened`, `breaker-half-open` and `breaker-closed`. */
export interface BreakerChangePayload {
  service: string;
  /** The route of a route's own breaker; null for the service's. */
  route: string | null;
  from: BreakerState;
  to: BreakerState;
  /** Calls and failures in the window when it opened (0 otherwise). */
  requests: number;
  failures: number;
  /** The worker whose breaker changed (each worker keeps its own); null in a single-process gateway. */
  worker: number | null;
}

/** A breaker state change as the admin events take it. */
export type BreakerChange = { readonly type: (typeof BREAKER_EVENT_TYPES)[BreakerState]; readonly data: BreakerChangePayload };
