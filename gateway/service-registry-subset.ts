import { subsetKey, type PickerSource, type ServiceBalancer, type SubsetSelector } from '../src/balance/index.ts';
import type { Picker } from '../src/balance/picker.ts';
import type { GatewayConfig } from './config/index.ts';
import { selectorsOf, selectsSubsets } from './route-picker.ts';

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
