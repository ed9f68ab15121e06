import { Subject, Subscription } from 'rxjs';
import type { RawInstance } from '../../src/discovery/instance-codec.ts';
import { ZooKeeperTreeSync } from '../../src/discovery/zookeeper/zookeeper-tree-sync.ts';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger } from '../../src/logger.ts';
import { isZooKeeperError, maxZxid, readerFor, ZooKeeperSessionSupervisor, type ZooKeeperSession, type ZooKeeperSessionState } from '../../src/zookeeper/index.ts';
import { configStoreResyncsTotal } from './store-metrics.ts';
import { isStoreKind, objectKey, PEERS_DIR, zooKeeperStoreAuth, type StoreLocation } from './store-layout.ts';
import type { StoreListing, StoreSource, StoreSourceOptions } from './store-source.ts';

/** Quiet time gathering the per-kind publishes of one change (or of a whole re-list) into one listing. */
const GATHER_MS = 20;
/**
 * The longest a listing waits for that quiet: a writer that changes objects less than `GATHER_MS`
 * apart without pause (a script, `config apply` of many objects) would otherwise keep every gateway
 * from applying anything until it stops.
 */
const GATHER_MAX_MS = 250;

/** How long a listing still waits, at `now`, for the quiet after its last change, when its first came at `firstChangeAt`. */
export function gatherDelayMs(firstChangeAt: number, now: number): number {
  return Math.max(0, Math.min(GATHER_MS, firstChangeAt + GATHER_MAX_MS - now));
}

/**
 * A config store in ZooKeeper, read by the discovery provider's tree sync (`<root>/<kind>/<name>`
 * is the same shape as `<root>/<service>/<instance>`) under the same session supervisor, and watched
 * as it watches (one recursive watch on the root on ZooKeeper 3.6+, else a child watch on the root
 * and on each kind and a data watch on each object). A new session (after expiry) reads everything;
 * a reconnect on the same session reads everything again under the recursive watch and re-lists
 * against the cache under one-shot watches; while disconnected nothing is emitted, so the last
 * listing stays in force.
 */
export class ZooKeeperStoreSource implements StoreSource {
  private readonly subject = new Subject<StoreListing>();
  readonly listings$ = this.subject.asObservable();
  private readonly reasons = new Subject<string | null>();
  readonly reason$ = this.reasons.asObservable();
  private reason: string | null = null;
  /** Why each node the tree last failed to read (NO_AUTH) is unread, by the path the tree names; `reason$` holds while any is. */
  private readonly unread = new Map<string, string>();
  private readonly byKind = new Map<string, ReadonlyMap<string, string>>();
  /** The znodes below a child of the root that is no kind (`<root>/route/x`), by that child: ignored, and listed as such. */
  private readonly ignoredByDir = new Map<string, readonly string[]>();
  private readonly log;
  private readonly subscriptions = new Subscription();
  private supervisor: ZooKeeperSessionSupervisor | undefined;
  private tree: ZooKeeperTreeSync | undefined;
  /** Publishes are held until the tree's first full read, so a half-read store is never applied. */
  private synced = false;
  private revision = '0';
  private timer: NodeJS.Timeout | undefined;
  private firstChangeAt: number | undefined;
  /** Whether a kind was published since the last listing; false: only the ignored znodes changed (`StoreListing.ignoredOnly`). */
  private objectsChanged = false;
  private closing: Promise<void> | undefined;
  private sessions = 0;
  /** Set while disconnected: the next `connected` on the same session reads the tree again. */
  private reconnecting = false;
  /** `watch=one-shot` on the store URL turns the recursive watch off; outlives sessions, so an older server's UNIMPLEMENTED is heard once. */
  private readonly watches: { recursive: boolean };

  constructor(
    private readonly location: Extract<StoreLocation, { kind: 'zookeeper' }>,
    private readonly options: StoreSourceOptions,
  ) {
    this.log = componentLogger('config-store', { store: location.url });
    this.watches = { recursive: location.watch !== 'one-shot' };
  }

