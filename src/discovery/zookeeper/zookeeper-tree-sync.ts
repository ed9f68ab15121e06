import type { Event } from 'node-zookeeper-client';
import type { BackoffOptions } from '../../backoff.ts';
import { errorMessage } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { registryEventsTotal } from '../../metrics.ts';
import { isZooKeeperError, zxidToString, type ZooKeeperReader } from '../../zookeeper/index.ts';
import type { RawInstance } from '../instance-codec.ts';
import { CoalescedTask } from './coalesced-task.ts';
import { ZooKeeperServiceSync } from './zookeeper-service-sync.ts';

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
  /** Services that currently have a published snapshot (from this or an earlier session). */
  knownServices(): readonly string[];
  publish(service: string, entries: readonly RawInstance[], revision: string): void;
}

const EVENT_KINDS: Record<number, string> = { 1: 'created', 2: 'deleted', 3: 'data_changed', 4: 'children_changed' };

/** ZooKeeper's own subtree: listed under a root of `/`, it is not a service. */
const ZOOKEEPER_SYSTEM_NODE = 'zookeeper';

/**
 * Mirrors `<root>/<service>/<instance>` for one session: a child watch on the root (an existence
 * watch while the root does not exist), a child watch per service and a data watch per instance,
 * every one re-armed by the read its notification triggers. With `service` set, the root is that
 * service's node: an existence watch on it, its child watch and its instances' data watches.
 */
export class ZooKeeperTreeSync {
  private readonly services = new Map<string, ZooKeeperServiceSync>();
  private readonly rootTask: CoalescedTask;
  private disposed = false;
  private synced = false;

  constructor(private readonly context: TreeSyncContext) {
    this.rootTask = new CoalescedTask(() => this.listRoot(), {
      onError: (error, attempt) => this.failed(context.root, error, attempt),
      ...(context.backoff ? { backoff: context.backoff } : {}),
    });
  }

  /**
   * Lists the root, then every service. The first call reads everything (a new session: the old
   * watches are dead); later calls (a reconnect on the same session) re-list each service against
   * its cache. Resolves once every service has been read and published; never rejects.
   */
  async sync(): Promise<void> {
    await this.rootTask.request();
    const first = !this.synced;
    await Promise.all([...this.services.values()].map((service) => (first ? service.settled() : service.refresh())));
    this.synced = true;
  }

  /** Stops for good: pending reads publish nothing and notifications are ignored. */
  dispose(): void {
    this.disposed = true;
    this.rootTask.dispose();
    for (const service of this.services.values()) service.dispose();
    this.services.clear();
  }

  /** The single watcher of the session: one function, so the library never stacks duplicate registrations. */
  private readonly watcher = (event: Event): void => {
    // Called from the library's socket handler: nothing may throw out of here.
    try {
      if (this.disposed) return;
      registryEventsTotal.inc({ provider: this.context.provider, kind: EVENT_KINDS[event.getType()] ?? 'other' });
      const path = event.getPath();
      const single = this.context.service;
      if (single !== undefined) {
        this.dispatchSingle(single, path);
        return;
      }
      if (path === this.context.root) {
        void this.rootTask.request();
        return;
      }
      const prefix = this.context.root === '/' ? '/' : `${this.context.root}/`;
      if (!path.startsWith(prefix)) return;
      const [service, ...below] = path.slice(prefix.length).split('/');
      const sync = service === undefined ? undefined : this.services.get(service);
      if (!sync) return;
      const { instancesNode } = this.context;
      if (instancesNode !== undefined && below.shift() !== instancesNode) return;
      const [instance, ...deeper] = below;
      if (deeper.length > 0) return;
      if (instance === undefined) void sync.refresh();
      else void sync.invalidate(instance);
    } catch (error) {
      this.context.log.error({ err: errorMessage(error) }, 'failed to handle a ZooKeeper notification');
    }
  };

  /** Notifications of a single-service root: the node itself (created, deleted, children) or one instance. */
  private dispatchSingle(service: string, path: string): void {
    const { root } = this.context;
    if (path === root) {
      void this.rootTask.request();
      void this.services.get(service)?.refresh();
      return;
    }
    const prefix = root === '/' ? '/' : `${root}/`;
    if (!path.startsWith(prefix)) return;
    const [instance, ...deeper] = path.slice(prefix.length).split('/');
    if (instance !== undefined && deeper.length === 0) void this.services.get(service)?.invalidate(instance);
  }

  private async listRoot(): Promise<void> {
    const { reader, root, service } = this.context;
    if (service !== undefined) {
      // The root is the service: it exists or not; its children are read by its service sync.
      const stat = await reader.exists(root, this.watcher);
      if (!this.disposed) this.reconcile(stat ? [service] : [], stat ? zxidToString(stat.pzxid) : '0');
      return;
    }
    let names: readonly string[];
    let revision: string;
    try {
      const listing = await reader.getChildren(root, this.watcher);
      names = listing.children;
      revision = zxidToString(listing.stat.pzxid);
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
      // Watch for the root to appear; if it appeared meanwhile, list it again.
      if (await reader.exists(root, this.watcher)) {
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
    }
    // The registry itself says these are gone: the only case where an empty set is published.
    for (const name of this.context.knownServices()) {
      if (!listed.has(name)) this.context.publish(name, [], revision);
    }
    for (const name of names) {
      if (this.services.has(name)) continue;
      const sync = this.createServiceSync(name);
      this.services.set(name, sync);
      void sync.refresh();
    }
  }

  private createServiceSync(name: string): ZooKeeperServiceSync {
    const { root, service, instancesNode } = this.context;
    const serviceNode = service !== undefined ? root : root === '/' ? `/${name}` : `${root}/${name}`;
    const path = instancesNode === undefined ? serviceNode : `${serviceNode}/${instancesNode}`;
    const sync: ZooKeeperServiceSync = new ZooKeeperServiceSync(name, path, {
      reader: this.context.reader,
      // The service node is listed under the root; a missing instances node only means no instances yet.
      absentMeansEmpty: instancesNode !== undefined,
      watcher: this.watcher,
      ...(this.context.backoff ? { backoff: this.context.backoff } : {}),
      publish: (service, entries, revision) => {
        if (!this.disposed) this.context.publish(service, entries, revision);
      },
      gone: (service, revision) => {
        if (this.disposed || this.services.get(service) !== sync) return;
        sync.dispose();
        this.services.delete(service);
        this.context.publish(service, [], revision);
        // It may have been re-created already; only a root listing can tell.
        void this.rootTask.request();
      },
      failed: (_service, error, attempt) => this.failed(path, error, attempt),
    });
    return sync;
  }

  private failed(path: string, error: unknown, attempt: number): void {
    const transient = isZooKeeperError(error, 'CONNECTION_LOSS') || isZooKeeperError(error, 'SESSION_EXPIRED');
    const level = transient && attempt < 3 ? 'debug' : 'warn';
    this.context.log[level]({ path, attempt, err: errorMessage(error) }, 'ZooKeeper read failed; retrying');
  }
}
