import type { BackoffOptions } from '../../backoff.ts';
import { isZooKeeperError, maxZxid, zxidToString, type ZooKeeperReader, type ZooKeeperWatcher } from '../../zookeeper/index.ts';
import type { RawInstance } from '../instance-codec.ts';
import { CoalescedTask } from './coalesced-task.ts';

/** What a `ZooKeeperServiceSync` needs from the tree it belongs to. */
export interface ServiceSyncContext {
  readonly reader: ZooKeeperReader;
  /** The one watcher of the session: it arms the service's child watch and its instances' data watches. */
  readonly watcher: ZooKeeperWatcher;
  readonly backoff?: BackoffOptions;
  /**
   * True when `<servicePath>` missing means "no instances yet" (Dubbo's `providers` under a listed
   * interface): an existence watch waits for it and `gone` is never called. False: the service is gone.
   */
  readonly absentMeansEmpty?: boolean;
  /** Receives the whole instance set of the service, in listing order. */
  publish(service: string, entries: readonly RawInstance[], revision: string): void;
  /** The service znode is gone: the tree publishes an empty set and re-lists the root. */
  gone(service: string, revision: string): void;
  /** A read failed and will be retried with backoff. */
  failed(service: string, error: unknown, attempt: number): void;
}

interface CachedInstance {
  readonly data: Buffer | null;
  readonly mzxid: string;
}

/**
 * Keeps one service's instance set in step with `<servicePath>` within one session. Instance data
 * is cached per child and trusted while its data watch is armed, so a membership change reads
 * only the new children, and all those reads are issued at once (pipelined on the socket).
 */
export class ZooKeeperServiceSync {
  private readonly cache = new Map<string, CachedInstance>();
  /** Bumped by every data event of a child; a read issued before the bump is not cached. */
  private readonly epochs = new Map<string, number>();
  private readonly task: CoalescedTask;
  private disposed = false;
  private revision = '0';
  /** Set once a listing was published, so that a missing instances node is published empty only after it had entries. */
  private published = false;
  private firstRead: Promise<void> | undefined;
  /**
   * The children of the last listing, while its child watch is armed and has not fired: a data
   * change then re-reads only its child, since any membership change would have fired that watch
   * (ZooKeeper delivers it before anything read after it) and asked for a full re-list.
   */
  private listing: { readonly children: readonly string[]; readonly revision: string } | undefined;
  /** Bumped by every request for a full re-list; a listing read across a bump is not kept. */
  private listingEpoch = 0;

  constructor(
    readonly service: string,
    private readonly path: string,
    private readonly context: ServiceSyncContext,
  ) {
    this.task = new CoalescedTask(() => this.relist(), {
      onError: (error, attempt) => this.context.failed(service, error, attempt),
      ...(context.backoff ? { backoff: context.backoff } : {}),
    });
  }

  /** Re-lists the service; coalesces with a re-list in flight. Resolves when a re-list started after the call is published. */
  refresh(): Promise<void> {
    this.listing = undefined;
    this.listingEpoch += 1;
    return this.request();
  }

  private request(): Promise<void> {
    const run = this.task.request();
    this.firstRead ??= run;
    return run;
  }

  /** Resolves once the service has been read and published at least once (starting a read if none was). */
  settled(): Promise<void> {
    return this.firstRead ?? this.refresh();
  }

  /**
   * A child's data changed or the child went: forget its cached data and re-read it, re-listing
   * only when membership may have changed too. Resolves like `refresh`.
   */
  invalidate(child: string): Promise<void> {
    this.epochs.set(child, (this.epochs.get(child) ?? 0) + 1);
    this.cache.delete(child);
    return this.request();
  }

  /** Stops for good; a re-list in flight publishes nothing. */
  dispose(): void {
    this.disposed = true;
    this.task.dispose();
  }

  private async relist(): Promise<void> {
    let children: readonly string[];
    let revision: string;
    try {
      if (this.listing) ({ children, revision } = this.listing);
      else {
        const epoch = this.listingEpoch;
        const listing = await this.context.reader.getChildren(this.path, this.context.watcher);
        children = listing.children;
        revision = zxidToString(listing.stat.pzxid);
        // A child event during the read may describe a newer membership: the coalesced run that follows re-lists.
        if (epoch === this.listingEpoch) this.listing = { children, revision };
      }
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
      if (this.disposed) return;
      if (this.context.absentMeansEmpty === true) await this.awaitCreation();
      else this.context.gone(this.service, this.revision);
      return;
    }
    if (this.disposed) return;

    const listed = new Set(children);
    for (const name of this.cache.keys()) if (!listed.has(name)) this.cache.delete(name);
    for (const name of this.epochs.keys()) if (!listed.has(name)) this.epochs.delete(name);

    // Values are taken now: an invalidation during the reads must not drop a child from this
    // snapshot (it would look removed); the coalesced re-list that follows reads it again.
    const known = new Map<string, CachedInstance>();
    const reads: Promise<void>[] = [];
    for (const name of children) {
      const cached = this.cache.get(name);
      if (cached) known.set(name, cached);
      else reads.push(this.read(name, known));
    }
    const failures = (await Promise.allSettled(reads)).filter((result) => result.status === 'rejected');
    if (this.disposed) return;
    if (failures[0]) throw failures[0].reason;

    const entries: RawInstance[] = [];
    for (const name of children) {
      // A child without a value was deleted between the listing and its read.
      const instance = known.get(name);
      if (!instance) continue;
      entries.push({ service: this.service, name, key: `${this.path}/${name}`, data: instance.data });
      revision = maxZxid(revision, instance.mzxid);
    }
    this.revision = revision;
    this.published = true;
    this.context.publish(this.service, entries, revision);
  }

  /** Arms an existence watch on the missing path (its creation re-lists) and publishes no instances, once there were some. */
  private async awaitCreation(): Promise<void> {
    const stat = await this.context.reader.exists(this.path, this.context.watcher);
    if (this.disposed) return;
    // Created between the two reads: list it now (the coalesced task runs once more).
    if (stat) {
      void this.refresh();
      return;
    }
    this.cache.clear();
    this.epochs.clear();
    if (this.published) this.context.publish(this.service, [], this.revision);
  }

  private async read(name: string, known: Map<string, CachedInstance>): Promise<void> {
    const epoch = this.epochs.get(name) ?? 0;
    try {
      const { data, stat } = await this.context.reader.getData(`${this.path}/${name}`, this.context.watcher);
      const instance = { data, mzxid: zxidToString(stat.mzxid) };
      known.set(name, instance);
      // A data event after this read was issued may describe a newer value: serve this one once,
      // but leave it uncached so that the coalesced re-list reads the child again.
      if ((this.epochs.get(name) ?? 0) === epoch) this.cache.set(name, instance);
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
    }
  }
}
