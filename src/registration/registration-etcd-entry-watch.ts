import type { Etcd3, IWatchResponse } from 'etcd3';
import { openKeyWatch, type PrefixWatch, type WatchEndReason } from '../discovery/etcd/etcd-watch.ts';

/** What an `EtcdEntryWatch` reports, in the order etcd delivered it; none may throw. */
export interface EtcdEntryWatchHandlers {
  /** The key was deleted: by another client (`etcdctl del`), or with its lease (revoked, expired). */
  onDeleted(): void;
  /** The key was put on another lease than the watched one (`'0'`: on none), by another client. */
  onReplaced(lease: string): void;
  /** The key was put on the watched lease with `value`: a write of ours, or another client's that kept the lease (`etcdctl put --ignore-lease`). */
  onPut(value: string): void;
  /**
   * Called at most once, when the watch ended by itself (a broken stream, a server's cancel, no
   * creation within the deadline); `resumeRevision` is the first revision it has not delivered.
   * Not called after `cancel()`.
   */
  onEnd(reason: WatchEndReason, error: unknown, resumeRevision: bigint): void;
}

/**
 * Watches the one key a registration put on its lease, from the revision after that put: a lease
 * that lives on says nothing of a key another client deleted, only a watch does.
 */
export class EtcdEntryWatch {
  private readonly watch: PrefixWatch;
  private readonly createTimer: NodeJS.Timeout;
  private nextRevision: bigint;
  private ended = false;

  /**
   * @param leaseId the lease the key was put on: a put on another one is reported by `onReplaced`.
   * @param createTimeoutMs how long etcd may take to create the watch before it counts as ended.
   */
  constructor(
    client: Etcd3,
    readonly key: string,
    readonly leaseId: string,
    fromRevision: bigint,
    createTimeoutMs: number,
    private readonly handlers: EtcdEntryWatchHandlers,
  ) {
    this.nextRevision = fromRevision;
    this.createTimer = setTimeout(() => this.end('broken', new Error(`etcd did not create the watch on ${key} within ${createTimeoutMs} ms`)), createTimeoutMs);
    this.watch = openKeyWatch(client, key, String(fromRevision), {
      onCreated: () => clearTimeout(this.createTimer),
      onResponse: (response) => this.deliver(response),
      onEnd: (reason, error) => this.end(reason, error),
    });
  }

  /** Stops the watch: no handler is called from now on. Waits up to `graceMs` for etcd to confirm; never rejects. */
  cancel(graceMs: number): Promise<void> {
    this.ended = true;
    clearTimeout(this.createTimer);
    return this.watch.cancel(graceMs);
  }

  private deliver(response: IWatchResponse): void {
    if (this.ended) return;
    for (const { type, kv } of response.events) {
      if (kv.key.toString() !== this.key) continue;
      const revision = BigInt(kv.mod_revision);
      if (revision >= this.nextRevision) this.nextRevision = revision + 1n;
      if (type === 'Delete') this.handlers.onDeleted();
      else if (kv.lease !== this.leaseId) this.handlers.onReplaced(kv.lease);
      else this.handlers.onPut(kv.value.toString());
      // A handler may have cancelled this watch (a deregistration): the rest is not ours to report.
      if (this.ended) return;
    }
  }

  private end(reason: WatchEndReason, error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.createTimer);
    // etcd3 re-creates the stream of a watcher still attached to its client: detach it now.
    void this.watch.cancel(0);
    this.handlers.onEnd(reason, error, this.nextRevision);
  }
}
