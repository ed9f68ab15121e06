import { componentLogger, type Logger } from '../../../src/logger.ts';
import type { RateLimitSettings, RedisSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { delayUnlessClientGone, endAnsweredByListener, endedDuringWait, recordClientGone } from '../client-gone.ts';
import { whenRetired } from '../middleware-retire.ts';
import { requestKeyReader } from '../request-key.ts';
import { redisFailureReason, sharedRedis, type RedisConnection } from '../../redis/redis-connection.ts';
import { rateLimitHeaders } from './headers.ts';
import { shareOf, wholeShareOf, type BucketShape, type LimitDecision, type Limiter } from './limiter.ts';
import { QuotaLimiter } from './local-quota.ts';
import { rateLimitChanges, rateLimitFallbackTotal } from './rate-limit-events.ts';
import { RedisBucketLimiter } from './redis-bucket.ts';
import { RedisFallbackLimiter } from './redis-fallback.ts';
import { PeerScaledLimiter } from './peer-scaled.ts';
import { livePeerCount } from '../../config-store/peer-count.ts';
import { TokenBucketLimiter } from './token-bucket.ts';

export type { BucketShape, LimitDecision, Limiter, QuotaState } from './limiter.ts';
export { shareOf, wholeShareOf } from './limiter.ts';
export { QuotaLimiter } from './local-quota.ts';
export { rateLimitChanges, rateLimitFallbackTotal } from './rate-limit-events.ts';
export { RedisBucketLimiter, TAKE_TOKEN_SCRIPT } from './redis-bucket.ts';
export { RedisFallbackLimiter } from './redis-fallback.ts';
export { RATE_LIMIT_MAX_KEYS, TokenBucketLimiter, type TokenBucketOptions } from './token-bucket.ts';

/** The error class of a request refused by a rate limit; no upstream was involved, so none is blamed. */
export const RATE_LIMITED = 'rate-limited';
/** The error class of a request refused because its key used up its hourly or daily quota. */
export const QUOTA_EXCEEDED = 'quota-exceeded';
/**
 * The error class of a request refused because its limit could not count it (`policy: redis`,
 * `onRedisError: deny`, Redis away): 503, not the client's fault, and not a 429 over a count never read.
 */
export const RATE_LIMIT_UNAVAILABLE = 'rate-limit-unavailable';

/** What `rateLimit` needs besides its settings. */
export interface RateLimitOptions {
  /** The limiter to ask for every request (tests); built from the settings by default. */
  readonly limiter?: Limiter;
  /** Monotonic clock of the local buckets (tests pass a fake one). */
  readonly now?: () => number;
  /** Wall clock of local quotas (their windows are clock hours and days). */
  readonly wallClock?: () => number;
  /**
   * This process's share of every local bucket and quota (1/workers with `workers: N`): the
   * middleware's own bucket, each consumer's own and the Redis fallback's, so that the workers
   * together let through what the file says. 1 by default.
   */
  readonly share?: number;
  /** The middleware's name: keeps its Redis keys apart and names it in logs, metrics and events. */
  readonly name?: string;
  /** The configuration's `redis:` section, where a `policy: redis` limit counts; without it the limit counts locally. */
  readonly redisSettings?: RedisSettings;
  /** The Redis connection for `policy: redis`; this process's shared one by default. */
  readonly redis?: (settings: RedisSettings) => RedisConnection;
  /**
   * The worker slot (0 to workers - 1), for events and to deal out what of a burst or quota does not
   * divide evenly among the workers (the first slots take one more); null in a one-process gateway.
   */
  readonly worker?: number | null;
  readonly log?: Logger;
}

/**
 * Lets a request through when its key's bucket has a token (with `delay`, after waiting for one
 * due soon enough), and answers 429 otherwise, in the gateway's error shape with `Retry-After`,
 * `X-RateLimit-Limit/-Remaining/-Reset` and the IETF `RateLimit`/`RateLimit-Policy` fields; the
 * error is `quota-exceeded` when the hourly/daily quota refused it, `rate-limited` otherwise.
 * Every other answer carries the limit headers too (through a response header hook). A limit that
 * could not count (`uncounted`) sends no limit header, since none of their figures was read: it
 * lets the request through as it came (`onRedisError: allow`) or answers 503 `rate-limit-unavailable`
 * with `Retry-After` alone (`deny`).
 */
export function rateLimit(settings: RateLimitSettings, options: RateLimitOptions = {}): Middleware {
  // Set once a reload replaced or dropped this middleware: its Redis limiters leave Redis' return to the limit that replaced it, if that falls back too.
  let retired = false;
  const build = limiterBuilder(settings, options, () => retired);
  const limiter = options.limiter ?? build(settings, '');
  const keyOf = requestKeyReader(settings.key, settings.ipv6Subnet);
  const byConsumer = settings.key.from === 'consumer' && !options.limiter;
  const limiterOf = byConsumer ? consumerLimiters(limiter, build) : () => limiter;
  // A local limiter answers at once: no promise and no extra microtask on that path.
  const decide = (context: GatewayContext, next: () => Promise<void>, decision: LimitDecision): Promise<void> => {
    // No bucket decided (Redis away, `allow` or `deny`): no limit header, as Envoy's filter sends none when its service fails.
    if (decision.uncounted) return decision.allowed ? next() : refuseUncounted(context, decision, settings.statusOnRedisError);
    const headers = rateLimitHeaders(decision, (byConsumer && context.get('consumer')?.rateLimit) || settings);
    if (!decision.allowed) {
      const retryAfter = headers['retry-after']!;
      const quota = decision.refusedBy === 'quota';
      const message = quota ? `${settings.quota?.per === 'hour' ? 'hourly' : 'daily'} quota used up; retry after ${retryAfter} s` : `too many requests; retry after ${retryAfter} s`;
      sendErrorAnswer(context, 429, quota ? QUOTA_EXCEEDED : RATE_LIMITED, message, headers);
      return DONE;
    }
    // A header hook, not setHeader: every answer (the upstream's and the gateway's own) runs the hooks,
    // and a response with no headers set keeps Node's fast writeHead path.
    context.responseHeaderHooks.push((_status, outgoing) => {
      for (const name in headers) outgoing[name] = headers[name];
    });
    // A client that leaves while its request is held ends the wait at once (499, nothing sent on); its
    // token stays taken, as nginx's limit_req keeps the excess of a request that closes while delayed.
    // One its listener answered meanwhile (a body that missed `limits.requestTimeout`, held unread) is
    // that answer, and nothing goes on either.
    if (decision.delayMs > 0) return delayUnlessClientGone(context, decision.delayMs).then((stayed) => (!stayed ? recordClientGone(context) : endAnsweredByListener(context) ? undefined : next()));
    return next();
  };
  const middleware: Middleware = function rateLimit(context, next) {
    const taken = limiterOf(context).take(keyOf(context));
    // A client that left while Redis decided is recorded so (499), neither refused nor sent on: its token stays taken.
    return taken instanceof Promise ? taken.then((decision) => (endedDuringWait(context) ? undefined : decide(context, next, decision))) : decide(context, next, taken);
  };
  whenRetired(middleware, () => (retired = true));
  return middleware;
}

const DONE: Promise<void> = Promise.resolve();

/**
 * `status` (`statusOnRedisError`: 503 by default) with `Retry-After` (when the store is next asked),
 * as a service that cannot serve for now answers (RFC 9110 §15.6.4), rather than Envoy's default 500
 * under `failure_mode_deny`: the gateway is not broken, and clients retry a 503 after `Retry-After`;
 * a 429 would blame the client. Whatever the status, the error is `rate-limit-unavailable`.
 */
function refuseUncounted(context: GatewayContext, decision: LimitDecision, status: number): Promise<void> {
  const retryAfter = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1_000)));
  sendErrorAnswer(context, status, RATE_LIMIT_UNAVAILABLE, `the rate limit cannot count requests now (its store is unreachable); retry after ${retryAfter} s`, { 'retry-after': retryAfter });
  return DONE;
}

