import type { Logger } from './logger.ts';

/** When a lasting outage is warned of again after its first warning: 30 s, then twice as long each time, up to 10 min. */
export const OUTAGE_REMINDER = { firstMs: 30_000, maxMs: 600_000 } as const;

/** The lines of an `OutageLog`. */
export interface OutageLines {
  /** Warned at an outage's first failure (with the failure's fields), and again as a reminder while it lasts. */
  readonly failed: string;
  /** Logged at info when the first success after failures ends the outage; none when another line already says so (a status change). */
  readonly recovered?: string;
}

/**
 * Logs an outage of a connection that is retried with backoff as one problem, not one warning a
 * retry: a warning at its first failure, each further failure at debug, a reminder warning at a
 * doubling interval (`OUTAGE_REMINDER`) while it lasts, and one line at info once it ends. A
 * failure of another kind (`problem`: the server refusing the client's password after it was
 * out of reach) is a new problem, warned at once with the reminders starting over. All
 * carry the same message; those after the first say how long the outage has lasted and how many
 * attempts failed. One etcd outage otherwise had the registry, the config store and the peer watch
 * warn every 2-5 s each for as long as it lasted, and each ZooKeeper session at every connect deadline.
 */
export class OutageLog {
  private since: number | undefined;
  private failures = 0;
  private reminderMs = 0;
  private nextWarningAt = 0;
  /** The kinds of failure warned of in the outage under way. */
  private readonly problems = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly lines: OutageLines,
    private readonly reminder: { readonly firstMs: number; readonly maxMs: number } = OUTAGE_REMINDER,
  ) {}

  /** Whether an outage is under way: a failure has come since the last success. */
  get failing(): boolean {
    return this.since !== undefined;
  }

  /**
   * A failed attempt, with the fields that say where and why. `problem` names its kind, which the
   * fields' text cannot (an error message names the endpoint of each attempt): a kind not warned of
   * yet in this outage is warned at once.
   */
  failed(fields: Readonly<Record<string, unknown>>, { problem = '', now = Date.now() }: { readonly problem?: string; readonly now?: number } = {}): void {
    this.failures += 1;
    const first = this.since === undefined;
    this.since ??= now;
    const outage = first ? fields : { ...fields, failingForMs: now - this.since, failures: this.failures };
    const known = this.problems.has(problem);
    if (known && now < this.nextWarningAt) return this.log.debug(outage, this.lines.failed);
    // A new problem (the first of the outage among them) starts the reminders over.
    this.problems.add(problem);
    this.reminderMs = known ? Math.min(this.reminderMs * 2, this.reminder.maxMs) : this.reminder.firstMs;
    this.nextWarningAt = now + this.reminderMs;
    this.log.warn(outage, this.lines.failed);
  }

  /** A success: ends the outage under way, if any, with its line. */
  recovered(fields: Readonly<Record<string, unknown>> = {}, now = Date.now()): void {
    if (this.since === undefined) return;
    if (this.lines.recovered !== undefined) this.log.info({ ...fields, outageMs: now - this.since, failures: this.failures }, this.lines.recovered);
    this.since = undefined;
    this.failures = 0;
    this.problems.clear();
  }
}
