import zookeeper, { type Event } from 'node-zookeeper-client';
import type { BackoffOptions } from '../../backoff.ts';
import { errorMessage } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { registryEventsTotal } from '../../metrics.ts';
import { isZooKeeperError, zxidToString, type ZooKeeperReader } from '../../zookeeper/index.ts';
import { describeZooKeeperRefusal, type ZooKeeperRefusalContext } from '../../zookeeper/zookeeper-refusal.ts';
import type { RawInstance } from '../instance-codec.ts';
import { CoalescedTask } from '../../coalesced-task.ts';
import { ZooKeeperServiceSync, type WatchMode } from './zookeeper-service-sync.ts';

/** What a tree sync reads from and writes to; one tree sync lives exactly as long as one session. */
export interface TreeSyncContext {
  readonly provider: string;
  readonly reader: ZooKeeperReader;
  /** The services root, normalised: absolute, no trailing slash (except `/` itself). */
  readonly root: string;
  /** Set when the root is this one service's node (`layout=single`): its children are the instances. */
  readonly service?: string;
  /** The child of each service node that holds its instances (Dubbo's `providers`); it may be missing while the service exists. */
  readonly instancesNode?: string;
  readonly log: Logger;
  readonly backoff?: BackoffOptions;
  /** The connect string and user a NO_AUTH names (what to grant whom); a bare NO_AUTH without it. */
  readonly refusal?: ZooKeeperRefusalContext;
  /**
   * A read of `path` (the root, or a service's node for a read of it or of one of its children)
   * failed (a refusal described); it is retried with backoff. Called after the log line.
   */
  readFailed?(error: unknown, path: string): void;
  /** `path` (as `readFailed` names it) was read whole (the root listed, or a service's node and children read and published), or is gone (a service no longer listed). */
  readSucceeded?(path: string): void;
  /**
   * Whether to watch through one persistent recursive watch on the root (ZooKeeper 3.6+). Shared
   * by the trees of successive sessions: a server that answers `UNIMPLEMENTED` (and then closes
   * the connection) sets it to false, so that later sessions use one-shot watches without asking.
   */
  readonly watches: WatchPreference;
  /** Services that currently have a published snapshot (from this or an earlier session). */
  knownServices(): readonly string[];
  publish(service: string, entries: readonly RawInstance[], revision: string): void;
  /** The registry no longer lists `service` (its node is gone). */
  publishGone(service: string, revision: string): void;
}

const EVENT_KINDS: Record<number, string> = { 1: 'created', 2: 'deleted', 3: 'data_changed', 4: 'children_changed' };
const { NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED } = zookeeper.Event;

/** Whether a registry's trees use a recursive watch; one per provider or store, outliving its sessions. */
export interface WatchPreference {
  recursive: boolean;
}

/**
 * Whether a recursive watch suits the tree. Not under `/`, where it would report every change of
 * the whole ensemble, nor with an instances node (Dubbo), whose siblings (`consumers`, `routers`,
 * `configurators`) churn with every consumer: their events would cost more than the reads saved.
 */
function recursiveWatchFits(context: Pick<TreeSyncContext, 'root' | 'instancesNode'>): boolean {
  return context.root !== '/' && context.instancesNode === undefined;
}

/**
 * Where a notified path sits in the layout: the root (in the single-service layout also the node
 * whose children are the instances: `container`), a service node (`container` when its children
 * are the instances), a service's instances node (Dubbo's `providers`), or one instance.
 */
type Place =
  | { readonly kind: 'root' | 'service'; readonly container: ZooKeeperServiceSync | undefined }
  | { readonly kind: 'instances'; readonly sync: ZooKeeperServiceSync }
  | { readonly kind: 'instance'; readonly sync: ZooKeeperServiceSync; readonly name: string };

/** ZooKeeper's own subtree: listed under a root of `/`, it is not a service. */
const ZOOKEEPER_SYSTEM_NODE = 'zookeeper';

/**
 * Mirrors `<root>/<service>/<instance>` for one session. On ZooKeeper 3.6+ it arms one persistent
 * recursive watch on the root, again on every new connection, and follows its creation, deletion
 * and data events: reads arm nothing, and a new instance costs one read after its event. Otherwise
 * (an older server, `watches.recursive` false, a root of `/` or a layout with an instances node,
 * see `recursiveWatchFits`) one-shot watches: a child watch on the root (an existence watch while
 * the root does not exist), a child watch per service and a data watch per instance, every one
 * re-armed by the read its notification triggers. With `service` set, the root is that service's
 * node, and its children are the instances.
 */
