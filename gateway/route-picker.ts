import { canaryPicker, fallbackPicker, type Picker, type PickerSource, type SmoothSplit, type SubsetSelector } from '../src/balance/index.ts';
import type { CanaryRouting, RouteConfig, SubsetFallback } from './config/index.ts';

/** Where a route picker finds its balancers; each is read again on every pick, so updates reach it. */
export interface SubsetSources {
  /** The balancer of every instance of the service. */
  service(): PickerSource;
  /** The balancer of the instances of the service whose metadata holds every pair of `selector`. */
  subset(selector: SubsetSelector): PickerSource;
  /** The rotation of `canary`, kept across reloads while a route still splits this way. */
  split(canary: CanaryRouting): SmoothSplit;
}

/** True when `route` picks from part of its service (`subset` or `canary`) rather than from all of it. */
export function selectsSubsets(route: RouteConfig | undefined): route is RouteConfig & ({ subset: object } | { canary: object }) {
  return route !== undefined && (route.subset !== undefined || route.canary !== undefined);
}

/** The picker of a route with `subset` or `canary`, composed over the balancers of `sources`. */
export function routePicker(route: RouteConfig, sources: SubsetSources): Picker {
  if (route.subset) return fallbackPicker(sources.subset(route.subset.match), fallbackSource(route.subset.fallback, sources));
  const canary = route.canary!;
  const bySubset = (value: string) => sources.subset({ [canary.by]: value });
  return canaryPicker(
    {
      split: canary.split.map(({ value, weight }) => ({ weight, source: bySubset(value) })),
      lanes: canary.lanes.map((lane) => ({ ...definedLane(lane.header, lane.cookie, lane.value), to: bySubset(lane.to) })),
      fallback: fallbackSource(canary.fallback, sources),
    },
    sources.split(canary),
  );
}

/** Every selector `route` reads instances through, so that the balancers of the others may go. */
export function selectorsOf(route: RouteConfig): SubsetSelector[] {
  const selectors: SubsetSelector[] = [];
  const fallback = route.subset?.fallback ?? route.canary?.fallback;
  if (typeof fallback === 'object') selectors.push(fallback);
  if (route.subset) selectors.push(route.subset.match);
  if (route.canary) {
    const { by, split, lanes } = route.canary;
    for (const { value } of split) selectors.push({ [by]: value });
    for (const lane of lanes) selectors.push({ [by]: lane.to });
  }
  return selectors;
}

/** The identity of a split's rotation: the same weights between the same subsets of the same service. */
export function splitKey(service: string, canary: CanaryRouting): string {
  return JSON.stringify([service, canary.by, canary.split]);
}

function fallbackSource(fallback: SubsetFallback, sources: SubsetSources): PickerSource | undefined {
  if (fallback === 'none') return undefined;
  return fallback === 'any' ? sources.service() : sources.subset(fallback);
}

// exactOptionalPropertyTypes: a lane leaves out what it does not name.
function definedLane(header: string | undefined, cookie: string | undefined, value: string | undefined): { header?: string; cookie?: string; value?: string } {
  return { ...(header !== undefined && { header }), ...(cookie !== undefined && { cookie }), ...(value !== undefined && { value }) };
}
