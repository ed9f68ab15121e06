import { setTimeout as delay } from 'node:timers/promises';
import { BehaviorSubject, Observable, Subject, Subscription } from 'rxjs';
import type { ConnectionCredentials } from '../connection-credentials.ts';
import { SnapshotWrites } from '../atomic-file.ts';
import type { Logger } from '../logger.ts';
import { providerSnapshotSaved } from '../metrics.ts';
import type { Instance } from './instance.ts';
import type { DiscoveryProvider, ProviderSnapshot, ProviderStatus } from './provider.ts';
import { readRegistrySnapshot, writeRegistrySnapshot, type RegistrySnapshot } from './registry-snapshot-file.ts';

/** How long a start waits for the registry's first listing before serving the snapshot file's sets. */
export const DEFAULT_SNAPSHOT_WAIT_MS = 5_000;
/** Changes are written to the snapshot file at most once in this window (and once more on close). */
export const SNAPSHOT_WRITE_INTERVAL_MS = 1_000;
/** The longest a close waits for the snapshot file's last write. */
export const SNAPSHOT_CLOSE_TIMEOUT_MS = 2_000;

/** Where a registry provider keeps its last known instance sets, and how long a start waits before serving them. */
export interface SnapshotFallbackOptions {
  readonly path: string;
  /** The registry's identity (`registryIdentity`): a file of another registry is ignored. */
  readonly registry: string;
  readonly waitMs?: number;
  readonly writeIntervalMs?: number;
  readonly log: Logger;
}

/**
 * A registry provider with a last-known-good file of its instance sets, as Nacos' failover cache,
 * Dubbo's `registry.file` or Eureka's local registry keep one: every set the registry lists is
 * written to the file (atomically, coalesced to at most once per `writeIntervalMs`, and on close),
 * and a gateway that starts while the registry cannot be listed serves the file's sets, once
 * `waitMs` passed without a listing, until the registry's first listing replaces them. Those sets
 * say so (`ProviderSnapshot.fromSnapshot`) and the status is `stale` meanwhile; health checks and
 * outlier detection judge their instances as any other. A file that cannot be read, is of another
 * format or of another registry is ignored with a warning naming it and why.
 */
export class SnapshotFallbackProvider implements DiscoveryProvider {
  readonly name: string;
  readonly snapshots$: Observable<ProviderSnapshot>;
  readonly status$: Observable<ProviderStatus>;