export class ZooKeeperTreeSync {
  private readonly services = new Map<string, ZooKeeperServiceSync>();
  private readonly rootTask: CoalescedTask;
  private disposed = false;
  /** Calls of `sync` so far: the first reads everything; each later one (a reconnect) re-lists every service. */
  private syncs = 0;
  /** `recursive` once the server armed a recursive watch, `one-shot` when it cannot; undecided before the first answer. */
  private watching: 'recursive' | 'one-shot' | undefined;
  /** True while the recursive watch is armed on the current connection. */
  private armed = false;
  private unlisten: (() => void) | undefined;
  /** Callbacks of `sync` calls waiting for a read to be refused (NO_AUTH), by the path `failed` names. */
  private readonly refusalWaiters = new Map<string, Set<() => void>>();
  /** Paths (as `failed` names them) whose refusal was warned of and which have not read since: a retry refused again logs at debug. */
  private readonly warnedRefusals = new Set<string>();

  constructor(private readonly context: TreeSyncContext) {
    this.rootTask = new CoalescedTask(async () => {
      await this.listRoot();
      if (!this.disposed) this.succeeded(context.root);
    }, {
      onError: (error, attempt) => this.failed(context.root, error, attempt),
      ...(context.backoff ? { backoff: context.backoff } : {}),
    });
    const { reader } = context;
    if (context.watches.recursive && recursiveWatchFits(context) && reader.addRecursiveWatch && reader.listen) this.unlisten = reader.listen(this.recursiveWatcher);
    else this.watching = 'one-shot';
  }

  /**
   * Arms the recursive watch (on a new connection), lists the root, then every service. The first
   * call reads everything (a new session: the old watches are dead). Later calls (a reconnect on
   * the same session) re-list each service against its cache under one-shot watches, which the
   * library re-arms, and re-read everything under a recursive watch, whose changes in between were
   * never reported. Resolves once every service has been read and published, or with
   * `refusedSettles` also refused (NO_AUTH: it goes on being retried); never rejects.
   */
  async sync(options: { readonly refusedSettles?: boolean } = {}): Promise<void> {
    const first = this.syncs === 0;
    this.syncs += 1;
    if (this.watching !== 'one-shot') {
      // Also when the first sync is still reading: what it read on the old connection is not covered by a watch now.
      this.armed = false;
      for (const service of this.services.values()) service.forget();
    }
    await this.rootTask.request();
    await Promise.all(
      [...this.services].map(([name, service]) => {
        const read = first ? service.settled() : service.refresh();
        return options.refusedSettles ? this.readOrRefused(this.servicePath(name), read) : read;
      }),
    );
  }

  /** Resolves once `read` does, or once a read of `path` is refused. */
  private async readOrRefused(path: string, read: Promise<void>): Promise<void> {
    let wake!: () => void;
    const refused = new Promise<void>((resolve) => (wake = resolve));
    const waiters = this.refusalWaiters.get(path) ?? new Set<() => void>();
    this.refusalWaiters.set(path, waiters);
    waiters.add(wake);
    try {
      await Promise.race([read, refused]);
    } finally {
      waiters.delete(wake);
      if (waiters.size === 0) this.refusalWaiters.delete(path);
    }
  }

  /** Stops for good: pending reads publish nothing and notifications are ignored. */
  dispose(): void {
    this.disposed = true;
    this.unlisten?.();
    this.rootTask.dispose();
    for (const service of this.services.values()) service.dispose();
    this.services.clear();
  }

  /** The watch mode its service syncs read under. */
  private mode(): WatchMode {
    if (this.watching === 'one-shot') return 'one-shot';
    return this.armed ? 'recursive' : 'unarmed';
  }