/** Builds the limiter of one bucket shape: local (this process's share), or Redis with its fallback. */
function limiterBuilder(settings: RateLimitSettings, options: RateLimitOptions, retired: () => boolean): (shape: BucketShape, subKey: string) => Limiter {
  const share = options.share ?? 1;
  const name = options.name ?? 'rateLimit';
  const maxWaitMs = settings.delay?.maxWaitMs ?? 0;
  // The worker's slot deals out what does not divide evenly (burst 5 over 2 workers: 3 and 2).
  const part = options.worker ?? undefined;
  // A bucket (and quota) of `gateways` gateways' share (each the same, rounded down), then this worker's of that.
  const local = (shape: BucketShape, gateways: number): Limiter => {
    const gatewayShape = shareOf(shape, 1 / gateways);
    const bucket = new TokenBucketLimiter({ ...shareOf(gatewayShape, share, part), maxWaitMs, ...(options.now ? { now: options.now } : {}) });
    if (!settings.quota) return bucket;
    const quota = { ...settings.quota, limit: wholeShareOf(wholeShareOf(settings.quota.limit, 1 / gateways), share, part) };
    return new QuotaLimiter(bucket, quota, options.wallClock);
  };
  const redisSettings = options.redisSettings;
  if (settings.policy !== 'redis' || !redisSettings) return (shape) => local(shape, 1);
  const log = options.log ?? componentLogger('rate-limit');
  // The first limiter built (the middleware's own) keeps the fallback state; consumers' own limiters follow it.
  let first: RedisFallbackLimiter | undefined;
  // Taken once: a consumer's limiter built later, even by a request of a configuration since
  // replaced, must not open a connection to a Redis the gateway has moved away from.
  const redis = (options.redis ?? sharedRedis)(redisSettings);
  return (shape, subKey) => {
    const namespace = subKey ? `${name}:${subKey}` : name;
    const bucket = new RedisBucketLimiter({ redis, namespace, shape, maxWaitMs, quota: settings.quota });
    const limiter = new RedisFallbackLimiter(bucket, {
      name,
      mode: settings.onRedisError,
      // Every gateway falls back alike: each gets its share of the budget, and each worker its share of that.
      // With a config store the number of gateways is the live peer count, else the configured `redis.gateways`.
      local: new PeerScaledLimiter((gateways) => local(shape, gateways), () => livePeerCount() ?? redisSettings.gateways),
      burst: shape.burst,
      charge: (key, count) => bucket.charge(key, count),
      probe: () => bucket.probe(),
      reason: (error) => redisFailureReason(redis, error),
      closed: () => redis.status === 'end',
      retired,
      log,
      report: (change) => rateLimitChanges.next(change),
      counted: () => rateLimitFallbackTotal.inc({ middleware: name, mode: settings.onRedisError }),
      worker: options.worker ?? null,
      ...(first ? { sharesStateWith: first } : {}),
    });
    first ??= limiter;
    return limiter;
  };
}

