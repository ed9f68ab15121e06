import type { ProviderStatus } from '../../src/discovery/provider.ts';
import { endpointStates, type AdminSources } from './admin-sources.ts';
import type { EndpointState, HeldPayload } from './event-types.ts';
import { heldPayload } from './events.ts';
import { HEALTH_REASON_TEXT, type HealthReason, type HealthState } from './health-state.ts';

/** One instance of a service in `GET /api/services`. */
export interface InstanceView {
  readonly id: string;
  /** `host:port`, the key everything else uses. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** The weight the registry gives it. */
  readonly weight: number;
  /** The weight picks use now: 0 while draining, ramped during slow start (as of the last rebuild, at most one tick old), else `weight`. */
  readonly effectiveWeight: number;
  /** When its slow start ends (ISO); null when it is not ramping. */
  readonly slowStartUntil: string | null;
  /** Its registry entry is marked draining (the agent's shutdown handshake): known, finishing its requests, no new ones. */
  readonly draining: boolean;
  readonly protocol: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** The provider (registry) that lists it; null once it has left the registry. */
  readonly source: string | null;
  readonly inRegistry: boolean;
  /** Gone from the registry right after an outage and kept routable by removal protection (see the service's `held`). */
  readonly held: boolean;
  readonly health: { readonly state: HealthState; readonly reason: HealthReason; readonly text: string; readonly ejectedUntil: string | null };
  /** May take traffic now (health, with the panic threshold applied); weight 0 still takes none. */
  readonly routable: boolean;
  /** Requests sent to it and not finished yet. */
  readonly inFlight: number;
  /** The balancer's latency estimate (p2c-ewma); null for balancers that keep none. */
  readonly latencyMs: number | null;
  /** Upstream attempts it has taken since it appeared, and how many failed (transport errors, 5xx). */
  readonly requests: number;
  readonly errors: number;
}

/** A provider's view of one service in `GET /api/services`. */
export interface ServiceProviderView {
  readonly name: string;
  readonly state: string;
  readonly since: string | null;
  readonly reason: string | null;
  /** Registry revision this service's instance set was read at. */
  readonly revision: string;
  readonly instances: number;
  /** Entries skipped because their payload failed validation. */
  readonly invalid: number;
  /** The first of those entries (at most `MAX_INVALID_ENTRIES_LISTED`): key, reason and since when (ISO). */
  readonly invalidEntries: readonly { readonly key: string; readonly reason: string; readonly since: string }[];
  /**
   * Set while the set is the provider's snapshot file's (the registry could not be listed at
   * start): when the file was written (ISO; the set's age is the time since); null for a set the
   * registry listed.
   */
  readonly fromSnapshot: { readonly savedAt: string } | null;
}

/** One service in `GET /api/services`. */
export interface ServiceView {
  readonly name: string;
  /** Declared in the configuration (else it routes with `defaults` because a registry lists it). */
  readonly declared: boolean;
  readonly balancer: string;
  readonly activeChecks: boolean;
  /** Every registry member gets traffic because too few are healthy. */
  readonly panic: boolean;
  readonly providers: readonly ServiceProviderView[];
  readonly instances: readonly InstanceView[];
  /** Instances removal protection keeps although the registry dropped them, with when the hold ends. */
  readonly held: readonly HeldPayload[];
}

/** The body of `GET /api/services`: every declared or listed service, by name. */
export function servicesView(sources: AdminSources, statuses: readonly ProviderStatus[]): { services: ServiceView[] } {
  const byProvider = new Map(statuses.map((status) => [status.provider, status]));
  return { services: sources.balancers.names().map((name) => serviceView(sources, name, byProvider)) };
}

/** One service as `GET /api/services` shows it (the explain endpoint shows the same). */
export function serviceView(sources: AdminSources, name: string, statuses: ReadonlyMap<string, ProviderStatus>): ServiceView {
  const settings = sources.balancers.settings(name);
  const snapshot = sources.balancers.health(name);
  const providers = [...sources.aggregator.snapshotsOf(name).values()].map((listing): ServiceProviderView => {
    const status = statuses.get(listing.provider);
    return {
      name: listing.provider,
      state: status?.state ?? 'unknown',
      since: status ? new Date(status.since).toISOString() : null,
      reason: status?.reason ?? null,
      revision: listing.revision,
      instances: listing.instances.length,
      invalid: listing.invalid,
      invalidEntries: (listing.invalidEntries ?? []).map((entry) => ({ key: entry.key, reason: entry.reason, since: new Date(entry.since).toISOString() })),
      fromSnapshot: listing.fromSnapshot ? { savedAt: new Date(listing.fromSnapshot.savedAt).toISOString() } : null,
    };
  });
  const held = sources.aggregator.service(name).current()?.held ?? new Map();
  return {
    name,
    declared: sources.config().services.has(name),
    balancer: settings.balancer.algorithm,
    activeChecks: settings.healthCheck !== false,
    panic: snapshot?.panic ?? false,
    providers,
    instances: snapshot ? endpointStates(sources, snapshot).map((endpoint) => instanceView(sources, name, endpoint, held.has(endpoint.address))) : [],
    held: [...held.values()].map(heldPayload),
  };
}

function instanceView(sources: AdminSources, service: string, endpoint: EndpointState, held: boolean): InstanceView {
  const { id, host, port, weight, protocol, metadata } = endpoint.instance;
  const member = sources.balancers.balancer(service)?.balancer.member(endpoint.address);
  const traffic = sources.traffic.counts(service, endpoint.address);
  return {
    id,
    address: endpoint.address,
    host,
    port,
    weight,
    effectiveWeight: Math.round((member?.weight ?? (endpoint.instance.draining === true ? 0 : weight)) * 100) / 100,
    // Balancer clocks are `performance.now()`; the admin speaks wall-clock time.
    slowStartUntil: member?.rampEndsAt === undefined ? null : new Date(Date.now() + member.rampEndsAt - performance.now()).toISOString(),
    draining: endpoint.instance.draining === true,
    protocol,
    metadata,
    source: endpoint.source ?? null,
    inRegistry: endpoint.inRegistry,
    held,
    health: {
      ...endpoint.health,
      text: HEALTH_REASON_TEXT[endpoint.health.reason],
      ejectedUntil: endpoint.ejectedUntil === undefined ? null : new Date(endpoint.ejectedUntil).toISOString(),
    },
    routable: endpoint.routable,
    inFlight: (member?.inFlight ?? 0) + (sources.instanceLoad?.inFlight(service, endpoint.address) ?? 0),
    latencyMs: member?.latencyMs === undefined ? null : Math.round((sources.instanceLoad?.latencyMs(service, endpoint.address) ?? member.latencyMs) * 100) / 100,
    requests: traffic.requests,
    errors: traffic.errors,
  };
}
