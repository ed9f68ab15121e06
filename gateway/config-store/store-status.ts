import { BehaviorSubject, ReplaySubject, Subject, type Observable } from 'rxjs';
import type { ConfigStoreSettings } from '../config/index.ts';
import type { ConfigDocument, StoreRefusal } from './store-objects.ts';
import type { StoreListing } from './store-source.ts';

/** The listing the reader last composed, with what it composed it beside: the configuration file's path and the store's root. */
export interface ComposedListing {
  readonly path: string;
  readonly root: string;
  readonly listing: StoreListing;
}

/** What `/api/config` shows of the config store: where, which revision is in force, from where, why it is not read now, and what was refused. */
export interface StoreStatus {
  readonly url: string;
  /** The revision in force; null before anything was applied. */
  readonly revision: string | null;
  /** `store`: a live listing; `snapshot`: the last-known-good file (the store was unreachable at start); `none`: the file alone so far. */
  readonly source: 'store' | 'snapshot' | 'none';
  /** ISO time of the last applied listing; null before. */
  readonly applied: string | null;
  /**
   * Why the gateway does not read the store now (unreachable, or refusing its user: the reason the
   * reader retries with), the revision in force staying; null while it reads the store.
   */
  readonly reason: string | null;
  readonly refused: readonly StoreRefusal[];
  /** Keys under the root that are neither objects nor peers (a typo written around the API), which the gateway ignores, with why. */
  readonly ignored: readonly IgnoredStoreKey[];
}

/** A key under a store's root that the gateway ignores, and why (`ignoredKeyReason`). */
export interface IgnoredStoreKey {
  readonly key: string;
  readonly reason: string;
}

/** A store object refused, as `/api/events` reports it (`config-store-refused`). */
export interface StoreRefusedChange {
  readonly type: 'config-store-refused';
  readonly data: { key: string; kind: string; reason: string; revision: string };
}

/** One applied store revision: what the peers' registration reports as this gateway's config revision. */
export interface StoreApplied {
  readonly revision: string;
  /** `Date.now()` when this process applied it. */
  readonly appliedAt: number;
  /** `listingDigest` of the applied object entries: peers with equal digests applied the same store content. */
  readonly digest: string;
}

/**
 * The config store's state in this process (the one that reads the store: the single process or
 * the primary; workers get merged text and read no store). Module-level like `rateLimitChanges`,
 * so that the admin API and the peers registration can read it without threading it through.
 */
class StoreState {
  private readonly status = new BehaviorSubject<Omit<StoreStatus, 'reason'> | undefined>(undefined);
  private readonly refusedChanges = new Subject<StoreRefusedChange>();
  private reading: ConfigStoreSettings | undefined;
  private file: ConfigDocument | undefined;
  private composed: ComposedListing | undefined;
  private judged: ComposedListing | undefined;
  private reason: string | null = null;
  /** The configurations composed from a listing read from the store (not the snapshot, not the file alone), for `/ready`. */
  private readonly shared = new WeakSet<object>();
  // Replays the latest: the peers registration starts after the first listing was applied.
  private readonly appliedSubject = new ReplaySubject<StoreApplied>(1);
  /** Each newly refused object (not repeated while it stays refused with the same reason). */
  readonly changes$: Observable<StoreRefusedChange> = this.refusedChanges.asObservable();
  /** Each applied store revision, in order, starting with the latest one (the hook the peers registration subscribes to). */
  readonly applied$: Observable<StoreApplied> = this.appliedSubject.asObservable();

  /** The store this process reads, from its first `configStore` until it stops (a changed one needs a restart); undefined while it reads none. */
  location(): ConfigStoreSettings | undefined {
    return this.reading;
  }

  /** Records the store this process starts reading (the reader calls it once); undefined for none (test files that share a process). */
  setLocation(settings: ConfigStoreSettings | undefined): void {
    this.reading = settings;
  }

  /** The configuration file's document the store's objects are read beside (its `defaults`, entry points…); undefined before the file was read. */
  fileDocument(): ConfigDocument | undefined {
    return this.file;
  }

  /** Records the file's document the reader now validates store objects against (on each file read). */
  setFileDocument(document: ConfigDocument): void {
    this.file = document;
  }

  /** The listing the reader last composed (a write's warnings are judged beside it); undefined before the first composition. */
  lastComposed(): ComposedListing | undefined {
    return this.composed;
  }

  /** Records the listing the reader composes now. */
  setComposed(composed: ComposedListing): void {
    this.composed = composed;
  }

  /**
   * The listing the refusals of the latest status were judged on: the last one applied, not a newer one
   * whose merged configuration was refused as a whole (which leaves the status, and its refusals, as they were).
   */
  refusalsJudgedOn(): ComposedListing | undefined {
    return this.judged;
  }

  /** The latest status; undefined when the configuration has no `configStore`. */
  current(): StoreStatus | undefined {
    const status = this.status.value;
    return status && { ...status, reason: this.reason };
  }

  /** Records why the store is not read now (null: it is read); kept apart from listings, which stop while it holds. */
  setUnreadReason(reason: string | null): void {
    this.reason = reason;
  }

  /**
   * Records the store's state, its refusals judged on `judged` (by default the listing they were judged on
   * before: a listing that adds or removes only ignored keys); reports refusals that are new (by key and reason) as events.
   */
  update(next: Omit<StoreStatus, 'reason'>, judged?: ComposedListing): void {
    if (judged) this.judged = judged;
    const before = new Set((this.status.value?.refused ?? []).map((entry) => `${entry.key}\n${entry.reason}`));
    this.status.next(next);
    for (const entry of next.refused) {
      if (!before.has(`${entry.key}\n${entry.reason}`)) this.refusedChanges.next({ type: 'config-store-refused', data: { key: entry.key, kind: entry.kind, reason: entry.reason, revision: next.revision ?? '' } });
    }
  }

  /** Records that `config` was composed from a listing read from the store since the start. */
  markShared(config: object): void {
    this.shared.add(config);
  }

  /** Whether `config` was composed from a listing read from the store (`markShared`): it holds the configuration the gateways share. */
  isShared(config: object): boolean {
    return this.shared.has(config);
  }

  /** Announces an applied revision. */
  applied(applied: StoreApplied): void {
    this.appliedSubject.next(applied);
  }
}

/** The config store's state in this process. */
export const configStoreState = new StoreState();

/** Calls `hook` after each applied store listing; returns the unsubscribe. */
export function onApplied(hook: (applied: StoreApplied) => void): () => void {
  const subscription = configStoreState.applied$.subscribe(hook);
  return () => subscription.unsubscribe();
}
