import { instanceAddress, sortInstances, type Instance } from './instance.ts';
import type { ServiceConf } from './load-balance-conf.ts';
import type { ProviderSnapshot } from './provider.ts';

/**
 * Unions provider snapshots in rank order (the order of `snapshots`); the first provider to list an
 * address keeps it. An instance a provider lists under another service name takes `service`'s.
 */
export function mergeSnapshots(service: string, snapshots: ReadonlyMap<string, ProviderSnapshot>): Pick<ServiceConf, 'instances' | 'sources'> {
  const byAddress = new Map<string, Instance>();
  const sources = new Map<string, string>();
  for (const [provider, snapshot] of snapshots) {
    for (const instance of snapshot.instances) {
      const address = instanceAddress(instance);
      if (byAddress.has(address)) continue;
      byAddress.set(address, instance.service === service ? instance : { ...instance, service });
      sources.set(address, provider);
    }
  }
  return { instances: sortInstances(byAddress.values()), sources };
}
