import type { Balancer, BalancerOptions, OutcomeListener } from './balancer.ts';
import { createBalancer, type BalancerConfig } from './balancer-factory.ts';
import type { SlowStartOptions } from './slow-start.ts';

/**
 * A service's balancer that outlives the health view it is fed from: a rebuild of the service
 * (a reload that changed its checks, outlier detection, TLS or protocol) keeps it while its own
 * settings (algorithm and their options, slow start) stay the same, as named middleware keeps its
 * state across reloads. The requests in flight on each instance, latency estimates, smooth weights
 * and hash rings thus carry on, where a new balancer would see every instance idle while the
 * requests picked before the reload still run. Its outcomes go to the listener of the latest build.
 * A subset's balancer is kept the same way, while its service's balancer (`parent`) is kept too.
 */
export class BalancerKeeper {
  readonly balancer: Balancer;
  private listener: OutcomeListener;

  private constructor(
    private readonly settingsKey: string,
    config: BalancerConfig,
    slowStart: SlowStartOptions | undefined,
    onOutcome: OutcomeListener,
    private readonly parent: Balancer | undefined,
    stickySalt: string | undefined,
  ) {
    this.listener = onOutcome;
    // A subset's balancer shares its service's host loads and follows its slow start (see `BalancerOptions`).
    const options: BalancerOptions = {
      onOutcome: (address, outcome) => this.listener(address, outcome),
      ...(slowStart ? { slowStart } : {}),
      ...(parent ? { hostLoads: parent.hostLoads, ...(slowStart ? { slowStartParent: parent } : {}) } : {}),
      ...(stickySalt !== undefined ? { stickySalt } : {}),
    };
    this.balancer = createBalancer(config, options);
  }

  /**
   * `previous` itself, its outcomes now sent to `onOutcome`, when it was made with the same `config`,
   * `slowStart`, `stickySalt` and `parent` (a subset's: its service's balancer); otherwise a keeper of
   * a new balancer. A subset's balancer takes its service's sticky salt. The build `previous` served
   * must be closed.
   */
  static keep(previous: BalancerKeeper | undefined, config: BalancerConfig, slowStart: SlowStartOptions | undefined, onOutcome: OutcomeListener, parent?: Balancer, stickySalt?: string): BalancerKeeper {
    const salt = parent ? parent.stickySalt : stickySalt;
    const settingsKey = JSON.stringify({ config, slowStart: slowStart ?? false, sticky: salt ?? false });
    if (previous?.settingsKey !== settingsKey || previous.parent !== parent) return new BalancerKeeper(settingsKey, config, slowStart, onOutcome, parent, salt);
    previous.listener = onOutcome;
    return previous;
  }
}
