import { z } from 'zod';
import { BODYLESS_STATUSES, count, duration, headerName, percent, refuseUnsendableHeaders, section, sentHeaderValue } from './schema-values.ts';

const statusCode = z.int().min(100).max(599);
const FALLBACK_STATUS_HINT = 'expected a final status from 200 to 599 (1xx are interim answers, never the answer itself)';
/** A status or range; the same shape as `healthCheck.expectedStatuses` (kept here: `schema-service.ts` imports this file). */
const statusOrRange = z.union(
  [
    statusCode,
    z.string().transform((text, context) => {
      const match = /^([1-5]\d\d)\s*-\s*([1-5]\d\d)$/.exec(text.trim());
      if (match && Number(match[1]) <= Number(match[2])) return { from: Number(match[1]), to: Number(match[2]) };
      context.addIssue({ code: 'custom', message: 'expected a status such as 503 or a range such as "500-599"' });
      return z.NEVER;
    }),
  ],
  { error: 'expected a status such as 503 or a range such as "500-599"' },
);

/** What an open breaker answers: a static response, another service, or (left out) a 503 `circuit-open`. */
const fallback = z.union(
  [
    section({ service: z.string().min(1) }),
    section({
      // A 1xx is an interim answer: sent as the answer, the client waits on for the real one (or, for
      // a 101, for a protocol that never starts).
      status: z.int(FALLBACK_STATUS_HINT).min(200, FALLBACK_STATUS_HINT).max(599, FALLBACK_STATUS_HINT),
      headers: z.record(headerName, sentHeaderValue).superRefine(refuseUnsendableHeaders('answer')).optional(),
      body: z.string().max(65_536).optional(),
    }).superRefine((answer, context) => {
      // Sent after a 204 or 304, the body would be read as the start of the connection's next answer.
      if (answer.body !== undefined && BODYLESS_STATUSES.has(answer.status)) context.addIssue({ code: 'custom', path: ['body'], message: `a ${answer.status} answer has no body (RFC 9110)` });
    }),
  ],
  { error: 'expected { status, headers?, body? } or { service }' },
);

/** `circuitBreaker:` of a service or a route (Hystrix's settings); `false` turns an inherited one off. */
export const circuitBreakerSchema = z.union(
  [
    z.literal(false),
    section({
      window: duration.refine((ms) => ms >= 10, 'must be at least 10ms').optional(),
      buckets: count(1, 1_000).optional(),
      requestVolumeThreshold: count(1, 1_000_000).optional(),
      errorPercentThreshold: percent.refine((value) => value > 0, 'must be above 0').optional(),
      sleepWindow: duration.optional(),
      halfOpenRequests: count(1, 1_000).optional(),
      maxConcurrentRequests: count(1, 1_000_000).optional(),
      timeout: duration.optional(),
      failureStatuses: z.array(statusOrRange).optional(),
      fallback: fallback.optional(),
    }),
  ],
  { error: 'expected false or { requestVolumeThreshold, errorPercentThreshold, sleepWindow, … }' },
);

/** `concurrency:` of a service: Envoy's circuit-breaker thresholds (unset: unlimited). */
export const concurrencySchema = section({
  maxConnections: count(1, 100_000).optional(),
  maxPendingRequests: count(0, 1_000_000).optional(),
  maxRequests: count(1, 1_000_000).optional(),
  maxActiveRetries: count(0, 1_000_000).optional(),
});

/** `retryBudget:` of a service (Finagle's / Envoy's retry budget); `false` turns it off. */
export const retryBudgetSchema = z.union(
  [
    z.literal(false),
    section({
      percent: percent.optional(),
      minRetriesPerSecond: z.number().min(0).max(100_000).optional(),
      window: duration.refine((ms) => ms >= 100, 'must be at least 100ms').optional(),
    }),
  ],
  { error: 'expected false or { percent, minRetriesPerSecond, window }' },
);

/** `circuitBreaker:` as parsed. */
export type CircuitBreakerInput = z.output<typeof circuitBreakerSchema>;
/** `concurrency:` as parsed. */
export type ConcurrencyInput = z.output<typeof concurrencySchema>;
/** `retryBudget:` as parsed. */
export type RetryBudgetInput = z.output<typeof retryBudgetSchema>;
