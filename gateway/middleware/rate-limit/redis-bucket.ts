import { reconnectIfSilent, untilFirstReady, type RedisConnection } from '../../redis/redis-connection.ts';
import type { RateLimitQuota } from '../../config/types.ts';
import type { BucketShape, LimitDecision, Limiter } from './limiter.ts';
import { QUOTA_WINDOW_MS } from './local-quota.ts';

/** Redis' clock in ms, as `now`. */
const NOW_LUA = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`;

/** The bucket KEYS[1] refilled to `now` at `rate` up to `burst`, as `tokens` (a missing one is full). */
const REFILL_LUA = `
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
`;

/** Stores `tokens` as of `now` in KEYS[1], to expire once the bucket would be full again. */
const STORE_LUA = `
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
`;

/**
 * KEYS[2]'s count of the current quota window of `quotaWindow` ms as `used` (0 in a new window),
 * that window's number as `window` and the ms to its end as `quotaReset` (all declared before).
 */
const QUOTA_LUA = `
window = math.floor(now / quotaWindow)
quotaReset = (window + 1) * quotaWindow - now
local quota = redis.call('HMGET', KEYS[2], 'w', 'n')
if tonumber(quota[1]) == window then used = tonumber(quota[2]) or 0 end
`;

/** Stores `used` as the count of window `window` in KEYS[2], to expire a second after that window. */
const QUOTA_STORE_LUA = `
redis.call('HSET', KEYS[2], 'w', tostring(window), 'n', tostring(used))
redis.call('PEXPIRE', KEYS[2], quotaReset + 1000)
`;

/**
 * The token bucket (and quota) in Redis, one round trip per request. The clock is Redis' own TIME,
 * not the gateway's: every gateway then refills the shared bucket from one clock, and a gateway
 * host whose clock runs ahead cannot mint tokens. (Redis 5+ replicates a script's effects, so a
 * script may read TIME before it writes.) KEYS[1] is the bucket (t: tokens, a: when, ms), KEYS[2]
 * the quota (w: window number, n: count); both carry the same {hash tag}, so they share a Cluster
 * slot. ARGV: tokens per ms, burst, max wait ms, quota limit (0: none), quota window ms.
 * Returns {allowed (0, 1, or 2 = refused by quota), tokens, delay ms, quota count, quota reset ms}.
 */
export const TAKE_TOKEN_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local quotaLimit = tonumber(ARGV[4])
local quotaWindow = tonumber(ARGV[5])
${NOW_LUA}local used, quotaReset, window = 0, 0, 0
if quotaLimit > 0 then
${QUOTA_LUA}  if used >= quotaLimit then return {2, '0', '0', used, quotaReset} end
end
${REFILL_LUA}
local allowed, delay = 0, 0
if tokens >= 1 - 1e-9 then
  allowed, tokens = 1, math.max(0, tokens - 1)
elseif (1 - tokens) / rate <= maxWait then
  allowed, delay, tokens = 1, (1 - tokens) / rate, tokens - 1
end
${STORE_LUA}
if allowed == 1 and quotaLimit > 0 then
  used = used + 1
${QUOTA_STORE_LUA}end
return {allowed, tostring(tokens), tostring(delay), used, quotaReset}
`;

/**
 * Charges a bucket (and its quota) for `count` requests let through without it: the local fallback
 * handed them out while Redis was away, and the shared bucket refilled meanwhile would grant them
 * again. The bucket goes down to 0 at most (no debt: a charge never refuses more than the shared
 * bucket would have), the quota's count of the current window goes up by `count`. Same KEYS as
 * `TAKE_TOKEN_SCRIPT`; ARGV: tokens per ms, burst, count, quota window ms (0: no quota).
 */
export const CHARGE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local quotaWindow = tonumber(ARGV[4])
${NOW_LUA}
${REFILL_LUA}
tokens = math.max(0, tokens - count)
${STORE_LUA}
if quotaWindow > 0 then
  local used, quotaReset, window = 0, 0, 0
