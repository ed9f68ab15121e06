// When the aggregator lets go of a service no source lists any more: after a grace, unless the
// configuration names it, so that a gateway fed an ever-changing set of names does not grow forever.
import { KeyedTimers } from '../keyed-timers.ts';

/**
 * How long a service no source lists any more, with no instance left, is kept before it is
 * forgotten: as long as the health verdicts of departed endpoints are remembered
 * (`DEPARTED_VERDICT_MEMORY_MS`, Envoy's longest ejection), so a redeploy or a registry flap within
 * it finds the service as it left it.
 */
export const DEFAULT_FORGET_AFTER_MS = 300_000;

/** Which services may be forgotten, and when (`DiscoveryAggregator.configureForgetting`). */
export interface ForgettingOptions {
  /** How long a service stays after no source lists it and it has no instances; false: never forgotten. */
  readonly afterMs: number | false;
  /** Services never forgotten (those the configuration names): they stay, empty, once their sources drop them. */
  readonly retained: ReadonlySet<string>;
}

/** One countdown per service that is empty (`isEmpty`) and not retained; `forget` runs when it ends and the service still is. */
export class ServiceForgetting {
  private readonly countdowns = new KeyedTimers<string>();
  private closed = false;

  constructor(
    private options: ForgettingOptions,
    /** True when no source lists `service` and no instance of it is left (held ones count). */
    private readonly isEmpty: (service: string) => boolean,
    private readonly forget: (service: string) => void,
  ) {}

  /** The grace a service is forgotten after. */
  get afterMs(): number | false {
    return this.options.afterMs;
  }

  /** Takes new options: a new `afterMs` starts the running countdowns over; a service retained now stops its countdown. */
  configure(options: ForgettingOptions, services: Iterable<string>): void {
    if (options.afterMs !== this.options.afterMs) this.countdowns.clear();
    this.options = options;
    for (const service of services) this.review(service);
  }

  /** Starts `service`'s countdown when it became forgettable, stops it when it no longer is. */
  review(service: string): void {
    const { afterMs } = this.options;
    if (afterMs === false || !this.forgettable(service)) {
      this.countdowns.cancel(service);
      return;
    }
    this.countdowns.startUnlessRunning(service, afterMs, () => {
      if (this.forgettable(service)) this.forget(service);
    });
  }

  close(): void {
    this.closed = true;
    this.countdowns.clear();
  }

  private forgettable(service: string): boolean {
    if (this.closed || this.options.afterMs === false || this.options.retained.has(service)) return false;
    return this.isEmpty(service);
  }
}
