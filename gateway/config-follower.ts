import type { Logger } from '../src/logger.ts';
import type { ConfigResult, GatewayConfig } from './config/index.ts';

/** What main drives: one process doing everything, or the primary of `workers` processes. */
export interface Running {
  apply(config: GatewayConfig, text: string): void;
  refuse(error: unknown): void;
  close(): Promise<void>;
}

/** How a `ConfigFollower` starts the gateway and ends the process when it cannot. */
export interface FollowerHooks {
  /** Starts the gateway; when `signal` aborts (a stop), it may give up the start and reject with `signal.reason`. */
  start(config: GatewayConfig, text: string, signal: AbortSignal): Promise<Running>;
  /**
   * Writes `message` to stderr and exits with `code` (2: the first configuration is refused, 1: it
   * cannot start). It may return before the process ends (log lines still buffered go out first):
   * the follower takes no result after it.
   */
  exit(message: string, code: number): void;
  readonly log: Logger;
}

/**
 * Takes the configuration results main watches (the file, merged with the store when there is
 * one): the first good one starts the gateway, each later one is applied or refused. Results that
 * arrive while the gateway is starting (the store answering after its timeout, while ports bind and
 * workers fork; an edit) are kept and applied in order once it runs, never dropped.
 */
export class ConfigFollower {
  private running: Running | undefined;
  private starting: Promise<void> | undefined;
  private readonly arrivedWhileStarting: ConfigResult[] = [];
  private exiting = false;
  /** Aborted by `close()`: a start under way stops instead of being waited for. */
  private readonly stop = new AbortController();

  constructor(private readonly hooks: FollowerHooks) {}

  readonly take = (result: ConfigResult): void => {
    // The process is ending: a good configuration arriving meanwhile must not start a gateway.
    if (this.exiting) return;
    if (!result.ok) {
      if (!this.running && !this.starting) return this.exit(`switchboard: ${result.error.message}\n`, 2);
      this.hooks.log.error({ reason: result.error.message }, 'configuration refused; the running configuration stays');
      if (this.running) this.running.refuse(result.error);
      else this.arrivedWhileStarting.push(result);
      return;
    }
    if (this.running) return this.running.apply(result.config, result.text);
    if (this.starting) return void this.arrivedWhileStarting.push(result);
    this.starting = this.hooks.start(result.config, result.text, this.stop.signal).then(
      (started) => {
        this.running = started;
        for (const arrived of this.arrivedWhileStarting.splice(0)) {
          if (arrived.ok) started.apply(arrived.config, arrived.text);
          else started.refuse(arrived.error);
        }
      },
      (error: Error) => {
        // The start gave up because close() asked it to: its caller ends the process, as after any stop.
        if (this.stop.signal.aborted && error === this.stop.signal.reason) return this.hooks.log.info('stopped before the gateway finished starting');
        this.exit(`switchboard: cannot start: ${error.message}\n`, 1);
      },
    );
  };

  private exit(message: string, code: number): void {
    this.exiting = true;
    this.hooks.exit(message, code);
  }

  /** Asks a start under way to stop and waits for it, then closes what runs. */
  async close(): Promise<void> {
    this.stop.abort(new Error('the gateway was asked to stop while starting'));
    await this.starting;
    await this.running?.close();
  }
}
