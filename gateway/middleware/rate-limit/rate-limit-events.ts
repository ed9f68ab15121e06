import { Counter } from 'prom-client';
import { Subject } from 'rxjs';
import { metricsRegistry } from '../../../src/metrics.ts';
import type { RateLimitChange } from '../../admin/event-types.ts';

/**
 * Every `rate-limit-fallback` / `rate-limit-recovered` of this process. The admin events read it
 * (one process), or a worker forwards it to its primary, which feeds its own copy of this subject.
 */
export const rateLimitChanges = new Subject<RateLimitChange>();

/** Requests a `policy: redis` limit decided without Redis (by `onRedisError`), per middleware and mode. */
export const rateLimitFallbackTotal = new Counter({
  name: 'switchboard_rate_limit_fallback_total',
  help: 'Requests a policy: redis rate limit decided without Redis (by onRedisError: local, allow or deny).',
  labelNames: ['middleware', 'mode'] as const,
  registers: [metricsRegistry],
});
