import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../../../src/metrics.ts';
import type { ResponseCache } from './cache-store.ts';

/** What a `cache` did with a request, in nginx's `$upstream_cache_status` words. */
export type CacheStatus = 'HIT' | 'MISS' | 'EXPIRED' | 'REVALIDATED' | 'STALE' | 'UPDATING' | 'BYPASS';

/** The caches of this process's `cache` middleware by name, the ones in force (a reload that rebuilds one replaces it here). */
const liveCaches = new Map<string, ResponseCache>();

/** Requests a `cache` middleware saw (of the methods it answers), per middleware and `CacheStatus`. */
export const cacheRequestsTotal = new Counter({
  name: 'switchboard_cache_requests_total',
  help: 'Requests a cache middleware looked up, by what it did: HIT (answered from memory, also after waiting for the fetch of another request for its key: lock), MISS, EXPIRED (stored but stale: sent upstream), REVALIDATED (stored but stale, and the upstream answered 304 to its validators: the stored answer sent, or a 304 to a conditional request it meets), STALE (stored but stale, and its fetch failed: the stored answer sent in place of the failure), UPDATING (stored but stale, while another request fetches it: the stored answer sent at once, useStale updating or stale-while-revalidate) or BYPASS (the request asked for a fresh answer).',
  labelNames: ['middleware', 'status'] as const,
  registers: [metricsRegistry],
});

/** Answers a `cache` middleware stored, per middleware. */
export const cacheStoredTotal = new Counter({
  name: 'switchboard_cache_stored_total',
  help: 'Answers a cache middleware stored.',
  labelNames: ['middleware'] as const,
  registers: [metricsRegistry],
});

new Gauge({
  name: 'switchboard_cache_entries',
  help: 'Answers a cache middleware holds in this process.',
  labelNames: ['middleware'] as const,
  registers: [metricsRegistry],
  collect() {
    this.reset();
    for (const [name, cache] of liveCaches) this.set({ middleware: name }, cache.entries);
  },
});

new Gauge({
  name: 'switchboard_cache_bytes',
  help: 'Bytes a cache middleware holds in this process, as counted against its maxSize.',
  labelNames: ['middleware'] as const,
  registers: [metricsRegistry],
  collect() {
    this.reset();
    for (const [name, cache] of liveCaches) this.set({ middleware: name }, cache.bytes);
  },
});

/** Shows `cache` in the gauges as the one named `name`, until `forgetCache` or another takes the name. */
export function showCache(name: string, cache: ResponseCache): void {
  liveCaches.set(name, cache);
}

/** The caches in force in this process by middleware name, for a purge. */
export function cachesInForce(): ReadonlyMap<string, ResponseCache> {
  return liveCaches;
}

/** Takes `cache` out of the gauges (its middleware was retired), unless another took its name since. */
export function forgetCache(name: string, cache: ResponseCache): void {
  if (liveCaches.get(name) === cache) liveCaches.delete(name);
}
