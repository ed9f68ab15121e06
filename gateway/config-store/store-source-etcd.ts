import type { IWatchResponse } from 'etcd3';
import { Subject } from 'rxjs';
import { DEFAULT_BACKOFF, backoffDelay } from '../../src/backoff.ts';
import { DEFAULT_ETCD_STALL_TIMEOUT_MS } from '../../src/discovery/etcd/index.ts';
import type { PrefixListing } from '../../src/discovery/etcd/etcd-list.ts';
import { EtcdSession, sessionEndProblem } from '../../src/discovery/etcd/etcd-session.ts';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { OutageLog } from '../../src/outage-log.ts';
import { configStoreResyncsTotal } from './store-metrics.ts';
import { ignoredKeyReason, parseObjectKey, type StoreLocation } from './store-layout.ts';
import type { StoreListing, StoreSource, StoreSourceOptions } from './store-source.ts';

/**
 * A config store in etcd, read the way the etcd discovery provider reads instances (the same
 * `EtcdSession`: a paged list pinned to one revision, a watch from the next revision, stall
 * probes). Any session end starts a new client and a full re-list; a compaction past the watch
 * revision re-lists at once, other failures after a capped, jittered backoff, rotating endpoints.
 */
export class EtcdStoreSource implements StoreSource {
  private readonly subject = new Subject<StoreListing>();
  readonly listings$ = this.subject.asObservable();
  private readonly reasons = new Subject<string | null>();
  readonly reason$ = this.reasons.asObservable();
  private reason: string | null = null;
  private readonly entries = new Map<string, string>();
  /** Keys neither objects nor peers (`ignoredKeyReason`): listed so the gateway can say why they do nothing. */
  private readonly ignored = new Set<string>();
  private readonly log: Logger;
  private readonly outage: OutageLog;
  private session: EtcdSession | undefined;
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly location: Extract<StoreLocation, { kind: 'etcd' }>,
    private readonly options: StoreSourceOptions,
  ) {
    this.log = componentLogger('config-store', { store: location.url });
    this.outage = new OutageLog(this.log, { failed: 'config store session ended; keeping the last listing and retrying', recovered: 'config store listed again: its outage is over' });
  }

  start(): void {
    if (this.running || this.closing) return;
    this.running = this.supervise().catch((error: unknown) => this.log.error({ err: errorMessage(error) }, 'config store supervisor failed'));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.session?.close();
      this.wake?.();
      await this.running;
      this.subject.complete();
      this.reasons.complete();
    })();
    return this.closing;
  }

  private async supervise(): Promise<void> {
    const { endpoints, root } = this.location;
    let endpointIndex = Math.floor(Math.random() * endpoints.length);
    let attempt = 0;
    let compactedInARow = 0;
    while (!this.closing) {
      const endpoint = endpoints[endpointIndex % endpoints.length]!;
      this.session = new EtcdSession(
        { endpoint, keyPrefix: `${root}/`, requestTimeoutMs: this.options.requestTimeoutMs, stallTimeoutMs: DEFAULT_ETCD_STALL_TIMEOUT_MS, credentials: this.location.credentials },
        { onListed: (listing) => this.onListed(listing), onWatchResponse: (response) => this.onWatchResponse(response) },
      );
      const end = await this.session.run();
      this.session = undefined;
      if (end.reason === 'closed' || this.closing) return;
      if ((end.listedForMs ?? 0) >= DEFAULT_BACKOFF.maxMs) attempt = 0;
      configStoreResyncsTotal.inc({ reason: end.reason });
      compactedInARow = end.reason === 'compacted' ? compactedInARow + 1 : 0;
      // A compaction means etcd answers: re-list at once (once; repeated compactions wait like failures).
      const relistAtOnce = compactedInARow === 1;
      const detail = { endpoint, reason: end.reason, attempt, err: end.error === undefined ? undefined : errorMessage(end.error) };
      if (relistAtOnce) this.log.info(detail, 'config store watch revision compacted, re-listing');
      else {
        this.setReason(`${end.reason}: ${detail.err ?? 'no detail'}`);
        this.outage.failed(detail, { problem: sessionEndProblem(end) });
        endpointIndex += 1;
      }
      await this.sleep(relistAtOnce ? 0 : backoffDelay(attempt, DEFAULT_BACKOFF));
      attempt += 1;
    }
  }

  private onListed(listing: PrefixListing): void {
    this.outage.recovered({ revision: listing.revision });
    this.entries.clear();
    this.ignored.clear();
    for (const kv of listing.kvs) this.take(kv.key.toString('utf8'), kv.value.toString('utf8'));
    this.emit(listing.revision);
  }

  private onWatchResponse(response: IWatchResponse): void {
    let objects = false;
    let ignored = false;
    for (const event of response.events) {
      // Peers' keys change with every revision a gateway applies: no listing for them.
      const changed = this.take(event.kv.key.toString('utf8'), event.type === 'Put' ? event.kv.value.toString('utf8') : undefined);
      objects ||= changed === 'object';
      ignored ||= changed === 'ignored';
    }
    if (objects || ignored) this.emit(response.header.revision, !objects);
  }

  /**
   * Records a key's value (undefined: deleted); what a listing shows of it changed: an object's value
   * (`object`), or the ignored keys (`ignored`: one added or deleted, not a stray key's new value).
   */
  private take(key: string, value: string | undefined): 'object' | 'ignored' | undefined {
    const { root } = this.location;
    if (parseObjectKey(root, key)) {
      if (value === undefined) this.entries.delete(key);
      else this.entries.set(key, value);
      return 'object';
    }
    if (ignoredKeyReason(root, key) === undefined) return undefined;
    if (value === undefined) return this.ignored.delete(key) ? 'ignored' : undefined;
    if (this.ignored.has(key)) return undefined;
    this.ignored.add(key);
    return 'ignored';
  }

  private emit(revision: string, ignoredOnly = false): void {
    this.setReason(null);
    this.subject.next({ revision, entries: new Map(this.entries), ignored: [...this.ignored], ignoredOnly, receivedAt: Date.now() });
  }

  /** Sends `next` on `reason$` when it differs: a retry that fails the same way again is not news. */
  private setReason(next: string | null): void {
    if (next === this.reason) return;
    this.reason = next;
    this.reasons.next(next);
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