  /** The single one-shot watcher of the session: one function, so the library never stacks duplicate registrations. */
  private readonly watcher = (event: Event): void => {
    // Called from the library's socket handler: nothing may throw out of here.
    try {
      if (this.disposed || this.watching !== 'one-shot') return;
      registryEventsTotal.inc({ provider: this.context.provider, kind: EVENT_KINDS[event.getType()] ?? 'other' });
      const place = this.locate(event.getPath());
      switch (place?.kind) {
        case 'root':
          void this.rootTask.request();
          void place.container?.refresh();
          return;
        case 'service':
          void place.container?.refresh();
          return;
        case 'instances':
          void place.sync.refresh();
          return;
        case 'instance':
          void place.sync.invalidate(place.name);
          return;
      }
    } catch (error) {
      this.context.log.error({ err: errorMessage(error) }, 'failed to handle a ZooKeeper notification');
    }
  };

  /** Every notification of the session's client while the tree uses a recursive watch. */
  private readonly recursiveWatcher = (event: Event): void => {
    try {
      const type = event.getType();
      // Children events come from one-shot watches only, never from a recursive one.
      if (this.disposed || this.watching === 'one-shot' || type === NODE_CHILDREN_CHANGED) return;
      const place = this.locate(event.getPath());
      if (!place) return;
      registryEventsTotal.inc({ provider: this.context.provider, kind: EVENT_KINDS[type] ?? 'other' });
      if (place.kind === 'instance') {
        if (type === NODE_CREATED) void place.sync.added(place.name);
        else if (type === NODE_DELETED) void place.sync.removed(place.name);
        else void place.sync.invalidate(place.name);
        return;
      }
      // Above the instances, only creation and deletion change what is listed.
      if (type === NODE_DATA_CHANGED) return;
      if (place.kind === 'instances') void place.sync.refresh();
      else {
        void this.rootTask.request();
        if (place.kind === 'root') void place.container?.refresh();
      }
    } catch (error) {
      this.context.log.error({ err: errorMessage(error) }, 'failed to handle a ZooKeeper notification');
    }
  };

  /** Where `path` sits in the layout; undefined outside the root, deeper than an instance, or under a service not listed. */
  private locate(path: string): Place | undefined {
    const { root, service: single, instancesNode } = this.context;
    let segments: string[];
    if (path === root) segments = [];
    else {
      const prefix = root === '/' ? '/' : `${root}/`;
      if (!path.startsWith(prefix)) return undefined;
      segments = path.slice(prefix.length).split('/');
    }
    if (single !== undefined) {
      const sync = this.services.get(single);
      if (segments.length === 0) return { kind: 'root', container: sync };
      return sync && segments.length === 1 ? { kind: 'instance', sync, name: segments[0]! } : undefined;
    }
    if (segments.length === 0) return { kind: 'root', container: undefined };
    const [name, ...below] = segments;
    const sync = this.services.get(name!);
    if (below.length === 0) return { kind: 'service', container: instancesNode === undefined ? sync : undefined };
    if (!sync) return undefined;
    if (instancesNode !== undefined) {
      if (below.shift() !== instancesNode) return undefined;
      if (below.length === 0) return { kind: 'instances', sync };
    }
    return below.length === 1 ? { kind: 'instance', sync, name: below[0]! } : undefined;
  }

  /** Arms the recursive watch on this connection, or settles on one-shot watches when the server has none. */
  private async armRecursiveWatch(): Promise<void> {
    try {
      await this.context.reader.addRecursiveWatch!(this.context.root);
      if (this.disposed) return;
      this.watching = 'recursive';
      this.armed = true;
    } catch (error) {
      if (!isZooKeeperError(error, 'UNIMPLEMENTED')) throw error;
      this.watching = 'one-shot';
      this.unlisten?.();
      this.context.log.warn({ root: this.context.root, err: errorMessage(error) }, 'ZooKeeper recursive watches unavailable (a server before 3.6 answers addWatch with UNIMPLEMENTED); using one-shot watches from now on');
      this.context.watches.recursive = false;
    }
  }

