/** Cost of a member that has requests in flight but no latency history: Finagle's `Long.MaxValue >> 16`. */
export const PEAK_EWMA_PENALTY = 2 ** 47;

/**
 * Finagle's peak-sensitive EWMA of round-trip time (com.twitter.finagle.loadbalancer.PeakEwma): a
 * sample above the estimate replaces it at once; below, it is blended in with weight
 * `1 - exp(-elapsed / decay)`, which accounts for unevenly spaced samples. Reading the cost first
 * decays the estimate towards 0, so an idle member slowly becomes attractive again and gets probed.
 */
export class PeakEwma {
  private estimateMs = 0;
  private stampMs: number;

  constructor(
    private readonly decayMs: number,
    nowMs: number,
  ) {
    this.stampMs = nowMs;
  }

  /** The current estimate in milliseconds, without decaying it. */
  get latencyMs(): number {
    return this.estimateMs;
  }

  /** Folds in one round-trip time observed at `nowMs`. */
  observe(rttMs: number, nowMs: number): void {
    const elapsed = Math.max(nowMs - this.stampMs, 0);
    const weight = Math.exp(-elapsed / this.decayMs);
    this.estimateMs = rttMs > this.estimateMs ? rttMs : this.estimateMs * weight + rttMs * (1 - weight);
    this.stampMs = nowMs;
  }

  /**
   * The load of sending one more request: estimate × (pending + 1). A member without history is free
   * while idle (so new members get probed) and costs the penalty once one request is out.
   */
  cost(pending: number, nowMs: number): number {
    this.observe(0, nowMs);
    if (this.estimateMs === 0 && pending !== 0) return PEAK_EWMA_PENALTY + pending;
    return this.estimateMs * (pending + 1);
  }
}
