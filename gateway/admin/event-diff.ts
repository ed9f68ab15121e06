import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { AdminChange, EndpointState, HealthPayload } from './event-types.ts';
import { HEALTH_REASON_TEXT, type HealthVerdict } from './health-state.ts';

/**
 * The changes from one endpoint set of `service` to the next, matched by address: new addresses
 * are `instance-added`, missing ones `instance-removed`, and for the rest a different weight is
 * `weight-changed`, a drain mark set or withdrawn `draining-changed`, and a different health
 * state, reason or routing verdict is `health-changed`.
 * An endpoint that leaves the registry but is kept for its grace period is a health change
 * (`left-registry`), and is removed only when the gateway lets it go.
 */
export function diffEndpoints(service: string, previous: ReadonlyMap<string, EndpointState>, next: readonly EndpointState[], panic: boolean): AdminChange[] {
  const changes: AdminChange[] = [];
  const seen = new Set<string>();
  for (const endpoint of next) {
    seen.add(endpoint.address);
    const before = previous.get(endpoint.address);
    if (!before) {
      changes.push({ type: 'instance-added', data: addedPayload(service, endpoint) });
      continue;
    }
    const { id } = endpoint.instance;
    if (before.instance.weight !== endpoint.instance.weight) {
      changes.push({ type: 'weight-changed', data: { service, id, address: endpoint.address, from: before.instance.weight, to: endpoint.instance.weight } });
    }
    const draining = endpoint.instance.draining === true;
    if ((before.instance.draining === true) !== draining) changes.push({ type: 'draining-changed', data: { service, id, address: endpoint.address, draining } });
    if (before.health.state !== endpoint.health.state || before.health.reason !== endpoint.health.reason || before.routable !== endpoint.routable) {
      changes.push({
        type: 'health-changed',
        data: {
          service,
          id,
          address: endpoint.address,
          from: healthPayload(before.health),
          to: healthPayload(endpoint.health),
          routable: endpoint.routable,
          ejectedUntil: endpoint.ejectedUntil === undefined ? null : new Date(endpoint.ejectedUntil).toISOString(),
          panic,
        },
      });
    }
  }
  for (const [address, before] of previous) {
    if (seen.has(address)) continue;
    changes.push({ type: 'instance-removed', data: { service, id: before.instance.id, address, reason: before.inRegistry ? 'left-registry' : 'grace-over' } });
  }
  return changes;
}

function addedPayload(service: string, endpoint: EndpointState): Extract<AdminChange, { type: 'instance-added' }>['data'] {
  const { id, host, port, weight, protocol, metadata } = endpoint.instance;
  return {
    service,
    instance: { id, address: endpoint.address, host, port, weight, protocol, metadata, source: endpoint.source ?? null },
    health: healthPayload(endpoint.health),
    routable: endpoint.routable,
  };
}

function healthPayload(health: HealthVerdict): HealthPayload {
  return { state: health.state, reason: health.reason, text: HEALTH_REASON_TEXT[health.reason] };
}

/** `provider-status` changes from one list of provider statuses to the next (by provider name); a first sighting counts as a change. */
export function diffStatuses(previous: ReadonlyMap<string, ProviderStatus>, next: readonly ProviderStatus[]): AdminChange[] {
  const changes: AdminChange[] = [];
  for (const status of next) {
    const before = previous.get(status.provider);
    if (before && before.state === status.state && before.since === status.since) continue;
    changes.push({
      type: 'provider-status',
      data: {
        provider: status.provider,
        state: status.state,
        previous: before?.state ?? null,
        since: new Date(status.since).toISOString(),
        reason: status.reason ?? null,
      },
    });
  }
  return changes;
}
