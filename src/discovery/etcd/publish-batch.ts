/**
 * Collects the services touched by watch events and hands them to `flush` with throttle
 * semantics: after a quiet period the first touch is flushed on the next turn of the event loop
 * (so a lone change costs no window), and that flush opens a window of `windowMs` in which later
 * touches collect; the window's end flushes them together and opens the next window. A burst
 * thus costs about one snapshot per service per window, and each carries the latest state.
 */
export class PublishBatch {
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(
    private readonly windowMs: number,
    private readonly flush: (services: ReadonlySet<string>) => void,
  ) {}

  /** Adds services; flushes soon after a quiet period, else when the open window closes. A window of 0 flushes at once. */
  add(services: Iterable<string>): void {
    for (const service of services) this.pending.add(service);
    if (this.pending.size === 0 || this.timer || this.immediate) return;
    if (this.windowMs <= 0) {
      this.flushNow();
      return;
    }
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.flushAndHold();
    });
  }

  /** Flushes the pending services now, if any, and closes the window. */
  flushNow(): void {
    this.clearTimers();
    this.emit();
  }

  /** Drops pending services without flushing them and closes the window. */
  cancel(): void {
    this.clearTimers();
    this.pending.clear();
  }

  private flushAndHold(): void {
    this.emit();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending.size > 0) this.flushAndHold();
    }, this.windowMs);
  }

  private emit(): void {
    if (this.pending.size === 0) return;
    const services = this.pending;
    this.pending = new Set();
    this.flush(services);
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}
