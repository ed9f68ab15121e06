/** How a removal ended: done (nothing set), failed (`error`), or cancelled by a later `register()` (`superseded`). */
export interface RemovalOutcome {
  readonly error?: unknown;
  readonly superseded?: boolean;
}

/** One removal of a registration's entry that `deregister()` calls wait for while the loop tries it, retrying after failures. */
export class PendingRemoval {
  /** Settles once with how the removal ended. */
  readonly removed: Promise<RemovalOutcome>;
  /** The last attempt's error, while the removal is retried. */
  lastError?: unknown;
  /** True once the registry confirmed the removal. */
  confirmed = false;
  /** Ends the removal with `outcome`; later calls change nothing. */
  readonly settle: (outcome: RemovalOutcome) => void;

  constructor() {
    let settle!: (outcome: RemovalOutcome) => void;
    this.removed = new Promise<RemovalOutcome>((resolve) => (settle = resolve));
    this.settle = settle;
  }

  /** How the removal ended, or after `timeoutMs` the last attempt's error (or none heard); never rejects. */
  async within(timeoutMs: number): Promise<RemovalOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<RemovalOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ error: this.lastError ?? new Error(`no answer from the registry within ${timeoutMs} ms`) }), timeoutMs);
    });
    return Promise.race([this.removed, gaveUp]).finally(() => clearTimeout(timer));
  }
}
