/**
 * One timer per key, each `unref`'d (it never keeps the process alive): started, restarted or
 * cancelled by its key, and all cleared at once. A timer forgets its key before it fires.
 */
export class KeyedTimers<K> {
  private readonly timers = new Map<K, NodeJS.Timeout>();

  /** Calls `fire` after `delayMs`, unless `key`'s timer already runs: that one is kept as it is. */
  startUnlessRunning(key: K, delayMs: number, fire: () => void): void {
    if (!this.timers.has(key)) this.start(key, delayMs, fire);
  }

  /** Calls `fire` after `delayMs`, in place of `key`'s running timer if any. */
  restart(key: K, delayMs: number, fire: () => void): void {
    this.cancel(key);
    this.start(key, delayMs, fire);
  }

  cancel(key: K): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
  }

  /** Cancels every timer. */
  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private start(key: K, delayMs: number, fire: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(key);
      fire();
    }, delayMs);
    timer.unref();
    this.timers.set(key, timer);
  }
}
