import type { Observable } from 'rxjs';
import type { Instance } from '../discovery/instance.ts';

/**
 * What active checks say of one address. `unknown` until the first verdict: the registry agent
 * registers an instance only once it answers, so an unchecked instance is presumed healthy.
 */
export type ActiveHealth = 'unknown' | 'healthy' | 'unhealthy';

/** One endpoint of a service with everything health knows about it and the routing verdict. */
export interface EndpointHealth {
  /** `instanceAddress(instance)`; the key balancers diff by. */
  readonly address: string;
  readonly instance: Instance;
  /** False while the endpoint is kept after leaving the registry (Envoy's removal rule, bounded by a grace period). */
  readonly inRegistry: boolean;
  /** `unknown` as well when no active checks are configured. */
  readonly active: ActiveHealth;
  /** True while passive outlier detection has ejected the endpoint. */
  readonly ejected: boolean;
  /** While ejected: when the ejection ends, in epoch milliseconds. */
  readonly ejectedUntil?: number;
  /** Whether the endpoint may receive traffic, with the panic threshold already applied; weight is the balancer's concern. */
  readonly routable: boolean;
}

/** The whole endpoint set of one service at one moment; never a delta. */
export interface HealthSnapshot {
  readonly service: string;
  /** Registry members in registry order, then endpoints kept in their grace period. */
  readonly endpoints: readonly EndpointHealth[];
  /** True when the healthy share fell below the panic threshold and every registry member is routable. */
  readonly panic: boolean;
}

/**
 * The one interface through which balancers learn health. Health code never imports balancers;
 * balancers read nothing else of health.
 */
export interface HealthView {
  /**
   * Replays the current snapshot on subscribe (once the service has been listed), then emits
   * every change. Never errors; completes when its owner is closed.
   */
  readonly endpoints$: Observable<HealthSnapshot>;
}
