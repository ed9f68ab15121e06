import { Subject, Subscription, type Observable } from 'rxjs';
import { loadedForClose } from '../../src/close-while-loading.ts';
import { componentLogger } from '../../src/logger.ts';
import type { StoreLocation } from './store-layout.ts';

/** Every object key under a store's root with its raw value, as of one revision. */
export interface StoreListing {
  /** etcd's revision, or ZooKeeper's highest pzxid/mzxid seen, as a decimal string. */
  readonly revision: string;
  /** Object key (`<root>/<kind>/<name>`) → the value's UTF-8 text; peers and stray keys are left out. */
  readonly entries: ReadonlyMap<string, string>;
  /** Keys under the root that are neither objects nor peers (`ignoredKeyReason`), which the gateway ignores; none when absent. */
  readonly ignored?: readonly string[];
  /**
   * True when only `ignored` changed since the source's previous listing (a stray key added or
   * deleted): its objects are the previous listing's, so the reader updates what it lists as
   * ignored and composes nothing (no merge, no snapshot, no applied revision for peers).
   */
  readonly ignoredOnly?: boolean;
  /** `Date.now()` when the change that produced this listing reached the gateway (the watch event, or the listing's answer). */
  readonly receivedAt: number;
}

/** Reads a config store: whole listings, never deltas, and never an error (a lost store keeps the last listing). */
export interface StoreSource {
  /** One listing after each (re-)list and after each change; hot, the latest is not replayed. */
  readonly listings$: Observable<StoreListing>;
  /**
   * Why the store is not read now, each time that changes: a reason (the store unreachable, its
   * refusal of the user described) while the source retries, null once it lists again; hot.
   */
  readonly reason$: Observable<string | null>;
  /** Connects and starts listing; idempotent. */
  start(): void;
  /** Stops watching and closes the connection within the client's close bound; never rejects. */
  close(): Promise<void>;
}

/** Timeouts of a store source. */
export interface StoreSourceOptions {
  /** Deadline of every read (and of a ZooKeeper connection attempt). */
  readonly requestTimeoutMs: number;
}

/** Imports and builds the source of a store's kind, not started. */
export type StoreSourceLoader = (location: StoreLocation, options: StoreSourceOptions) => Promise<StoreSource>;

const loadStoreSource: StoreSourceLoader = (location, options) =>
  location.kind === 'etcd'
    ? import('./store-source-etcd.ts').then(({ EtcdStoreSource }) => new EtcdStoreSource(location, options))
    : import('./store-source-zookeeper.ts').then(({ ZooKeeperStoreSource }) => new ZooKeeperStoreSource(location, options));

/**
 * The source for a store location: etcd (list + watch from the listing's revision) or ZooKeeper
 * (child and data watches). The client library is loaded on `start()`, so a gateway without a
 * store (or with the other kind) never loads etcd3 or node-zookeeper-client. `close()` waits for a
 * load in progress up to `LOAD_WAIT_ON_CLOSE_MS`, then abandons it (a source it yields later is
 * closed unstarted), so that a load that hangs cannot hold the gateway's stop.
 */
export function createStoreSource(location: StoreLocation, options: StoreSourceOptions, load: StoreSourceLoader = loadStoreSource): StoreSource {
  const listings = new Subject<StoreListing>();
  const reasons = new Subject<string | null>();
  let loading: Promise<StoreSource | undefined> | undefined;
  const relays = new Subscription();
  let closed = false;
  return {
    listings$: listings.asObservable(),
    reason$: reasons.asObservable(),
    start() {
      loading ??= load(location, options).then((source) => {
        // close() closes it, unstarted.
        if (closed) return source;
        relays.add(source.listings$.subscribe(listings));
        relays.add(source.reason$.subscribe(reasons));
        source.start();
        return source;
      });
    },
    async close() {
      closed = true;
      const source = loading && (await loadedForClose(loading, 'the config store client', componentLogger('config-store', { store: location.url }), (late) => late.close()));
      relays.unsubscribe();
      await source?.close();
    },
  };
}
