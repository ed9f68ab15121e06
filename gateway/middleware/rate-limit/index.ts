import type { ConsumerConfig, RateLimitKey, RateLimitSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import type { Limiter } from './limiter.ts';
import { TokenBucketLimiter } from './token-bucket.ts';

export type { LimitDecision, Limiter } from './limiter.ts';
export { RATE_LIMIT_MAX_KEYS, TokenBucketLimiter, type TokenBucketOptions } from './token-bucket.ts';

/** The error class of a request refused by a rate limit; no upstream was involved, so none is blamed. */
export const RATE_LIMITED = 'rate-limited';

/** What `rateLimit` needs besides its settings. */
export interface RateLimitOptions {
  /** The limiter to ask; a local `TokenBucketLimiter` built from the settings by default. */
  readonly limiter?: Limiter;
  /** Monotonic clock of the default limiter (tests pass a fake one). */
  readonly now?: () => number;
}

/**
 * Lets a request through when its key's bucket has a token, and answers 429 otherwise, in the
 * gateway's error shape with `Retry-After` (whole seconds, rounded up) and `X-RateLimit-Limit`,
 * `-Remaining` and `-Reset` (seconds until the bucket is full again). Passed responses carry
 * `X-RateLimit-Limit` and `-Remaining` too.
 */
export function rateLimit(settings: RateLimitSettings, options: RateLimitOptions = {}): Middleware {
  const limiter = options.limiter ?? new TokenBucketLimiter({ ...settings, ...(options.now ? { now: options.now } : {}) });
  const keyOf = keyReader(settings.key);
  const limiterOf = settings.key.from === 'consumer' ? consumerLimiters(limiter, options) : () => limiter;
  return async function rateLimit(context, next) {
    const decision = await limiterOf(context).take(keyOf(context));
    const limit = String(decision.limit);
    const remaining = String(decision.remaining);
    if (!decision.allowed) {
      const retryAfter = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1_000)));
      sendErrorAnswer(context, 429, RATE_LIMITED, `too many requests; retry after ${retryAfter} s`, {
        'retry-after': retryAfter,
        'x-ratelimit-limit': limit,
        'x-ratelimit-remaining': remaining,
        'x-ratelimit-reset': String(Math.ceil(decision.resetMs / 1_000)),
      });
      return;
    }
    // Set on the response itself so that every answer carries them: the upstream's and the gateway's own.
    context.response.setHeader('x-ratelimit-limit', limit);
    context.response.setHeader('x-ratelimit-remaining', remaining);
    await next();
  };
}

/** Reads a request's bucket key; a missing header shares one bucket (the empty key) with every other request lacking it. */
function keyReader(key: RateLimitKey): (context: GatewayContext) => string {
  switch (key.from) {
    case 'client-ip':
      return (context) => context.clientIp;
    case 'route':
      return (context) => context.routeName;
    case 'service':
      return (context) => context.service;
    case 'consumer':
      // Requests no authentication middleware identified share the empty key.
      return (context) => context.get('consumer')?.name ?? '';
    case 'header': {
      const name = key.name.toLowerCase();
      return (context) => {
        const value = context.request.headers[name];
        return Array.isArray(value) ? value.join(',') : (value ?? '');
      };
    }
  }
}

/**
 * Per-consumer buckets: a consumer with its own `rateLimit` gets a limiter of its settings (made on
 * its first request, kept while the settings stay the same), every other request the middleware's.
 */
function consumerLimiters(fallback: Limiter, options: RateLimitOptions): (context: GatewayContext) => Limiter {
  const own = new Map<string, { readonly settings: ConsumerConfig['rateLimit']; readonly limiter: Limiter }>();
  return (context) => {
    const consumer = context.get('consumer');
    if (!consumer?.rateLimit) return fallback;
    let entry = own.get(consumer.name);
    // A reload hands over a new consumer object; equal settings keep the bucket.
    if (!entry || !sameLimit(entry.settings, consumer.rateLimit)) {
      entry = { settings: consumer.rateLimit, limiter: new TokenBucketLimiter({ ...consumer.rateLimit, ...(options.now ? { now: options.now } : {}) }) };
      own.set(consumer.name, entry);
    }
    return entry.limiter;
  };
}

function sameLimit(a: ConsumerConfig['rateLimit'], b: ConsumerConfig['rateLimit']): boolean {
  return a?.average === b?.average && a?.periodMs === b?.periodMs && a?.burst === b?.burst;
}
