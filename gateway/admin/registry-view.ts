import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { AdminSources } from './admin-sources.ts';

/** One provider in `GET /api/registries`. */
export interface RegistryView {
  readonly name: string;
  /** As configured; null for the static instances of the configuration file. */
  readonly url: string | null;
  readonly kind: string;
  /** `connecting`, `connected`, `stale` (registry unreachable, last good sets still served) or `closed`. */
  readonly state: string;
  /** ISO time the provider entered `state`. */
  readonly since: string | null;
  /** Equal to `since` while stale, else null. */
  readonly staleSince: string | null;
  /** Why it left `connected`, when it did. */
  readonly reason: string | null;
  /** Registry revision of the latest change received (ZooKeeper zxid, etcd revision, file version), when known. */
  readonly revision: string | null;
  /** Services it has reported, including those it now reports without instances. */
  readonly services: number;
}

/** The body of `GET /api/registries`: every provider in configuration order, static instances last. */
export function registriesView(sources: AdminSources, statuses: readonly ProviderStatus[]): { registries: RegistryView[] } {
  const byProvider = new Map(statuses.map((status) => [status.provider, status]));
  const names = sources.balancers.names();
  return {
    registries: sources.registries.map((registry) => {
      const status = byProvider.get(registry.name);
      const since = status ? new Date(status.since).toISOString() : null;
      return {
        name: registry.name,
        url: registry.url ?? null,
        kind: registry.kind,
        state: status?.state ?? 'unknown',
        since,
        staleSince: status?.state === 'stale' ? since : null,
        reason: status?.reason ?? null,
        revision: sources.aggregator.revisionOf(registry.name) ?? null,
        services: names.filter((name) => sources.aggregator.snapshotsOf(name).has(registry.name)).length,
      };
    }),
  };
}