  private async listRoot(): Promise<void> {
    if (this.watching !== 'one-shot' && !this.armed) await this.armRecursiveWatch();
    const { reader, root, service } = this.context;
    // Under a recursive watch, no read arms a watch, and the root's creation is reported too.
    const watcher = this.watching === 'one-shot' ? this.watcher : undefined;
    if (service !== undefined) {
      // The root is the service: it exists or not; its children are read by its service sync.
      const stat = await reader.exists(root, watcher);
      if (!this.disposed) this.reconcile(stat ? [service] : [], stat ? zxidToString(stat.pzxid) : '0');
      return;
    }
    let names: readonly string[];
    let revision: string;
    try {
      const listing = await reader.getChildren(root, watcher);
      names = listing.children;
      revision = zxidToString(listing.stat.pzxid);
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
      // Watch for the root to appear; if it appeared meanwhile, list it again.
      if (watcher && (await reader.exists(root, watcher))) {
        // Created between the two reads: coalesce one more listing.
        void this.rootTask.request();
        return;
      }
      names = [];
      revision = '0';
    }
    if (this.disposed) return;
    this.reconcile(root === '/' ? names.filter((name) => name !== ZOOKEEPER_SYSTEM_NODE) : names, revision);
  }

  private reconcile(names: readonly string[], revision: string): void {
    const listed = new Set(names);
    for (const [name, sync] of this.services) {
      if (listed.has(name)) continue;
      sync.dispose();
      this.services.delete(name);
      // Nothing is left to read there: a refusal of it no longer stands.
      this.succeeded(this.servicePath(name));
    }
    // The registry itself says these are gone: the only case where a service is published as gone.
    for (const name of this.context.knownServices()) {
      if (!listed.has(name)) this.context.publishGone(name, revision);
    }
    for (const name of names) {
      if (this.services.has(name)) continue;
      const sync = this.createServiceSync(name);
      this.services.set(name, sync);
      void sync.refresh();
    }
  }

  /** The node a service's sync reads (its node, or its instances node), as `readFailed` names it. */
  private servicePath(name: string): string {
    const { root, service, instancesNode } = this.context;
    const serviceNode = service !== undefined ? root : root === '/' ? `/${name}` : `${root}/${name}`;
    return instancesNode === undefined ? serviceNode : `${serviceNode}/${instancesNode}`;
  }

  private createServiceSync(name: string): ZooKeeperServiceSync {
    const { instancesNode } = this.context;
    const path = this.servicePath(name);
    const sync: ZooKeeperServiceSync = new ZooKeeperServiceSync(name, path, {
      reader: this.context.reader,
      // The service node is listed under the root; a missing instances node only means no instances yet.
      absentMeansEmpty: instancesNode !== undefined,
      watcher: this.watcher,
      mode: () => this.mode(),
      ...(this.context.backoff ? { backoff: this.context.backoff } : {}),
      publish: (service, entries, revision) => {
        if (this.disposed) return;
        this.succeeded(path);
        this.context.publish(service, entries, revision);
      },
      gone: (service, revision) => {
        if (this.disposed || this.services.get(service) !== sync) return;
        sync.dispose();
        this.services.delete(service);
        this.succeeded(path);
        this.context.publishGone(service, revision);
        // It may have been re-created already; only a root listing can tell.
        void this.rootTask.request();
      },
      failed: (_service, error, attempt) => this.failed(path, error, attempt),
    });
    return sync;
  }

  /** `path` was read whole, or is gone: a later refusal of it is news again. */
  private succeeded(path: string): void {
    this.warnedRefusals.delete(path);
    this.context.readSucceeded?.(path);
  }

  private failed(path: string, failure: unknown, attempt: number): void {
    const error = this.context.refusal ? describeZooKeeperRefusal(failure, this.context.refusal) : failure;
    const transient = isZooKeeperError(error, 'CONNECTION_LOSS') || isZooKeeperError(error, 'SESSION_EXPIRED');
    // A refusal stands until an operator grants the right: warned once until the path reads (the
    // status keeps naming it), not at every retry, also when the retries began with another failure.
    const refusal = isZooKeeperError(error, 'NO_AUTH');
    const repeatedRefusal = refusal && this.warnedRefusals.has(path);
    if (refusal) this.warnedRefusals.add(path);
    const level = (transient && attempt < 3) || repeatedRefusal ? 'debug' : 'warn';
    this.context.log[level]({ path, attempt, err: errorMessage(error) }, 'ZooKeeper read failed; retrying');
    this.context.readFailed?.(error, path);
    if (isZooKeeperError(error, 'NO_AUTH')) for (const wake of this.refusalWaiters.get(path) ?? []) wake();
  }
}
