import { createSubsetBalancer, nonePicker, SmoothSplit, subsetKey, type PickerSource, type ServiceBalancer, type ServiceBalancerOptions, type SubsetSelector } from '../src/balance/index.ts';
import type { Picker } from '../src/balance/picker.ts';
import type { CanaryRouting, GatewayConfig, RouteConfig } from './config/index.ts';
import { routePicker, selectorsOf, selectsSubsets } from './route-picker.ts';

/** A subset the registry keeps: the service and selector it was made for, read through its source. */
export interface SubsetEntry {
  readonly service: string;
  readonly selector: SubsetSelector;
  readonly source: SubsetSource;
}

/**
 * A subset's balancer as route pickers read it: one object for the subset's life, whose balancer a
 * rebuild of the service that carries the subset over replaces, so that a route picker made before
 * a reload (a request in flight across it, retrying) picks from the subset's current host set.
 */
export class SubsetSource implements PickerSource {
  /**
   * Set when the subset goes (a reload that rebuilt its service, or that no route names it): what
   * a route picker made before reads from then on, rather than the closed balancer, frozen at the
   * reload, whose picks count in no live load.
   */
  successor: (() => Picker) | undefined;

  constructor(public balancer: ServiceBalancer) {}

  get picker(): Picker {
    return this.successor ? this.successor() : this.balancer.picker;
  }
}

/** The ids of the subsets the routes of `config` select. */
export function selectedSubsets(config: GatewayConfig): Set<string> {
  const routes = config.routes.filter(selectsSubsets);
  return new Set(routes.flatMap((route) => selectorsOf(route).map((selector) => subsetId(route.service!, selector))));
}

/** The key of `service`'s subset for `selector`. */
export function subsetId(service: string, selector: SubsetSelector): string {
  return `${service}\n${subsetKey(selector)}`;
}

/** What a route's subsets are read from without making any: each lookup undefined where no request has made it yet. */
export interface ExistingSubsets {
  /** The service's balancer; undefined for a declared service no registry lists (it has no instances). */
  readonly parent: ServiceBalancer | undefined;
  readonly options: ServiceBalancerOptions;
  subset(selector: SubsetSelector): PickerSource | undefined;
  split(canary: CanaryRouting): SmoothSplit | undefined;
}

const NO_INSTANCES: PickerSource = { picker: nonePicker('no-instances') };

/**
 * Calls `use` with the picker `route` would get from `existing`, and leaves no state behind: a
 * subset no request has made yet is a scratch balancer over the service's, as the route's first
 * request would make it, closed (its host loads let go) when `use` returns, and a split not yet
 * made a fresh rotation, dropped. `use` must be done with the picker when it returns.
 */
export function withReadOnlyRoutePicker<T>(route: RouteConfig, existing: ExistingSubsets, use: (picker: Picker) => T): T {
  const scratch: ServiceBalancer[] = [];
  const { parent, options } = existing;
  const scratchSubset = (selector: SubsetSelector): PickerSource => {
    if (!parent) return NO_INSTANCES;
    const balancer = createSubsetBalancer(parent, selector, options.balancer, options.slowStart);
    scratch.push(balancer);
    return balancer;
  };
  try {
    const picker = routePicker(route, {
      service: () => parent ?? NO_INSTANCES,
      subset: (selector) => existing.subset(selector) ?? scratchSubset(selector),
      split: (canary) => existing.split(canary) ?? new SmoothSplit(canary.split.map(({ weight }) => weight)),
    });
    return use(picker);
  } finally {
    for (const balancer of scratch) {
      balancer.close();
      balancer.balancer.close();
    }
  }
}
