import type { ConnectionCredentials } from '../connection-credentials.ts';
import type { Observable } from 'rxjs';
import type { Instance } from './instance.ts';

/**
 * Connection state of a provider. `stale` means the registry is unreachable and the last good
 * instance sets are still served; nothing is cleared because a registry went away.
 */
export type ProviderState = 'connecting' | 'connected' | 'stale' | 'closed';

/** A provider's state and since when it holds; emitted on every change. */
export interface ProviderStatus {
  readonly provider: string;
  readonly state: ProviderState;
  /** Epoch milliseconds of the transition into `state`. */
  readonly since: number;
  /** Why the provider left `connected`, when it did. */
  readonly reason?: string;
  /**
   * Set on the `stale` status of a provider serving its snapshot file's sets (see
   * `SnapshotFallbackProvider`): those sets are its last good ones, so removal protection treats the
   * registry's first listing as the end of an outage, as it would for a provider connected before.
   */
  readonly fromSnapshot?: true;
}

/**
 * The whole instance set of one service as one provider sees it (never a delta). An empty
 * `instances` means the registry itself says the service has no instances.
 */
export interface ProviderSnapshot {
  readonly provider: string;
  readonly service: string;
  /** Sorted by id; equal sets are equal arrays. */
  readonly instances: readonly Instance[];
  /** Registry revision the set was read at (ZooKeeper zxid, etcd revision, file mtime), as text. */
  readonly revision: string;
  /** Entries under the service that were skipped because their payload failed validation. */
  readonly invalid: number;
  /** The first `MAX_INVALID_ENTRIES_LISTED` of those entries, for operators; absent when none. */
  readonly invalidEntries?: readonly InvalidEntry[];
  /**
   * True when the registry no longer lists the service at all (its znode or its last key was
   * deleted, a list no longer names it), read from a live registry; `instances` is then empty.
   * Never set because a registry is unreachable. An empty set without it (a ZooKeeper service node
   * with no children, a list naming the service with no instances) means the service exists, empty.
   */
  readonly gone?: true;
  /**
   * Set when the set is not a listing of the registry but its last known set, read from the
   * provider's snapshot file because the registry could not be listed at start (see
   * `SnapshotFallbackProvider`): when that file was written (epoch ms). The registry's first listing
   * replaces it.
   */
  readonly fromSnapshot?: { readonly savedAt: number };
}

/** One registry entry skipped as invalid: where it is, why, and since when (epoch ms) it has been invalid. */
export interface InvalidEntry {
  readonly key: string;
  readonly reason: string;
  readonly since: number;
}

/** How many invalid entries a snapshot lists per service; the count covers all of them. */
export const MAX_INVALID_ENTRIES_LISTED = 20;

/**
 * A source of per-service snapshots: ZooKeeper, etcd or a file. Implementations share one core
 * (`ProviderStore`) for decoding, deduplication, status and metrics.
 */
export interface DiscoveryProvider {
  /** Unique among the configured providers, e.g. `zk:127.0.0.1:2181/services`; tags snapshots. */
  readonly name: string;
  /**
   * Replays the latest snapshot of every known service on subscribe, then emits each changed
   * set. Never errors; completes after `close()`.
   */
  readonly snapshots$: Observable<ProviderSnapshot>;
  /** Replays the current status on subscribe, then each transition. Completes after `close()`. */
  readonly status$: Observable<ProviderStatus>;
  /** Connects and starts watching; failures are retried with backoff and reported on `status$`. */
  start(): void;
  /** Stops watching and releases connections; idempotent. Snapshots already emitted stay valid. */
  close(): Promise<void>;
  /**
   * etcd and ZooKeeper: connects again with `credentials` (new TLS files or password; ZooKeeper's
   * digest user and password), at once, keeping the sets already published until the new
   * connection lists the registry.
   */
  replaceCredentials?(credentials: ConnectionCredentials | undefined): void;
}
