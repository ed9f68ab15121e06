import { backoffDelay, type BackoffOptions } from '../backoff.ts';
import type { Logger } from '../logger.ts';

/**
 * Waits between repairs of one entry while something keeps writing it unreadable again (a second
 * agent or a tool writing the same entry, a misconfiguration): the first repair is at once, the
 * next ones back off from 1 s to 30 s, so that two writers never loop hot.
 */
export const ENTRY_REPAIR_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.5 };
/** A finding this long after the one before starts a new streak: repaired at once, warned as a first time. */
export const ENTRY_REPAIR_STREAK_MS = 60_000;
/** From this many repairs in one streak the warning calls it a fight over the entry. */
const FIGHT_REPAIRS = 3;
/** The most characters of the value found that a warning quotes. */
const QUOTED_CHARS = 200;

/**
 * Writes a registration's own entry back when another client left in it a value gateways cannot
 * read (not JSON, a bad port, another service: gateways skip the instance). A value they can read
 * stays, whatever it says: a weight or a drain mark set by hand is a documented way to steer an
 * instance. Repairs are rate-limited (`ENTRY_REPAIR_BACKOFF`) and each is logged with what was found.
 */
export class EntryRepair {
  private streak = 0;
  private lastFoundAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param repair writes the wanted entry back (a registration pass); called at most once per
   *   finding, never synchronously, and not after `cancel()`.
   */
  constructor(
    private readonly log: Logger,
    private readonly repair: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes the value the registry holds at `key` as another client left it, and `problem`, why
   * gateways cannot read it (undefined when they can: nothing to do). A finding while a repair
   * waits is that repair's.
   */
  found(key: string, value: string, problem: string | undefined): void {
    if (problem === undefined || this.timer) return;
    const now = this.now();
    if (now - this.lastFoundAt >= ENTRY_REPAIR_STREAK_MS) this.streak = 0;
    this.lastFoundAt = now;
    const delayMs = this.streak === 0 ? 0 : backoffDelay(this.streak - 1, ENTRY_REPAIR_BACKOFF);
    this.streak += 1;
    const found = value.length > QUOTED_CHARS ? `${value.slice(0, QUOTED_CHARS)}…` : value;
    const fields = { key, problem, found, repairs: this.streak, delayMs };
    if (this.streak >= FIGHT_REPAIRS) {
      this.log.warn(fields, `registry entry made unreadable again, ${this.streak} times in a row: another agent or tool writes the same entry (a misconfiguration: the same id twice?); writing ours back at most every ${ENTRY_REPAIR_BACKOFF.maxMs / 1_000} s`);
    } else {
      this.log.warn(fields, 'registry entry holds a value gateways cannot read (another client wrote it); writing ours back');
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.repair();
    }, delayMs);
  }

  /** Drops a repair that waits (a deregistration, close). */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