${QUOTA_LUA}  used = used + count
${QUOTA_STORE_LUA}end
return 1
`;

/** The scripts' names on a connection (`defineCommand`). */
const COMMAND = 'switchboardTakeToken';
const CHARGE = 'switchboardChargeTokens';

type TakeTokenReply = [number, string, string, number, number];
type WithTakeToken = RedisConnection & {
  [COMMAND](bucketKey: string, quotaKey: string, ...args: (string | number)[]): Promise<TakeTokenReply>;
  [CHARGE](bucketKey: string, quotaKey: string, ...args: (string | number)[]): Promise<number>;
};

/** What a `RedisBucketLimiter` needs. */
export interface RedisBucketOptions {
  readonly redis: RedisConnection;
  /** Keeps the Redis keys of this limiter apart from other limiters' (the middleware name). */
  readonly namespace: string;
  readonly shape: BucketShape;
  readonly maxWaitMs: number;
  readonly quota: RateLimitQuota | undefined;
}

/**
 * A token bucket per key kept in Redis: every gateway that uses the same Redis, namespace and key
 * draws from one bucket. A call rejects (never hangs) when Redis does not answer within the
 * connection's command timeout (while the connection is first made, a call waits up to one timeout
 * for it before that); the caller decides what to do then (`RedisFallbackLimiter`).
 * Idle keys expire in Redis once their bucket would be full again (PEXPIRE).
 */
export class RedisBucketLimiter implements Limiter {
  private readonly redis: WithTakeToken;
  private readonly ratePerMs: number;
  private readonly quotaWindowMs: number;
  /** Set once the connection has been ready: from then on a request never waits for it to be made. */
  private connected = false;

  constructor(private readonly options: RedisBucketOptions) {
    const redis = options.redis as WithTakeToken;
    // Defined once per connection; ioredis sends EVALSHA and falls back to EVAL when Redis lost the script.
    if (typeof redis[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: TAKE_TOKEN_SCRIPT });
    if (typeof redis[CHARGE] !== 'function') redis.defineCommand(CHARGE, { numberOfKeys: 2, lua: CHARGE_SCRIPT });
    this.redis = redis;
    this.ratePerMs = options.shape.average / options.shape.periodMs;
    this.quotaWindowMs = options.quota ? QUOTA_WINDOW_MS[options.quota.per] : 0;
  }

  /**
   * Runs the limiter's own script on a bucket of its own (`rl-probe:`, apart from every request's
   * `rl:` key): resolves when Redis would serve the limiter again. A PING is not enough: a Redis that
   * is out of memory or a read-only replica answers PING but refuses the script's writes. A probe
   * that times out may reconnect (`reconnectIfSilent`): the connection may have gone silent for good.
   */
  async probe(): Promise<void> {
    const { shape, namespace } = this.options;
    const tag = `{${namespace}}`;
    try {
      await this.redis[COMMAND](`rl-probe:${tag}`, `rq-probe:${tag}`, this.ratePerMs, shape.burst, 0, 0, 0);
    } catch (error) {
      reconnectIfSilent(this.options.redis, error);
      throw error;
    }
  }

  /**
   * Takes `count` tokens from `key`'s bucket (down to 0) and counts them in its quota, in one call:
   * what the local fallback let through for it while Redis was away (`CHARGE_SCRIPT`).
   */
  async charge(key: string, count: number): Promise<void> {
    const { shape, namespace } = this.options;
    const tag = `{${namespace}:${key}}`;
    await this.redis[CHARGE](`rl:${tag}`, `rq:${tag}`, this.ratePerMs, shape.burst, count, this.quotaWindowMs);
  }

  async take(key: string): Promise<LimitDecision> {
    if (!this.connected) {
      const starting = untilFirstReady(this.options.redis);
      if (starting) await starting;
      else this.connected = true;
    }
    const { shape, quota, maxWaitMs, namespace } = this.options;
    const tag = `{${namespace}:${key}}`;
    const [allowedCode, tokensText, delayText, used, quotaResetMs] = await this.redis[COMMAND](`rl:${tag}`, `rq:${tag}`, this.ratePerMs, shape.burst, maxWaitMs, quota?.limit ?? 0, this.quotaWindowMs);
    const tokens = Number(tokensText);
    const quotaState = quota && { limit: quota.limit, remaining: Math.max(0, quota.limit - used), resetMs: quotaResetMs, windowMs: this.quotaWindowMs };
    if (allowedCode === 2) {
      return { allowed: false, refusedBy: 'quota', limit: quota?.limit ?? 0, remaining: 0, resetMs: quotaResetMs, retryAfterMs: quotaResetMs, delayMs: 0, ...(quotaState ? { quota: quotaState } : {}) };
    }
    const allowed = allowedCode === 1;
    const waitMs = tokens >= 1 ? 0 : (1 - tokens) / this.ratePerMs;
    return {
      allowed,
      refusedBy: allowed ? undefined : 'rate',
      limit: shape.burst,
      remaining: Math.max(0, Math.floor(tokens + 1e-9)),
      resetMs: (shape.burst - tokens) / this.ratePerMs,
      retryAfterMs: allowed ? 0 : Math.max(0, waitMs - maxWaitMs),
      delayMs: allowed ? Number(delayText) : 0,
      ...(quotaState ? { quota: quotaState } : {}),
    };
  }
}
