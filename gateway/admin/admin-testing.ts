// Fixtures shared by the admin tests; not exported from index.ts.
import type { Instance } from '../../src/discovery/index.ts';
import type { EndpointState } from './event-types.ts';
import type { HealthVerdict } from './health-state.ts';

/** An instance of service `svc` at 10.2.0.`octet`:8080. */
export function adminInstance(octet: number, weight = 1): Instance {
  return { id: `i-${octet}`, service: 'svc', host: `10.2.0.${octet}`, port: 8080, weight, protocol: 'http', metadata: {} };
}

/** An endpoint state of `adminInstance(octet)`, healthy and routable unless told otherwise. */
export function endpointState(octet: number, changes: Partial<Omit<EndpointState, 'health'>> & { health?: HealthVerdict; weight?: number } = {}): EndpointState {
  const { weight, ...rest } = changes;
  return {
    address: `10.2.0.${octet}:8080`,
    instance: adminInstance(octet, weight),
    source: 'zk:test',
    inRegistry: true,
    health: { state: 'healthy', reason: 'registered' },
    routable: true,
    ejectedUntil: undefined,
    ...rest,
  };
}

/** The endpoints as the diff's previous state. */
export function byAddress(...endpoints: EndpointState[]): ReadonlyMap<string, EndpointState> {
  return new Map(endpoints.map((endpoint) => [endpoint.address, endpoint]));
}
