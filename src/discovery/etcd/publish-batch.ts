/**
 * Collects the services touched by watch events and hands them to `flush` together, at most once
 * per `windowMs` (the first touch opens the window, later touches join it). A burst of responses
 * thus costs one snapshot per service per window, and the snapshot carries the latest state.
 */
export class PublishBatch {
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly windowMs: number,
    private readonly flush: (services: ReadonlySet<string>) => void,
  ) {}

  /** Adds services to the open window, opening one if none is; a window of 0 flushes at once. */
  add(services: Iterable<string>): void {
    for (const service of services) this.pending.add(service);
    if (this.pending.size === 0 || this.timer) return;
    if (this.windowMs <= 0) {
      this.flushNow();
      return;
    }
    this.timer = setTimeout(() => this.flushNow(), this.windowMs);
  }

  /** Flushes the pending services now, if any, and closes the window. */
  flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const services = this.pending;
    this.pending = new Set();
    this.flush(services);
  }

  /** Drops pending services without flushing them and closes the window. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }
}
