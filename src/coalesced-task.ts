import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.ts';

/** Options of `CoalescedTask`. */
export interface CoalescedTaskOptions {
  /** Called with each failure before the retry; must not throw. */
  readonly onError: (error: unknown, attempt: number) => void;
  readonly backoff?: BackoffOptions;
}

/**
 * Runs an async task at most once at a time. A request made while a run is in flight causes
 * exactly one more run after it, however many requests arrive (latest wins); a failed run is
 * retried with capped backoff until one succeeds or the task is disposed.
 */
export class CoalescedTask {
  private running: Promise<void> | undefined;
  private again = false;
  private disposed = false;
  private wake: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly options: CoalescedTaskOptions,
  ) {}

  /**
   * Requests a run. Resolves once a run that started after this call has succeeded, or once the
   * task is disposed; never rejects.
   */
  request(): Promise<void> {
    if (this.disposed) return Promise.resolve();
    this.again = true;
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** True while a run is in flight or waiting to retry. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Resolves once no run is in flight or waiting to retry (at once when idle); never rejects. */
  settled(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Stops after the current run (its result is the caller's to ignore) and cancels retries. */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (this.again && !this.disposed) {
      this.again = false;
      try {
        await this.task();
        attempt = 0;
      } catch (error) {
        if (this.disposed) return;
        this.options.onError(error, attempt);
        this.again = true;
        await this.sleep(backoffDelay(attempt, this.options.backoff ?? DEFAULT_BACKOFF));
        attempt += 1;
      }
    }
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.retryTimer = setTimeout(resolve, delayMs);
    });
  }
}
