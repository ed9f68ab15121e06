/**
 * The upstream timeouts of attempts (response headers, then the silence between body chunks), kept
 * without a timer object per attempt.
 *
 * undici's own `headersTimeout`/`bodyTimeout` of a second or more allocate a `FastTimer` per phase,
 * and a cleared one stays in undici's timer array until that array's next tick (up to ~0.5 s). At
 * 10k requests a second several thousand of them, live or cleared, were in that array at every
 * scavenge: most of what a scavenge copied (~440 KB of ~450) and of what it promoted to the old
 * generation, which then filled and was compacted every few seconds (bench/proxy/README.md, round
 * 9). Here an attempt with a deadline running is a node of one intrusive doubly linked list; one
 * unref'd interval walks that list every `SWEEP_MS` and expires what is due. Arming, extending and
 * stopping a deadline allocate nothing, and a finished attempt is unlinked at once, so nothing
 * holds it past its end. A deadline shorter than `OWN_TIMER_BELOW_MS` gets a timer of its own
 * instead, so a sweep's lateness (up to `SWEEP_MS`) is never a large part of it.
 */
export const SWEEP_MS = 250;
export const OWN_TIMER_BELOW_MS = 1_000;

/** Attempts whose deadline the sweep checks (the first; each links the next). */
let head: AttemptDeadline | null = null;
let sweeper: NodeJS.Timeout | undefined;
/** Reused by `sweep`: what expired, called after the walk so that a callback may change the list. */
const due: AttemptDeadline[] = [];

/** Extended by an attempt: `startDeadline`, `extendDeadline` and `stopDeadline`, and its `deadlinePassed`. */
export abstract class AttemptDeadline {
  /** When the running deadline passes (`performance.now()` ms); Infinity while none runs. */
  private deadlineAt = Infinity;
  /** The length of the running deadline, which `extendDeadline` starts again. */
  private deadlineMs = 0;
  private previousDeadline: AttemptDeadline | null = null;
  private nextDeadline: AttemptDeadline | null = null;
  private linked = false;
  private ownTimer: NodeJS.Timeout | undefined = undefined;

  /** The running deadline passed; called once, after the deadline is stopped. */
  protected abstract deadlinePassed(): void;

  /** Runs a deadline `ms` from now in place of any running one; 0 runs none. */
  protected startDeadline(ms: number): void {
    this.stopDeadline();
    if (ms <= 0) return;
    this.deadlineMs = ms;
    if (ms < OWN_TIMER_BELOW_MS) {
      this.ownTimer = setTimeout(expireOwn, ms, this);
      return;
    }
    this.deadlineAt = performance.now() + ms;
    AttemptDeadline.link(this);
  }

  /** Starts the running deadline over from now (more of the body arrived); nothing when none runs. */
  protected extendDeadline(): void {
    if (this.ownTimer !== undefined) this.ownTimer.refresh();
    else if (this.linked) this.deadlineAt = performance.now() + this.deadlineMs;
  }

  /** Stops the running deadline, if any. */
  protected stopDeadline(): void {
    if (this.ownTimer !== undefined) {
      clearTimeout(this.ownTimer);
      this.ownTimer = undefined;
    }
    if (this.linked) this.unlink();
  }

  private static link(node: AttemptDeadline): void {
    node.linked = true;
    node.nextDeadline = head;
    if (head !== null) head.previousDeadline = node;
    head = node;
    // An idle gateway keeps no timer: the sweep stops when it finds the list empty.
    if (sweeper === undefined) sweeper = setInterval(AttemptDeadline.sweep, SWEEP_MS).unref();
  }

  private unlink(): void {
    const { previousDeadline: previous, nextDeadline: next } = this;
    if (previous === null) head = next;
    else previous.nextDeadline = next;
    if (next !== null) next.previousDeadline = previous;
    this.previousDeadline = null;
    this.nextDeadline = null;
    this.linked = false;
    this.deadlineAt = Infinity;
  }

  /** @internal How many attempts the sweep is watching right now. */
  static watched(): number {
    let count = 0;
    for (let node = head; node !== null; node = node.nextDeadline) count += 1;
    return count;
  }

  /** @internal The own timer of a short deadline fired. */
  expireOwnTimer(): void {
    this.ownTimer = undefined;
    this.deadlinePassed();
  }

  /** Expires every linked attempt whose deadline has passed; stops itself once none is linked. */
  private static sweep(this: void): void {
    const now = performance.now();
    for (let node = head; node !== null; node = node.nextDeadline) if (node.deadlineAt <= now) due.push(node);
    for (const node of due) {
      // An earlier callback of this sweep may have stopped or started it again.
      if (!node.linked || node.deadlineAt > now) continue;
      node.unlink();
      node.deadlinePassed();
    }
    due.length = 0;
    if (head === null && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }
}

/**
 * A deadline for an attempt written as a closure rather than a class of its own (HTTP/2): the same
 * list and sweep, with `passed` called when it runs out.
 */
export class CallbackDeadline extends AttemptDeadline {
  constructor(private readonly passed: () => void) {
    super();
  }

  /** Runs a deadline `ms` from now in place of any running one; 0 runs none. */
  start(ms: number): void {
    this.startDeadline(ms);
  }

  /** Starts the running deadline over from now; nothing when none runs. */
  extend(): void {
    this.extendDeadline();
  }

  /** Stops the running deadline, if any. */
  stop(): void {
    this.stopDeadline();
  }

  protected deadlinePassed(): void {
    this.passed();
  }
}

/** @internal For tests: how many attempts the sweep is watching right now. */
export function sweptDeadlines(): number {
  return AttemptDeadline.watched();
}

function expireOwn(attempt: AttemptDeadline): void {
  attempt.expireOwnTimer();
}
