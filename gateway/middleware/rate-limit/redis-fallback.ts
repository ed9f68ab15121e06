import { errorMessage } from '../../../src/errors.ts';
import type { Logger } from '../../../src/logger.ts';
import type { RateLimitChange } from '../../admin/event-types.ts';
import type { LimitDecision, Limiter } from './limiter.ts';

/**
 * The most keys a limiter charges Redis for as it is back, one call each on the connection requests
 * use: 1,000 pending charges left a request's own call answered in 28 ms on a local Redis, 10,000
 * made it (and every charge) time out at 100 ms, and the limit fell back again at once. Keys past
 * it, first counted last, are not charged: each lets through at most its local share once more.
 */
export const MAX_CHARGED_KEYS = 1_000;

/** While in fallback, Redis is asked this often (the limit's script on a probe key) whether it is back. */
export const REDIS_PROBE_INTERVAL_MS = 500;

/** What a `RedisFallbackLimiter` needs. */
export interface RedisFallbackOptions {
  /** The middleware's name, for the log, the metric and the events. */
  readonly name: string;
  readonly mode: 'local' | 'allow' | 'deny';
  /**
   * The bucket used with `mode: local` (sized limit / gateways / workers). Each Redis answer seeds
   * its key with the level Redis reported (`seed`, and `seedQuota` with its quota's state), so a fallback
   * starts from it, not full, and not with a fresh quota.
   */
  readonly local: Limiter;
  /**
   * Charges Redis for `count` requests of `key` the local bucket let through during a fallback (one
   * call per key, sent as Redis is back, before any request's own call): the shared bucket refilled
   * meanwhile must not grant them again.
   */
  readonly charge?: (key: string, count: number) => Promise<unknown>;
  /** The bucket size, the `limit` of an `allow` or `deny` decision (`uncounted`: no header shows it). */
  readonly burst: number;
  /** Resolves when Redis serves the limiter again (its script on a probe key); rejects within the command timeout otherwise. */
  readonly probe: () => Promise<unknown>;
  /** What a failed Redis call says of its cause, for the log and the event; its message by default. */
  readonly reason?: (error: unknown) => string;
  /** True once the limiter's Redis connection is closed for good (a reload moved `redis:`): probing stops. */
  readonly closed?: () => boolean;
  /**
   * True once a reload replaced or dropped the limiter's middleware. It goes on probing while it
   * falls back, but reports Redis' return only when no limit of the same name that is still in use
   * falls back too (that one reports it): one recovery per outage, not one per reload, and never
   * a fallback left without its recovery.
   */
  readonly retired?: () => boolean;
  readonly log: Logger;
  readonly report: (change: RateLimitChange) => void;
  /** Counts one request decided without Redis. */
  readonly counted: () => void;
  readonly worker: number | null;
  readonly probeIntervalMs?: number;
  readonly now?: () => number;
  /**
   * Follow this limiter's fallback state instead of keeping one: the limiters of one limit (its own
   * and each consumer's) share one Redis, so one outage is one switch, one log line, one event and
   * one probe, not one per consumer.
   */
  readonly sharesStateWith?: RedisFallbackLimiter;
}

/**
 * A Redis limiter that keeps answering when Redis does not: the first failed call (error or
 * timeout) switches to the fallback (`local` bucket, `allow` all, or `deny` all), logs it once and
 * reports `rate-limit-fallback`; from then on requests do not wait for Redis at all. A probe asks
 * Redis every `probeIntervalMs`; when it succeeds, the limiter logs, reports `rate-limit-recovered`
 * and uses Redis again. No request waits longer than one Redis command timeout, except right after
 * start-up: then it may wait one more for the first connection (`untilFirstReady`).
 */
/** By middleware name: the limiters of this process that fall back now (each fallback state's owner). */
const fallingBackByName = new Map<string, Set<RedisFallbackLimiter>>();

export class RedisFallbackLimiter implements Limiter {
  private downSince: number | undefined;
  /** Retired and falling back when a limit of its name in use reported Redis' return: its own return is not reported. */
  private covered = false;
  private probing: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** The limiter whose fallback state this one follows: itself, or `sharesStateWith`. */
  private readonly state: RedisFallbackLimiter;
  /** By key, the requests the local bucket let through while falling back, not yet charged to Redis. */
  private readonly handedOut = new Map<string, number>();
  /** Of the fallback state's owner: the limiters following it (itself included) with requests to charge on Redis' return. */
  private readonly toCharge = new Set<RedisFallbackLimiter>();

  constructor(
    private readonly redis: Limiter,
    private readonly options: RedisFallbackOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.state = options.sharesStateWith ?? this;
  }

  /** True while Redis is considered away. */
  get fallingBack(): boolean {
    return this.state.downSince !== undefined;
  }

  async take(key: string): Promise<LimitDecision> {
    if (this.state.downSince === undefined) {
      if (this.handedOut.size > 0) this.chargeHandedOut();
      try {
        const decision = await this.redis.take(key);
        // An answer that comes after another request switched to the fallback is older than what the local bucket did since.
        if (this.options.mode === 'local' && this.state.downSince === undefined) this.seedLocal(key, decision);
        return decision;
      } catch (error) {
        this.state.fallBack(error);
      }
    }
    return this.decideWithout(key);
  }

