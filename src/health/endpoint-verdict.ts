import { sameInstance } from '../discovery/instance.ts';
import type { EndpointHealth, HealthSnapshot } from './health-view.ts';

/** True when health allows traffic: not failing active checks and not ejected. */
export function isHealthy(endpoint: Pick<EndpointHealth, 'active' | 'ejected'>): boolean {
  return endpoint.active !== 'unhealthy' && !endpoint.ejected;
}

/**
 * Applies the routing verdict. Panic (Envoy): when the healthy share of registry members with
 * weight above 0 is below `panicThresholdPercent`, every registry member becomes routable, since
 * spreading load over all beats crushing the few that still pass. Endpoints outside the registry
 * and draining ones (leaving on purpose, never picked) count for neither side of the share;
 * the former stay routable only while healthy.
 */
export function snapshotOf(service: string, endpoints: readonly Omit<EndpointHealth, 'routable'>[], panicThresholdPercent: number): HealthSnapshot {
  let weighted = 0;
  let healthy = 0;
  for (const endpoint of endpoints) {
    if (!endpoint.inRegistry || endpoint.instance.weight <= 0 || endpoint.instance.draining === true) continue;
    weighted += 1;
    if (isHealthy(endpoint)) healthy += 1;
  }
  const panic = panicThresholdPercent > 0 && weighted > 0 && healthy * 100 < panicThresholdPercent * weighted;
  return {
    service,
    panic,
    endpoints: endpoints.map((endpoint) => ({ ...endpoint, routable: (panic && endpoint.inRegistry) || isHealthy(endpoint) })),
  };
}

/** True when two snapshots would route identically and report the same health. */
export function sameSnapshot(a: HealthSnapshot, b: HealthSnapshot): boolean {
  if (a.panic !== b.panic || a.endpoints.length !== b.endpoints.length) return false;
  return a.endpoints.every((left, index) => {
    const right = b.endpoints[index]!;
    return (
      left.address === right.address &&
      left.inRegistry === right.inRegistry &&
      left.active === right.active &&
      left.ejected === right.ejected &&
      left.routable === right.routable &&
      sameInstance(left.instance, right.instance)
    );
  });
}
