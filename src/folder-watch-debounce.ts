/**
 * Runs a task (reading a watched file again) once per burst of folder events, and never two runs
 * at once: a burst that ends while the task runs leads to exactly one more run after it, so the
 * last change is always read, an older read never overtakes a newer one, and a long read does not
 * pile up a queue of reads behind it. The users are `watchConfig`, the file provider and the
 * certificate folder watch.
 */
export class FolderWatchDebounce {
  private timer: NodeJS.Timeout | undefined;
  /** The run in progress, if any. */
  private running: Promise<void> | undefined;
  /** The one run queued behind `running`, if any. */
  private queued: Promise<void> | undefined;
  private closed = false;

  /**
   * `task` is what a burst leads to; `delayMs` the quiet time after the last `schedule()` before it
   * runs. A task that rejects is reported to `failed` and the next burst runs it again.
   */
  constructor(
    private readonly task: () => Promise<void>,
    private readonly delayMs: number,
    private readonly failed: (error: unknown) => void,
  ) {}

  /** Runs the task `delayMs` (by default the constructor's) after the last call; each call restarts the wait. */
  schedule(delayMs = this.delayMs): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delayMs);
  }

  /** Runs the task now, or once after the run in progress; resolves when that run is done (never rejects). */
  run(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    const queued = this.running.then(() => {
      this.queued = undefined;
      return this.start();
    });
    this.queued = queued;
    return queued;
  }

  /** Drops a pending run (scheduled or queued) and further schedules; resolves once the run in progress is done. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    return this.queued ?? this.running ?? Promise.resolve();
  }

  private start(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // A task that throws before its first await is reported like one that rejects.
    const running = new Promise<void>((resolve) => resolve(this.task()))
      .catch((error: unknown) => this.failed(error))
      .finally(() => {
        this.running = undefined;
      });
    this.running = running;
    return running;
  }
}
