import { map } from 'rxjs';
import type { Instance } from '../discovery/instance.ts';
import type { HealthView } from '../health/health-view.ts';
import type { BalancerConfig } from './balancer-factory.ts';
import { BalancerKeeper } from './balancer-keeper.ts';
import { ServiceBalancer } from './service-balancer.ts';
import type { SlowStartOptions } from './slow-start.ts';

/** Metadata pairs an instance must all carry to belong to a subset (Envoy's subset selector); never empty. */
export type SubsetSelector = Readonly<Record<string, string>>;

/** True when `instance.metadata` holds every pair of `selector`. */
export function matchesSubset(instance: Instance, selector: SubsetSelector): boolean {
  for (const key in selector) {
    if (instance.metadata[key] !== selector[key]) return false;
  }
  return true;
}

/** One string per selector whatever the key order, e.g. `version=v2,zone=a`; the identity of a subset. */
export function subsetKey(selector: SubsetSelector): string {
  return Object.keys(selector)
    .sort()
    .map((key) => `${encodeURIComponent(key)}=${encodeURIComponent(selector[key]!)}`)
    .join(',');
}

/** A health view holding only the endpoints of `parent` that `selector` matches; panic and health stay the parent's. */
export function subsetHealthView(parent: HealthView, selector: SubsetSelector): HealthView {
  return {
    endpoints$: parent.endpoints$.pipe(map((snapshot) => ({ ...snapshot, endpoints: snapshot.endpoints.filter((endpoint) => matchesSubset(endpoint.instance, selector)) }))),
  };
}

/**
 * A balancer of `config`'s algorithm over the subset of `parent`'s endpoints that `selector`
 * matches. It shares the parent's health (one active checker and one outlier detector per
 * instance): outcomes of its picks feed the parent's passive health. It shares the parent's host
 * loads too: its picks count in flight on their hosts for the parent's least-connections and
 * p2c-ewma, and the parent's for its own, and p2c-ewma's latency estimate is one per host. With `slowStart` (the
 * service's), instances ramp as in the service's own balancer: one that joins the subset later, and
 * one still ramping in the service when the subset is made, which takes the service's ramp.
 * `keep` is the `keeper` of the subset's balancer under the service's previous build: when `parent`
 * kept its balancer (`BalancerKeeper`), the subset's is kept too, fed from `parent`'s health and
 * reporting to it. Closing the result leaves the parent and the balancer as they are; the owner
 * calls `balancer.close()` when the subset goes for good, so that it lets go of the host loads.
 */
export function createSubsetBalancer(parent: ServiceBalancer, selector: SubsetSelector, config: BalancerConfig, slowStart?: SlowStartOptions, keep?: BalancerKeeper): ServiceBalancer {
  const keeper = BalancerKeeper.keep(keep, config, slowStart, parent.recordOutcome, parent.balancer);
  return new ServiceBalancer(subsetHealthView(parent.health, selector), keeper.balancer, undefined, parent.recordOutcome, keeper);
}
