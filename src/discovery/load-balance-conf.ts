import { BehaviorSubject, filter, type Observable } from 'rxjs';
import type { Instance } from './instance.ts';

/** The routable instance set of one service after merging every provider. */
export interface ServiceConf {
  readonly service: string;
  /** Merged across providers, one entry per address, sorted by id. */
  readonly instances: readonly Instance[];
  /** The provider each instance came from, keyed by `instanceAddress`. */
  readonly sources: ReadonlyMap<string, string>;
  /** Counts the changes delivered for this service, starting at 1. */
  readonly version: number;
  /**
   * Instances the registry no longer lists but that stay in `instances` because their removal
   * came right after a registry outage and took most of the service (`RemovalProtection`), keyed by
   * address. Absent or empty when nothing is held.
   */
  readonly held?: ReadonlyMap<string, HeldInstance>;
  /**
   * A live question, not a value of this conf: true while a provider of this service is stale after
   * an outage or has just returned from one. Instances listed then may come from nodes whose owner
   * died during the outage, so health ejects one at its first connection failure.
   */
  readonly recovering?: () => boolean;
}

/** An instance kept routable after the registry dropped it, until `until` (epoch ms) or until it is listed again. */
export interface HeldInstance {
  readonly address: string;
  readonly instance: Instance;
  /** The provider that listed it last. */
  readonly provider: string;
  readonly since: number;
  readonly until: number;
}

/**
 * The observable configuration of one service: the subject balancers observe. Holds the latest
 * `ServiceConf` and replays it to each new observer, so a balancer attached late starts from the
 * current set. Only the aggregator that created it may push.
 */
export class LoadBalanceConf {
  /**
   * Replays the current conf (once one exists), then every change; never errors; completes when
   * the aggregator closes. Consecutive values always differ in their instances.
   */
  readonly conf$: Observable<ServiceConf>;

  private readonly state = new BehaviorSubject<ServiceConf | undefined>(undefined);

  constructor(readonly service: string) {
    this.conf$ = this.state.pipe(filter((conf): conf is ServiceConf => conf !== undefined));
  }

  /** The latest conf, or undefined while no provider has reported this service. */
  current(): ServiceConf | undefined {
    return this.state.getValue();
  }

  /** @internal Called by the aggregator only, with a conf that differs from the current one. */
  push(conf: ServiceConf): void {
    this.state.next(conf);
  }

  /** @internal Completes `conf$` for every observer. */
  complete(): void {
    this.state.complete();
  }
}

/** True when two held maps hold the same addresses. */
export function sameHeld(a: ReadonlyMap<string, HeldInstance> | undefined, b: ReadonlyMap<string, HeldInstance>): boolean {
  if ((a?.size ?? 0) !== b.size) return false;
  return [...b.keys()].every((address) => a?.has(address));
}
