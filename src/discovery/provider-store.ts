import { BehaviorSubject, Observable, Subject } from 'rxjs';
import type { Logger } from '../logger.ts';
import { invalidInstancesTotal, providerSnapshotsTotal, providerStale } from '../metrics.ts';
import { EntryDecodeCache } from './entry-decode-cache.ts';
import type { RawInstance } from './instance-codec.ts';
import { NATIVE_LAYOUT, type EntryDecoder } from './layout/index.ts';
import { sameInstances, sortInstances, type Instance } from './instance.ts';
import { MAX_INVALID_ENTRIES_LISTED, type InvalidEntry, type ProviderSnapshot, type ProviderState, type ProviderStatus } from './provider.ts';

/**
 * The state every provider shares: latest snapshot per service, status, decoding with
 * skip-and-count of bad entries, and deduplication so that an unchanged set is never re-emitted.
 * Providers only read their registry and call `publish`, `setStatus` and `complete`.
 */
export class ProviderStore {
  readonly snapshots$: Observable<ProviderSnapshot>;
  readonly status$: Observable<ProviderStatus>;

  private readonly latest = new Map<string, ProviderSnapshot>();
  private readonly changes = new Subject<ProviderSnapshot>();
  private readonly status: BehaviorSubject<ProviderStatus>;
  /**
   * Per service, the bad entries of its latest listing, keyed by name and data, with when each was
   * first seen, so a re-list does not log them again. Holds only what the registry still lists.
   */
  private readonly reportedInvalid = new Map<string, Map<string, number>>();
  private readonly decoded: EntryDecodeCache;

  constructor(
    readonly provider: string,
    private readonly log: Logger,
    /** How the provider's layout reads one entry; `native` by default. */
    decode: EntryDecoder = NATIVE_LAYOUT.decode,
  ) {
    this.decoded = new EntryDecodeCache(decode);
    this.status = new BehaviorSubject<ProviderStatus>({ provider, state: 'connecting', since: Date.now() });
    this.status$ = this.status.asObservable();
    this.snapshots$ = new Observable<ProviderSnapshot>((subscriber) => {
      for (const snapshot of this.latest.values()) subscriber.next(snapshot);
      return this.changes.subscribe(subscriber);
    });
  }

  /** Services with a published snapshot, including those whose last snapshot is empty. */
  services(): string[] {
    return [...this.latest.keys()];
  }

  /** The last snapshot published for `service`. */
  get(service: string): ProviderSnapshot | undefined {
    return this.latest.get(service);
  }

  /**
   * Decodes `entries` (each into zero, one or several instances) and publishes the resulting set for `service` unless it equals the last one.
   * Bad entries are skipped, logged once per distinct payload, and counted. An entry listed last time
   * with the same data is not decoded again: its instances are the same objects as before.
   */
  publishRaw(service: string, entries: readonly RawInstance[], revision: string): void {
    const instances: Instance[] = [];
    const invalidEntries: InvalidEntry[] = [];
    const reported = this.reportedInvalid.get(service);
    const stillListed = new Map<string, number>();
    let invalid = 0;
    const results = this.decoded.decodeAll(service, entries);
    for (const [index, entry] of entries.entries()) {
      const result = results[index]!;
      if (result.ok) {
        instances.push(...result.instances);
        continue;
      }
      invalid += 1;
      const key = `${entry.name}\0${typeof entry.data === 'string' ? entry.data : Buffer.from(entry.data ?? []).toString('base64')}`;
      const seen = reported?.get(key) ?? stillListed.get(key);
      const since = seen ?? Date.now();
      stillListed.set(key, since);
      if (seen === undefined) {
        invalidInstancesTotal.inc({ provider: this.provider, service });
        this.log.warn({ service, entry: entry.key ?? entry.name, err: result.error.message }, 'skipping invalid registry entry');
      }
      if (invalidEntries.length < MAX_INVALID_ENTRIES_LISTED) invalidEntries.push({ key: entry.key ?? `${service}/${entry.name}`, reason: result.error.message, since });
    }
    if (stillListed.size > 0) this.reportedInvalid.set(service, stillListed);
    else this.reportedInvalid.delete(service);
    this.publish(service, instances, revision, invalid, invalidEntries);
  }

  /** Publishes an already decoded set for `service` unless it equals the last one. */
  publish(service: string, instances: Iterable<Instance>, revision: string, invalid = 0, invalidEntries: readonly InvalidEntry[] = []): void {
    const sorted = sortInstances(instances);
    const previous = this.latest.get(service);
    const sameInvalid = previous?.invalid === invalid && sameKeys(previous.invalidEntries ?? [], invalidEntries);
    if (previous && sameInvalid && sameInstances(previous.instances, sorted)) return;
    const snapshot: ProviderSnapshot = {
      provider: this.provider,
      service,
      instances: sorted,
      revision,
      invalid,
      ...(invalidEntries.length > 0 ? { invalidEntries } : {}),
    };
    this.latest.set(service, snapshot);
    providerSnapshotsTotal.inc({ provider: this.provider });
    this.changes.next(snapshot);
  }

  /**
   * Publishes that the registry no longer lists `service` (an empty snapshot with `gone`), and
   * forgets it: it is no longer among `services()` nor replayed to new subscribers, and a listing
   * that names it again is published as new. Nothing when the service has no published snapshot.
   */
  publishGone(service: string, revision: string): void {
    if (!this.latest.has(service)) return;
    this.latest.delete(service);
    this.reportedInvalid.delete(service);
    this.decoded.forget(service);
    providerSnapshotsTotal.inc({ provider: this.provider });
    this.changes.next({ provider: this.provider, service, instances: [], revision, invalid: 0, gone: true });
  }

  /**
   * Moves to `state`. A repeated state is not re-emitted, unless it comes with another reason: the
   * reason is then replaced and `since` kept (a file refused for bad YAML and then removed is stale
   * since the first refusal, now because it cannot be read), with no log line, as the provider logs
   * each failure its own way.
   */
  setStatus(state: ProviderState, reason?: string): void {
    const current = this.status.getValue();
    if (current.state === state) {
      if (current.reason !== reason) this.status.next({ provider: this.provider, state, since: current.since, ...(reason === undefined ? {} : { reason }) });
      return;
    }
    providerStale.set({ provider: this.provider }, state === 'stale' ? 1 : 0);
    if (state === 'connected' || state === 'closed') this.log.info({ from: current.state }, `registry ${state}`);
    else this.log.warn({ from: current.state, reason }, `registry ${state}`);
    this.status.next({ provider: this.provider, state, since: Date.now(), ...(reason === undefined ? {} : { reason }) });
  }

  /**
   * While the provider has not yet connected, the reason of its latest failed attempt (a TLS or
   * authentication error, a refused connection), so that a registry that never connects says why;
   * ignored in any other state. Keeps `since`; a repeated reason changes nothing.
   */
  setConnectingReason(reason: string): void {
    const current = this.status.getValue();
    if (current.state !== 'connecting' || current.reason === reason) return;
    this.status.next({ ...current, reason });
  }

  /** The current status. */
  currentStatus(): ProviderStatus {
    return this.status.getValue();
  }

  /** Marks the provider closed and completes both streams. */
  complete(): void {
    this.setStatus('closed');
    this.status.complete();
    this.changes.complete();
  }
}

function sameKeys(a: readonly InvalidEntry[], b: readonly InvalidEntry[]): boolean {
  return a.length === b.length && a.every((entry, index) => entry.key === b[index]!.key && entry.reason === b[index]!.reason);
}
