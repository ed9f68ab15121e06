import type { LimitDecision, Limiter, QuotaState } from './limiter.ts';

/**
 * The Redis fallback's local bucket sized for the number of gateways there are right now: the
 * live peer count of the config store when there is one, `redis.gateways` otherwise. A change of
 * the count builds a new bucket for the new size (at most one per count is kept, so a peer that
 * flaps does not reset the bucket every time); the previous size's tokens do not carry over.
 */
export class PeerScaledLimiter implements Limiter {
  private readonly bySize = new Map<number, Limiter>();

  /**
   * @param build the local bucket for `gateways` gateways (limit / gateways / workers)
   * @param gateways the number of gateways now, at least 1
   */
  constructor(
    private readonly build: (gateways: number) => Limiter,
    private readonly gateways: () => number,
  ) {}

  take(key: string): LimitDecision | Promise<LimitDecision> {
    return this.current().take(key);
  }

  /** Seeds the bucket of the current size (the one a fallback now would use). */
  seed(key: string, level: number): void {
    this.current().seed?.(key, level);
  }

  /** Seeds the quota of the current size's limiter. */
  seedQuota(key: string, reported: QuotaState): void {
    this.current().seedQuota?.(key, reported);
  }

  private current(): Limiter {
    const size = Math.max(1, this.gateways());
    let limiter = this.bySize.get(size);
    if (!limiter) {
      limiter = this.build(size);
      this.bySize.set(size, limiter);
    }
    return limiter;
  }
}