  /** What this provider published last per service: the registry's set, or the file's until then. */
  private readonly latest = new Map<string, ProviderSnapshot>();
  /** The sets the registry itself listed, as the file keeps them. */
  private readonly listed = new Map<string, { instances: readonly Instance[]; revision: string }>();
  private readonly changes = new Subject<ProviderSnapshot>();
  private readonly status: BehaviorSubject<ProviderStatus>;
  private readonly subscriptions = new Subscription();
  private readonly waitMs: number;
  private readonly writeIntervalMs: number;
  private waitTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  private readonly writes: SnapshotWrites;
  private dirty = false;
  private connected = false;
  private serving: RegistrySnapshot | undefined;
  private started = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly inner: DiscoveryProvider,
    private readonly options: SnapshotFallbackOptions,
  ) {
    this.name = inner.name;
    this.waitMs = options.waitMs ?? DEFAULT_SNAPSHOT_WAIT_MS;
    this.writeIntervalMs = options.writeIntervalMs ?? SNAPSHOT_WRITE_INTERVAL_MS;
    this.writes = new SnapshotWrites(options.log, 'registry snapshot');
    this.status = new BehaviorSubject<ProviderStatus>({ provider: this.name, state: 'connecting', since: Date.now() });
    this.status$ = this.status.asObservable();
    this.snapshots$ = new Observable<ProviderSnapshot>((subscriber) => {
      for (const snapshot of this.latest.values()) subscriber.next(snapshot);
      return this.changes.subscribe(subscriber);
    });
  }

  /** Reads the file (once), starts the registry provider, and serves the file's sets if no listing came within `waitMs`. */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    const { path, registry, log } = this.options;
    const read = readRegistrySnapshot(path, registry);
    if (read.snapshot === undefined && read.missing !== true) log.warn({ path, reason: read.reason }, 'registry snapshot ignored');
    this.subscriptions.add(this.inner.snapshots$.subscribe((snapshot) => this.onListing(snapshot)));
    this.subscriptions.add(this.inner.status$.subscribe((status) => this.onStatus(status)));
    const snapshot = read.snapshot;
    if (snapshot && !this.connected) {
      this.waitTimer = setTimeout(() => this.serve(snapshot), this.waitMs);
      this.waitTimer.unref();
    }
    this.inner.start();
  }

  replaceCredentials(credentials: ConnectionCredentials | undefined): void {
    this.inner.replaceCredentials?.(credentials);
  }

  /** Closes the registry provider, then writes what changed since the last write. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.waitTimer);
      await this.inner.close();
      this.subscriptions.unsubscribe();
      if (this.writeTimer !== undefined) {
        clearTimeout(this.writeTimer);
        this.writeTimer = undefined;
        this.write();
      }
      // Bounded, as every shutdown step: a hung filesystem leaves the last write behind, said so.
      const settled = await Promise.race([this.writes.settled().then(() => true), delay(SNAPSHOT_CLOSE_TIMEOUT_MS, false, { ref: false })]);
      if (!settled) this.options.log.warn({ path: this.options.path, waitedMs: SNAPSHOT_CLOSE_TIMEOUT_MS }, 'the registry snapshot was still being written at close: left behind');
      if (this.serving) providerSnapshotSaved.remove({ provider: this.name });
      if (this.status.getValue().state !== 'closed') this.status.next({ provider: this.name, state: 'closed', since: Date.now() });
      this.status.complete();
      this.changes.complete();
    })();
    return this.closing;
  }

  private onListing(snapshot: ProviderSnapshot): void {
    if (snapshot.gone) {
      this.listed.delete(snapshot.service);
      this.latest.delete(snapshot.service);
    } else {
      this.listed.set(snapshot.service, { instances: snapshot.instances, revision: snapshot.revision });
      this.latest.set(snapshot.service, snapshot);
    }
    this.changes.next(snapshot);
    if (this.connected) this.scheduleWrite();
  }

  private onStatus(status: ProviderStatus): void {
    if (status.state === 'connected' && !this.connected) {
      this.connected = true;
      clearTimeout(this.waitTimer);
      this.replaceServed(status.since);
      this.scheduleWrite();
    }
    // While the file's sets are served, the provider stays `stale` (saying so) until the registry lists.
    if (this.serving && status.state !== 'closed') return;
    const current = this.status.getValue();
    if (status.state !== current.state || status.reason !== current.reason) this.status.next(status);
  }

  /** Publishes the file's set of every service the registry has not listed yet. */
  private serve(snapshot: RegistrySnapshot): void {
    if (this.connected || this.closing) return;
    this.serving = snapshot;
    const fromSnapshot = { savedAt: snapshot.savedAt };
    let served = 0;
    for (const [service, { instances, revision }] of snapshot.services) {
      if (this.latest.has(service)) continue;
      const published: ProviderSnapshot = { provider: this.name, service, instances, revision, invalid: 0, fromSnapshot };
      this.latest.set(service, published);
      this.changes.next(published);
      served += 1;
    }
    const savedAt = new Date(snapshot.savedAt).toISOString();
    providerSnapshotSaved.set({ provider: this.name }, snapshot.savedAt / 1_000);
    this.options.log.warn(
      { path: this.options.path, savedAt, ageMs: Date.now() - snapshot.savedAt, services: served, waitedMs: this.waitMs },
      'registry not listed at start: serving its last known instance sets from the snapshot file until it answers',
    );
    this.status.next({ provider: this.name, state: 'stale', since: Date.now(), fromSnapshot: true, reason: `registry not listed at start: serving the snapshot saved at ${savedAt} (${this.options.path})` });
  }

  /** The registry listed whole: the file's sets it did not list go (it does not list those services). */
  private replaceServed(at: number): void {
    if (!this.serving) return;
    providerSnapshotSaved.remove({ provider: this.name });
    let dropped = 0;
    for (const [service, snapshot] of this.latest) {
      if (snapshot.fromSnapshot === undefined) continue;
      this.latest.delete(service);
      this.changes.next({ provider: this.name, service, instances: [], revision: String(at), invalid: 0, gone: true });
      dropped += 1;
    }
    this.options.log.info({ path: this.options.path, unlisted: dropped }, 'registry listed: its sets replace the snapshot file\'s');
    this.serving = undefined;
  }

  /** Writes within `writeIntervalMs`, once for every change made meanwhile. */
  private scheduleWrite(): void {
    this.dirty = true;
    if (this.writeTimer !== undefined || this.closing) return;
    this.writeTimer = setTimeout(() => {
      this.writeTimer = undefined;
      this.write();
    }, this.writeIntervalMs);
    this.writeTimer.unref();
  }

  private write(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const services = new Map(this.listed);
    const { path, registry } = this.options;
    this.writes.enqueue(path, () => writeRegistrySnapshot(path, registry, services));
  }
}
