import { CoalescedTask } from './coalesced-task.ts';

/**
 * Default bound on the quiet time while events keep coming, as lodash's debounce `maxWait`: a file
 * rewritten more often than its quiet time (a generator in a loop) is still read this long after its
 * first change, and again every this long while it keeps changing. Ten times the configuration's
 * quiet time (200 ms), forty times the file provider's (50 ms): a burst of an editor, `cp` or a
 * Kubernetes swap lasts milliseconds and is still read once, after it, while a writer that never
 * stops costs one read every 2 s.
 */
export const FOLDER_WATCH_MAX_WAIT_MS = 2_000;

/**
 * The configuration watch's quiet time after the last change event before the file is read (editors
 * write in bursts), which the watch of a set of files' folders shares (`FilesFolderWatch`: certificate
 * folders, the files a refused text names). Here, not in the configuration watch, since that one is in `gateway/`.
 */
export const CONFIG_DEBOUNCE_MS = 200;

/**
 * Runs a task (reading a watched file again) once per burst of folder events, and never two runs
 * at once (`CoalescedTask`): a burst that ends while the task runs leads to exactly one more run
 * after it, so the last change is always read, an older read never overtakes a newer one, and a
 * long read does not pile up a queue of reads behind it. A burst that never leaves a quiet time is
 * read all the same once its first event not read yet is `maxWaitMs` old. The users are
 * `watchConfig`, the file provider and `FilesFolderWatch`.
 */
export class FolderWatchDebounce {
  private timer: NodeJS.Timeout | undefined;
  private readonly runs: CoalescedTask;
  /** When (performance.now()) the first `schedule()` came that no run started since answers. */
  private unreadSince: number | undefined;
  #closed = false;

  /**
   * `task` is what a burst leads to; it gets the time (performance.now()) of the first `schedule()`
   * it answers, undefined when none came since the last run began (a `run()`, or a retry). `delayMs`
   * is the quiet time after the last `schedule()` before it runs, and `maxWaitMs` the longest a
   * `schedule()` waits while later ones keep restarting that quiet time. A task that fails is
   * reported to `failed` and run again with backoff until it succeeds.
   */
  constructor(
    task: (changedSince: number | undefined) => Promise<void>,
    private readonly delayMs: number,
    failed: (error: unknown) => void,
    private readonly maxWaitMs = FOLDER_WATCH_MAX_WAIT_MS,
  ) {
    this.runs = new CoalescedTask(
      () => {
        // This run reads what every event so far changed: later events start a burst of their own.
        const changedSince = this.unreadSince;
        this.unreadSince = undefined;
        return task(changedSince);
      },
      { onError: (error) => failed(error) },
    );
  }

  /**
   * Runs the task `delayMs` (by default the constructor's) after the last call, each call restarting
   * the wait, but no later than `maxWaitMs` after the first call not read yet (one before the run in
   * progress began has been read).
   */
  schedule(delayMs = this.delayMs): void {
    if (this.#closed) return;
    const now = performance.now();
    this.unreadSince ??= now;
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.runs.request();
      },
      Math.max(0, Math.min(delayMs, this.maxWaitMs - (now - this.unreadSince))),
    );
  }

  /**
   * Says that the run in progress did not read the change coming since `changedSince` (the time its
   * task got) whole: it found a write between its truncation and its text, which that write's own
   * event is to bring back. The next `schedule()` is then due by `maxWaitMs` after `changedSince`,
   * not after itself, so a file that keeps changing is read by then however many such runs it meets.
   */
  notReadYet(changedSince: number | undefined): void {
    if (changedSince !== undefined) this.unreadSince = Math.min(this.unreadSince ?? changedSince, changedSince);
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