  /** Leaves `key`'s local bucket and quota where Redis reported them: a refusal by the quota says nothing of the bucket. */
  private seedLocal(key: string, decision: LimitDecision): void {
    const { local } = this.options;
    if (decision.refusedBy !== 'quota') local.seed?.(key, decision.remaining / decision.limit);
    if (decision.quota) local.seedQuota?.(key, decision.quota);
  }

  private decideWithout(key: string): LimitDecision | Promise<LimitDecision> {
    this.options.counted();
    const { mode, burst } = this.options;
    if (mode === 'local') {
      const decision = this.options.local.take(key);
      return decision instanceof Promise ? decision.then((settled) => this.handOut(key, settled)) : this.handOut(key, decision);
    }
    if (mode === 'allow') return { allowed: true, refusedBy: undefined, uncounted: true, limit: burst, remaining: burst, resetMs: 0, retryAfterMs: 0, delayMs: 0 };
    const retryAfterMs = this.options.probeIntervalMs ?? REDIS_PROBE_INTERVAL_MS;
    return { allowed: false, refusedBy: 'unavailable', uncounted: true, limit: burst, remaining: 0, resetMs: retryAfterMs, retryAfterMs, delayMs: 0 };
  }

  /** Counts a request the local bucket let through, to charge Redis for it once it is back (at most `MAX_CHARGED_KEYS` keys). */
  private handOut(key: string, decision: LimitDecision): LimitDecision {
    if (!decision.allowed || !this.options.charge) return decision;
    const count = this.handedOut.get(key);
    if (count !== undefined) this.handedOut.set(key, count + 1);
    else if (this.handedOut.size < MAX_CHARGED_KEYS) this.handedOut.set(key, 1);
    this.state.toCharge.add(this);
    return decision;
  }

  /**
   * Sends Redis, without waiting, one charge per key for what the local bucket let through (its
   * bucket goes no lower than empty: at most a burst is taken); a charge that fails is dropped.
   * Sent as Redis is back (`recover`), for every limiter following the state: charged later, at a
   * key's next request, it would take tokens the shared bucket has refilled since, and count the
   * requests in a quota window that may have turned.
   */
  private chargeHandedOut(): void {
    const { charge } = this.options;
    for (const [key, count] of this.handedOut) void charge?.(key, count).catch(() => undefined);
    this.handedOut.clear();
  }

  private fallBack(error: unknown): void {
    // Requests in flight when Redis stopped all fail together: only the first one switches.
    if (this.downSince !== undefined) return;
    this.downSince = this.now();
    this.covered = false;
    const { name, mode, worker } = this.options;
    const reason = this.options.reason?.(error) ?? errorMessage(error);
    let fallingBack = fallingBackByName.get(name);
    if (!fallingBack) fallingBackByName.set(name, (fallingBack = new Set()));
    fallingBack.add(this);
    this.options.log.warn({ middleware: name, onRedisError: mode, err: reason }, 'rate limit: redis failed (unreachable, too slow or refusing the script); deciding without it until it serves the limit again');
    this.options.report({ type: 'rate-limit-fallback', data: { middleware: name, onRedisError: mode, reason, worker } });
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    this.probing = setTimeout(() => {
      this.probing = undefined;
      this.options.probe().then(
        () => this.recover(),
        () => {
          // A limiter dropped by a reload that moved Redis would probe its closed connection forever:
          // the move ends its outage, reported as a return unless the limit of its name in use falls back too.
          if (!this.options.closed?.()) this.scheduleProbe();
          else this.recover('moved');
        },
      );
    }, this.options.probeIntervalMs ?? REDIS_PROBE_INTERVAL_MS);
    // A limiter dropped by a reload while Redis is away must not keep the process alive.
    this.probing.unref();
  }

  /** Redis `answered` the probe (charged what the local bucket let through), or a reload `moved` the limit to another one and closed this one's connection. */
  private recover(how: 'answered' | 'moved' = 'answered'): void {
    if (this.downSince === undefined) return;
    const downMs = this.now() - this.downSince;
    this.downSince = undefined;
    this.leaveFallingBack();
    if (how === 'answered') for (const limiter of this.toCharge) limiter.chargeHandedOut();
    this.toCharge.clear();
    const { name, worker } = this.options;
    const others = [...(fallingBackByName.get(name) ?? [])];
    if (this.options.retired?.()) {
      // The limit in use that falls back too reports this outage's end, or already did.
      if (this.covered || others.some((other) => !other.options.retired?.())) return;
    } else {
      for (const other of others) if (other.options.retired?.()) other.covered = true;
    }
    this.options.log.info({ middleware: name, downMs }, how === 'answered' ? 'rate limit: redis answers again; shared counting resumed' : 'rate limit: a reload replaced the limit\'s redis connection and closed this one; the limit in use counts on its own connection from now on');
    this.options.report({ type: 'rate-limit-recovered', data: { middleware: name, downMs, worker } });
  }

  private leaveFallingBack(): void {
    const fallingBack = fallingBackByName.get(this.options.name);
    fallingBack?.delete(this);
    if (fallingBack?.size === 0) fallingBackByName.delete(this.options.name);
  }
}