type ConsumerLimit = { readonly average: number; readonly periodMs: number; readonly burst: number } | undefined;

/**
 * Per-consumer buckets: a consumer with its own `rateLimit` gets a limiter of its settings, built
 * like the middleware's (the same share of them per worker, the same policy), made on its first
 * request and kept while the settings stay the same; every other request gets the middleware's.
 */
function consumerLimiters(fallback: Limiter, build: (shape: BucketShape, subKey: string) => Limiter): (context: GatewayContext) => Limiter {
  const own = new Map<string, { readonly settings: ConsumerLimit; readonly limiter: Limiter }>();
  return (context) => {
    const consumer = context.get('consumer');
    if (!consumer?.rateLimit) return fallback;
    let entry = own.get(consumer.name);
    // A reload hands over a new consumer object; equal settings keep the bucket.
    if (!entry || !sameLimit(entry.settings, consumer.rateLimit)) {
      entry = { settings: consumer.rateLimit, limiter: build(consumer.rateLimit, 'own') };
      own.set(consumer.name, entry);
    }
    return entry.limiter;
  };
}

function sameLimit(a: ConsumerLimit, b: ConsumerLimit): boolean {
  return a?.average === b?.average && a?.periodMs === b?.periodMs && a?.burst === b?.burst;
}
