import type { Observable } from 'rxjs';
import { componentLogger } from '../../logger.ts';
import type { RawInstance } from '../instance-codec.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from '../provider.ts';
import { ProviderStore } from '../provider-store.ts';

/**
 * A provider whose instance lists are set by code: static lists from the gateway configuration,
 * and the base of the file provider. Connected from `start()`; `replace` swaps every list at once.
 */
export class StaticProvider implements DiscoveryProvider {
  readonly snapshots$: Observable<ProviderSnapshot>;
  readonly status$: Observable<ProviderStatus>;

  protected readonly store: ProviderStore;
  private revision = 0;

  constructor(readonly name: string) {
    this.store = new ProviderStore(name, componentLogger('provider', { provider: name }));
    this.snapshots$ = this.store.snapshots$;
    this.status$ = this.store.status$;
  }

  /** Marks the provider connected; lists set before or after are published as they come. */
  start(): void {
    this.store.setStatus('connected');
  }

  /**
   * Replaces every service's list: services missing from `services` are published as gone.
   * Bad entries are skipped and counted like bad registry entries.
   */
  replace(services: ReadonlyMap<string, readonly RawInstance[]>): void {
    const revision = String(++this.revision);
    // The store forgets the bad entries it reported with them (one that returns is reported anew).
    for (const service of this.store.services()) {
      if (!services.has(service)) this.store.publishGone(service, revision);
    }
    for (const [service, entries] of services) this.store.publishRaw(service, entries, revision);
  }

  /** Completes both streams. */
  async close(): Promise<void> {
    this.store.complete();
  }
}
