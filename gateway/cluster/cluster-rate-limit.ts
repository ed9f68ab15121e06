import type { MiddlewareConfig } from '../config/types.ts';

/**
 * A named middleware as one of `workers` processes runs it: a local rate limit gets a share of the
 * configured rate and burst (burst at least 1), so that the workers together let through what the
 * file says. Every other middleware is unchanged. Buckets are per worker, and a client's
 * connections land on any worker: one client on one connection sees its worker's share.
 */
export function perWorkerMiddleware(definition: MiddlewareConfig, workers: number): MiddlewareConfig {
  if (definition.kind !== 'rateLimit' || workers <= 1) return definition;
  const { settings } = definition;
  return { kind: 'rateLimit', settings: { ...settings, average: settings.average / workers, burst: Math.max(1, Math.floor(settings.burst / workers)) } };
}
