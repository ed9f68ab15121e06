import type { ActiveHealth } from './health-view.ts';
import { probeFailureDetail, probeTimeoutReason, type HealthProbe, type ProbeResult, type ProbeTarget } from './probe.ts';
import { isGatewayResourceCode } from './upstream-outcome.ts';

/** The resolved timing and thresholds one loop runs with. */
export interface CheckLoopSettings {
  readonly probe: HealthProbe;
  readonly intervalMs: number;
  readonly unhealthyIntervalMs: number;
  readonly jitterMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  readonly random: () => number;
}

/** Told of every probe result with the health before it; `loop.health` is the health after it. */
export type CheckLoopListener = (loop: ActiveCheckLoop, result: ProbeResult, previous: ActiveHealth) => void;

/**
 * Checks one target forever, one probe at a time, until stopped. Health follows rise/fall
 * thresholds (HAProxy's `rise`/`fall`, Envoy's healthy/unhealthy thresholds): `unhealthyThreshold`
 * consecutive failures mark it unhealthy, `healthyThreshold` consecutive passes bring it back. An
 * `unknown` target counts as healthy, so one pass confirms it and failures need the full threshold.
 * A check the gateway could not send (out of file descriptors: `isGatewayResourceCode`) counts neither way.
 */
export class ActiveCheckLoop {
  private currentHealth: ActiveHealth = 'unknown';
  private passes = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private controller: AbortController | undefined;
  private stopped = false;

  constructor(
    /** Replaced in place when the registry changes an instance's protocol under the same address. */
    public target: ProbeTarget,
    private readonly settings: CheckLoopSettings,
    private readonly listener: CheckLoopListener,
    /** The health to start from: a verdict carried over from the checker this one replaces. */
    initial: ActiveHealth = 'unknown',
    /**
     * True when `initial` answers another check than this one (a reload changed what the check
     * asks): an `unhealthy` start then holds only until this check's first answer, which decides.
     */
    private provisional = false,
  ) {
    this.currentHealth = initial;
  }

  /** True until the first answer of a loop that started from a verdict of another check. */
  get awaitingFirstAnswer(): boolean {
    return this.provisional;
  }

  /** The health this loop has established so far. */
  get health(): ActiveHealth {
    return this.currentHealth;
  }

  /** Runs the first probe after a random share of the jitter, so targets added together spread out. */
  start(): void {
    this.schedule(this.settings.random() * this.settings.jitterMs);
  }

  /** Cancels the pending probe or the running one; its result, if any, is discarded. Idempotent. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    this.controller?.abort(new Error('health check stopped'));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(), delayMs);
    // Health checks alone must not keep a process alive that is otherwise shutting down.
    this.timer.unref();
  }

  private async run(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    this.deadline = setTimeout(() => controller.abort(probeTimeoutReason(this.settings.timeoutMs)), this.settings.timeoutMs);
    this.deadline.unref();
    const result = await this.probeOnce(controller.signal);
    clearTimeout(this.deadline);
    this.controller = undefined;
    if (this.stopped) return;
    const previous = this.currentHealth;
    // A probe the gateway could not even send (out of file descriptors) learnt nothing of the target.
    if (result.healthy || !isGatewayResourceCode(result.detail)) this.apply(result);
    this.listener(this, result, previous);
    const baseMs = this.currentHealth === 'unhealthy' ? this.settings.unhealthyIntervalMs : this.settings.intervalMs;
    this.schedule(baseMs + this.settings.random() * this.settings.jitterMs);
  }

  /** Settles on abort even when a probe ignores its signal, and turns throws into failures. */
  private probeOnce(signal: AbortSignal): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const fail = (error: unknown) => resolve({ healthy: false, detail: probeFailureDetail(error, signal) });
      const onAbort = () => fail(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const settle = (result: ProbeResult) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      };
      try {
        this.settings.probe(this.target, signal).then(settle, fail);
      } catch (error) {
        fail(error);
      }
    });
  }

  private apply(result: ProbeResult): void {
    const before = this.currentHealth;
    if (result.healthy) {
      this.passes += 1;
      this.failures = 0;
      if (before === 'unknown' || (before === 'unhealthy' && (this.provisional || this.passes >= this.settings.healthyThreshold))) this.currentHealth = 'healthy';
    } else {
      this.failures += 1;
      this.passes = 0;
      if (before !== 'unhealthy' && this.failures >= this.settings.unhealthyThreshold) this.currentHealth = 'unhealthy';
    }
    this.provisional = false;
  }
}
