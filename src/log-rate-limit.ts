/**
 * At most one log line per key per period, as for a failing upstream or collector that would
 * otherwise log on every request, in bounded memory: at most `maxKeys` keys are remembered, and
 * each call costs O(1) amortised. Keys are kept in the order they were last allowed, so those whose period
 * has passed are at the front and are let go as calls come; when more keys than `maxKeys` are
 * within their period, the oldest is forgotten early (it may log again before its period ends).
 */
export class LogRateLimit {
  /** Key → when it was last allowed; Map order is the order of those times. */
  private readonly lastAllowed = new Map<string, number>();

  constructor(
    readonly periodMs: number,
    private readonly maxKeys = 1_024,
  ) {}

  /** True (and remembered as allowed at `now`) when `key` was not allowed within the period before `now`. */
  allow(key: string, now = Date.now()): boolean {
    const last = this.lastAllowed.get(key);
    if (last !== undefined && now - last < this.periodMs && now >= last) return false;
    this.lastAllowed.delete(key);
    this.lastAllowed.set(key, now);
    this.forgetExpired(now);
    return true;
  }

  /** The keys remembered now, for tests. */
  get size(): number {
    return this.lastAllowed.size;
  }

  /** Drops keys from the front while they are past their period, or beyond `maxKeys`: each key is dropped once, so O(1) amortised per call. */
  private forgetExpired(now: number): void {
    for (const [key, at] of this.lastAllowed) {
      if (this.lastAllowed.size <= this.maxKeys && now - at < this.periodMs) return;
      this.lastAllowed.delete(key);
    }
  }
}
