import type { IOptions } from 'etcd3';

// Types only: etcd3 (and gRPC under it) loads where a client is made, not where this is imported.
type FaultHandling = NonNullable<IOptions['faultHandling']>;
type FaultPolicy = NonNullable<FaultHandling['global']>;

const NEVER_ABORTED = new AbortController().signal;

/**
 * Runs each call exactly once. etcd3 otherwise retries three times and opens a per-host breaker
 * for 5 s; the caller's own backoff loop (a provider's, a registration's) is the only retry, so
 * recovery is not delayed by a breaker that still remembers the outage.
 */
const SINGLE_ATTEMPT = {
  execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> => fn({ signal: NEVER_ABORTED }),
} as unknown as FaultPolicy;

/** Fault handling without etcd3's retries and per-host breaker: the caller's own backoff loop is the only retry. */
export const NO_HIDDEN_RETRIES: Pick<FaultHandling, 'host' | 'global'> = { host: () => SINGLE_ATTEMPT, global: SINGLE_ATTEMPT };