  start(): void {
    if (this.supervisor || this.closing) return;
    this.supervisor = new ZooKeeperSessionSupervisor({
      connectString: this.location.connectString,
      name: `config-store:${this.location.url}`,
      log: this.log,
      connectTimeoutMs: this.options.requestTimeoutMs,
      ...zooKeeperStoreAuth(this.location),
    });
    this.subscriptions.add(this.supervisor.session$.subscribe((session) => this.guard(() => this.onSession(session))));
    this.subscriptions.add(this.supervisor.state$.subscribe((state) => this.guard(() => this.onState(state))));
    this.subscriptions.add(this.supervisor.failures$.subscribe((reason) => this.setReason(reason)));
    this.supervisor.start();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer);
      this.subscriptions.unsubscribe();
      this.tree?.dispose();
      await this.supervisor?.close();
      this.subject.complete();
      this.reasons.complete();
    })();
    return this.closing;
  }

  private onSession(session: ZooKeeperSession): void {
    this.tree?.dispose();
    this.reconnecting = false;
    this.sessions += 1;
    if (this.sessions > 1) configStoreResyncsTotal.inc({ reason: 'new-session' });
    const tree: ZooKeeperTreeSync = new ZooKeeperTreeSync({
      provider: `config-store:${this.location.url}`,
      reader: readerFor(session.client),
      root: this.location.root,
      log: this.log,
      refusal: { connectString: this.location.connectString, username: this.location.credentials?.username },
      // A refused read is retried with backoff and its kind is not listed meanwhile: `reason$` says
      // why until it is read, also across listings of the kinds that read.
      readFailed: (error, path) => {
        if (tree !== this.tree || !isZooKeeperError(error, 'NO_AUTH')) return;
        this.unread.set(path, errorMessage(error));
        this.setReason(this.unreadReason());
      },
      readSucceeded: (path) => {
        if (tree === this.tree && this.unread.delete(path) && this.synced) this.setReason(this.unreadReason());
      },
      watches: this.watches,
      knownServices: () => [...this.byKind.keys()],
      publish: (kind, entries, revision) => {
        if (tree === this.tree) this.onPublish(kind, entries, revision);
      },
      // A kind's node gone means none of that kind.
      publishGone: (kind, revision) => {
        if (tree === this.tree) this.onPublish(kind, [], revision);
      },
    });
    this.tree = tree;
    this.synced = false;
    // The new tree reads everything again, and names again what it may not read.
    this.unread.clear();
    void tree.sync().then(() => {
      if (tree !== this.tree) return;
      this.synced = true;
      this.flush(true);
    });
  }

  private onState(state: ZooKeeperSessionState): void {
    if (state === 'disconnected') {
      this.reconnecting = true;
      this.setReason('disconnected from ZooKeeper');
    }
    // A new session follows, with a new tree that reads everything.
    if (state === 'expired') {
      this.reconnecting = false;
      this.setReason('ZooKeeper session expired');
    }
    if (state === 'connected' && this.reconnecting && this.tree) {
      // A reconnect on the same session, also during the first read: the watches may have missed
      // changes (a recursive watch is gone with its connection), so the tree reads again.
      this.reconnecting = false;
      configStoreResyncsTotal.inc({ reason: 'reconnect' });
      const tree = this.tree;
      void tree.sync().then(() => tree === this.tree && this.synced && this.flush(true));
    }
  }

  private onPublish(kind: string, entries: readonly RawInstance[], revision: string): void {
    if (kind === PEERS_DIR) return;
    if (!isStoreKind(kind)) {
      const keys = entries.map((entry) => `${this.location.root}/${kind}/${entry.name}`);
      // A stray znode's new data, or its directory read again, changes nothing listed.
      if (sameKeys(keys, this.ignoredByDir.get(kind) ?? [])) return;
      if (keys.length === 0) this.ignoredByDir.delete(kind);
      else this.ignoredByDir.set(kind, keys);
      return this.changed(revision);
    }
    const values = new Map<string, string>();
    for (const entry of entries) {
      const data = entry.data;
      values.set(objectKey(this.location.root, kind, entry.name), typeof data === 'string' ? data : data ? Buffer.from(data).toString('utf8') : '');
    }
    if (values.size === 0) this.byKind.delete(kind);
    else this.byKind.set(kind, values);
    this.objectsChanged = true;
    this.changed(revision);
  }

  /** Schedules a listing for a change at `revision`, once the change's publishes are gathered (`gatherDelayMs`). */
  private changed(revision: string): void {
    this.revision = maxZxid(this.revision, revision);
    const firstChangeAt = (this.firstChangeAt ??= Date.now());
    if (!this.synced) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), gatherDelayMs(firstChangeAt, Date.now()));
  }

  /** Sends the listing gathered; `full`: after a read of the whole tree, whose objects are news even if no kind was published. */
  private flush(full = false): void {
    clearTimeout(this.timer);
    if (this.closing) return;
    const entries = new Map<string, string>();
    for (const values of this.byKind.values()) for (const [key, value] of values) entries.set(key, value);
    const ignoredOnly = !full && !this.objectsChanged;
    this.subject.next({ revision: this.revision, entries, ignored: [...this.ignoredByDir.values()].flat(), ignoredOnly, receivedAt: this.firstChangeAt ?? Date.now() });
    this.firstChangeAt = undefined;
    this.objectsChanged = false;
    this.setReason(this.unreadReason());
  }

  /** The reason a part of the store is unread (the first refusal, and how many more); null when every part read. */
  private unreadReason(): string | null {
    const [first, ...more] = this.unread.values();
    if (first === undefined) return null;
    return more.length === 0 ? first : `${first} (and ${more.length} more unreadable node${more.length === 1 ? '' : 's'})`;
  }

  /** Sends `next` on `reason$` when it differs: a retry that fails the same way again is not news. */
  private setReason(next: string | null): void {
    if (next === this.reason) return;
    this.reason = next;
    this.reasons.next(next);
  }

  private guard(handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.log.error({ err: errorMessage(error) }, 'config store failed to handle a ZooKeeper session event');
    }
  }
}

/** Whether two lists of keys hold the same keys (each list without repeats). */
function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const known = new Set(b);
  return a.every((key) => known.has(key));
}
