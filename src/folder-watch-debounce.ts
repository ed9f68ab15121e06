import { CoalescedTask } from './coalesced-task.ts';

/**
 * Runs a task (reading a watched file again) once per burst of folder events, and never two runs
 * at once (`CoalescedTask`): a burst that ends while the task runs leads to exactly one more run
 * after it, so the last change is always read, an older read never overtakes a newer one, and a
 * long read does not pile up a queue of reads behind it. The users are `watchConfig`, the file
 * provider and the certificate folder watch.
 */
export class FolderWatchDebounce {
  private timer: NodeJS.Timeout | undefined;
  private readonly runs: CoalescedTask;
  #closed = false;

  /**
   * `task` is what a burst leads to; `delayMs` the quiet time after the last `schedule()` before it
   * runs. A task that fails is reported to `failed` and run again with backoff until it succeeds.
   */
  constructor(task: () => Promise<void>, private readonly delayMs: number, failed: (error: unknown) => void) {
    this.runs = new CoalescedTask(task, { onError: (error) => failed(error) });
  }

  /** Runs the task `delayMs` (by default the constructor's) after the last call; each call restarts the wait. */
  schedule(delayMs = this.delayMs): void {
    if (this.#closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runs.request();
    }, delayMs);
  }

  /** Runs the task now, or once after the run in progress; resolves once a run started after this call is done (never rejects). */
  run(): Promise<void> {
    return this.runs.request();
  }

  /** True from the moment `close()` is called: the owner's own state is to follow this, not a flag of its own. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Drops a pending run (scheduled or queued) and further schedules; resolves once the run in progress is done. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.timer);
    this.runs.dispose();
    return this.runs.settled();
  }
}
