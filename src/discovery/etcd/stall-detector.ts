/** Options of `StallDetector`. */
export interface StallDetectorOptions {
  /** Silence longer than this counts as a stall. */
  readonly stallTimeoutMs: number;
  /**
   * A cheap read through the same client that resolves whether the watch has delivered what it read;
   * only `true` counts as a sign of life. Must carry its own deadline.
   */
  readonly probe: () => Promise<boolean>;
  /** Called once, with how long the registry had been silent; the detector is stopped by then. */
  readonly onStall: (silentMs: number) => void;
  readonly now?: () => number;
}

/**
 * Notices a watch stream that went silent, as one does behind a partition that drops packets
 * without closing the socket, or behind a proxy that keeps the stream open but stopped relaying it.
 * A quiet prefix is silent too, so the detector probes the registry every quarter of the timeout
 * and counts a probe answer that finds the watch caught up, like any watch response reported with
 * `alive()`, as a sign of life; a stall is reported when none arrived for `stallTimeoutMs`.
 * Detection takes between `stallTimeoutMs` and `1.25 × stallTimeoutMs` after the last sign of life.
 * No probe is sent at a tick when the watch delivered within the last tick: the watch just showed
 * it is alive, which no probe answer can add to, and a busy prefix would otherwise cost one read
 * per tick for nothing. Silence of one tick brings the probes back.
 */
export class StallDetector {
  private lastAliveAt = 0;
  /** When `alive()` was last called: the watch's own signs of life, which make a probe needless. */
  private lastDeliveredAt = 0;
  private tickMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly now: () => number;

  constructor(private readonly options: StallDetectorOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Starts the clock now; idempotent. */
  start(): void {
    if (this.timer) return;
    this.lastAliveAt = this.now();
    this.tickMs = Math.max(10, Math.floor(this.options.stallTimeoutMs / 4));
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  /** Records a sign of life (a watch response, a created watch). */
  alive(): void {
    this.lastAliveAt = this.lastDeliveredAt = this.now();
  }

  /** Stops probing; a probe in flight is ignored when it settles. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = this.now();
    const silentMs = now - this.lastAliveAt;
    if (silentMs > this.options.stallTimeoutMs) {
      this.stop();
      this.options.onStall(silentMs);
      return;
    }
    if (this.probing || now - this.lastDeliveredAt < this.tickMs) return;
    this.probing = true;
    let probe: Promise<boolean>;
    try {
      probe = this.options.probe();
    } catch (error) {
      probe = Promise.reject(error);
    }
    probe.then(
      (caughtUp) => {
        this.probing = false;
        // A registry that moved on without the watch is no sign of life, however promptly it answers.
        if (caughtUp && this.timer) this.lastAliveAt = this.now();
      },
      () => {
        // A failed probe is not a sign of life; the silence keeps growing until it counts as a stall.
        this.probing = false;
      },
    );
  }
}
