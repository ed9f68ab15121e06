import type { BackoffOptions } from '../../backoff.ts';
import { isZooKeeperError, maxZxid, zxidToString, type ZooKeeperReader, type ZooKeeperWatcher } from '../../zookeeper/index.ts';
import type { RawInstance } from '../instance-codec.ts';
import { CoalescedTask } from '../../coalesced-task.ts';

/**
 * How the tree learns of changes. `one-shot`: each read arms a watch (the service's child watch,
 * each instance's data watch) that fires once. `recursive`: one persistent recursive watch on the
 * tree reports every creation, deletion and data change, so reads arm nothing. `unarmed`: the tree
 * uses a recursive watch but has not armed it on this connection yet, so nothing read can be trusted.
 */
export type WatchMode = 'one-shot' | 'recursive' | 'unarmed';

/** What a `ZooKeeperServiceSync` needs from the tree it belongs to. */
export interface ServiceSyncContext {
  readonly reader: ZooKeeperReader;
  /** The one watcher of the session: in `one-shot` mode it arms the service's child watch and its instances' data watches. */
  readonly watcher: ZooKeeperWatcher;
  /** The tree's current watch mode; `one-shot` when absent. */
  mode?(): WatchMode;
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
 * is cached per child and trusted while a watch reports its changes, so a membership change reads
 * only the new children, and all those reads are issued at once (pipelined on the socket). Under
 * a recursive watch, membership follows the creation and deletion events (`added`, `removed`): a
 * new instance costs one read after its event, where one-shot watches need a re-list first.
 */
export class ZooKeeperServiceSync {
  private readonly cache = new Map<string, CachedInstance>();
  /** Bumped by every data event of a child; a read issued before the bump is not cached. */
  private readonly epochs = new Map<string, number>();
  /** Bumped by `forget`; a read issued before the bump is not cached. */
  private generation = 0;
  private readonly task: CoalescedTask;
  private disposed = false;
  private revision = '0';
  /** Set once a listing was published, so that a missing instances node is published empty only after it had entries. */
  private published = false;
  private firstRead: Promise<void> | undefined;
  /**
   * The children of the last listing, while a watch keeps it current: in `one-shot` mode while its
   * child watch is armed and has not fired (a data change then re-reads only its child, since any
   * membership change would have fired that watch, which ZooKeeper delivers before anything read
   * after it, and asked for a full re-list); in `recursive` mode, kept in step by `added` and `removed`.
   */
  private listing: { readonly children: Set<string>; readonly revision: string } | undefined;
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
    this.distrustListing();
    return this.request();
  }

  /** The next run lists the service again, and a listing in flight is not kept. */
  private distrustListing(): void {
    this.listing = undefined;
    this.listingEpoch += 1;
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

  /**
   * Recursive watch: `child` was created. Added to the listing, if one is trusted, and read; with
   * none (a listing in flight may predate the creation), the service is re-listed. Resolves like `refresh`.
   */
  added(child: string): Promise<void> {
    if (this.listing) this.listing.children.add(child);
    else this.distrustListing();
    return this.invalidate(child);
  }

  /**
   * Recursive watch: `child` was deleted. The service is listed again, with no data read: the
   * event carries no zxid, and the published revision must move with the parent's pzxid, as it
   * does for a gateway that re-lists (peers of a config store compare revisions).
   */
  removed(child: string): Promise<void> {
    this.distrustListing();
    return this.invalidate(child);
  }

  /**
   * The tree's recursive watch is gone with its connection, and the changes made meanwhile were
   * never reported: drops the listing and every cached value, so the next re-list reads it all.
   */
  forget(): void {
    this.distrustListing();
    this.generation += 1;
    this.cache.clear();
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
      if (this.listing) {
        // A copy: `added` and `removed` change the listing while this run reads.
        children = [...this.listing.children];
        revision = this.listing.revision;
      } else {
        const epoch = this.listingEpoch;
        const mode = this.mode();
        const listing = await this.context.reader.getChildren(this.path, this.watcherFor(mode));
        children = listing.children;
        revision = zxidToString(listing.stat.pzxid);
        // A child event during the read may describe a newer membership: the coalesced run that follows re-lists.
        if (epoch === this.listingEpoch && mode !== 'unarmed') this.listing = { children: new Set(children), revision };
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
    // A recursive watch reports the creation without a watch of its own.
    const stat = await this.context.reader.exists(this.path, this.watcherFor(this.mode()));
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
    const generation = this.generation;
    const mode = this.mode();
    try {
      const { data, stat } = await this.context.reader.getData(`${this.path}/${name}`, this.watcherFor(mode));
      const instance = { data, mzxid: zxidToString(stat.mzxid) };
      known.set(name, instance);
      // A data event after this read was issued may describe a newer value: serve this one once,
      // but leave it uncached so that the coalesced re-list reads the child again. So is a value
      // read while no watch would report its changes.
      if ((this.epochs.get(name) ?? 0) === epoch && generation === this.generation && mode !== 'unarmed') this.cache.set(name, instance);
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
    }
  }

  private mode(): WatchMode {
    return this.context.mode?.() ?? 'one-shot';
  }

  /** The watch a read arms: the session's watcher in `one-shot` mode, none otherwise. */
  private watcherFor(mode: WatchMode): ZooKeeperWatcher | undefined {
    return mode === 'one-shot' ? this.context.watcher : undefined;
  }
}
