import type { BucketShape, LimitDecision } from './limiter.ts';

/**
 * The limit headers of one decision: `X-RateLimit-Limit/-Remaining` (APISIX, Kong) always, and on
 * a refusal `Retry-After` and `X-RateLimit-Reset`; plus the IETF fields of
 * draft-ietf-httpapi-ratelimit-headers-11 (the syntax of drafts 08 to 11): `RateLimit-Policy` lists
 * the policies as structured-field items (`"default";q=<burst>;w=<seconds to refill it>`, and the
 * quota as `"daily"` or `"hourly"`), `RateLimit` their current state (`r` remaining, `t` seconds
 * until full again or until the quota window ends).
 */
export function rateLimitHeaders(decision: LimitDecision, shape: BucketShape): Record<string, string> {
  const refusedByQuota = decision.refusedBy === 'quota';
  // The bucket's own numbers; a quota refusal carries the quota's in limit/remaining instead.
  const burst = refusedByQuota ? undefined : decision.limit;
  // The time the bucket that decided takes to fill: a worker's (or a Redis fallback's) share of the
  // shape, its burst rounded to whole tokens, need not fill in the shape's (burst 3 at 1/s over two
  // gateways: 1 at 0.5/s, 2 s and not 3); the shape's own (a consumer's, or the middleware's) otherwise.
  const fillMs = decision.fillMs ?? (shape.burst * shape.periodMs) / shape.average;
  const refillSeconds = burst === undefined ? 0 : Math.max(1, Math.ceil(fillMs / 1_000));
  // Plain concatenation: this runs for every request through a limiter (no arrays to join).
  let policy = burst === undefined ? '' : `"default";q=${burst};w=${refillSeconds}`;
  let state = burst === undefined ? '' : `"default";r=${decision.remaining};t=${Math.ceil(decision.resetMs / 1_000)}`;
  const quota = decision.quota;
  if (quota) {
    const name = quota.windowMs === 3_600_000 ? 'hourly' : 'daily';
    const separator = policy === '' ? '' : ', ';
    policy += `${separator}"${name}";q=${quota.limit};w=${quota.windowMs / 1_000}`;
    state += `${separator}"${name}";r=${quota.remaining};t=${Math.ceil(quota.resetMs / 1_000)}`;
  }
  const headers: Record<string, string> = {
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
    'ratelimit-policy': policy,
    ratelimit: state,
  };
  if (!decision.allowed) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1_000)));
    headers['x-ratelimit-reset'] = String(Math.ceil(decision.resetMs / 1_000));
  }
  return headers;
}
