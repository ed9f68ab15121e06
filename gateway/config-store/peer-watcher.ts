import { BehaviorSubject, type Observable, type Subscription } from 'rxjs';
import { DEFAULT_BACKOFF, backoffDelay } from '../../src/backoff.ts';
import { EtcdSession, sessionEndProblem } from '../../src/discovery/etcd/etcd-session.ts';
import type { ConnectionCredentials } from '../../src/connection-credentials.ts';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { OutageLog } from '../../src/outage-log.ts';
import { describeZooKeeperRefusal, digestUser } from '../../src/zookeeper/zookeeper-refusal.ts';
import { exists, getChildren, getData, isZooKeeperError, ZooKeeperSessionSupervisor, type ZooKeeperSession } from '../../src/zookeeper/index.ts';
import { decodePeerRecord, type PeerRecord } from './peer-record.ts';
import { PEERS_DIR, type StoreLocation } from './store-layout.ts';

/** Deadline of every read of the peer list (etcd range, ZooKeeper children and data). */
export const PEER_READ_TIMEOUT_MS = 3_000;
/** An etcd watch silent this long is probed; one that does not answer is replaced. */
const ETCD_STALL_TIMEOUT_MS = 10_000;

/** The peers listed in the store, by id; the map is replaced (never mutated) on every change. */
export type PeerList = ReadonlyMap<string, PeerRecord>;

/** What a `PeerWatcher` needs. */
export interface PeerWatcherOptions {
  readonly location: StoreLocation;
  /** ZooKeeper session timeout of the watcher's own session. */
  readonly sessionTimeoutMs: number;
  readonly log?: Logger;
}

/**
 * Lists `<root>/peers` and follows it: etcd through the discovery's list-then-watch session (re-list
 * on compaction, broken stream or stall, rotating members), ZooKeeper through a supervised session
 * with child and data watches (everything re-read on a new session). A value that is not a peer
 * record is skipped. While the store is away the last list stays: a peer leaves only when the
 * store says so. Every read is bounded by `PEER_READ_TIMEOUT_MS`.
 */
export class PeerWatcher {
  /** Replays the current list, then each change. */
  readonly peers$: Observable<PeerList>;
  private readonly peers = new BehaviorSubject<PeerList>(new Map());
  private readonly log: Logger;
  private readonly dir: string;
  private closed = false;
  private stop: (() => Promise<void>) | undefined;

  constructor(private readonly options: PeerWatcherOptions) {
    this.peers$ = this.peers.asObservable();
    this.log = options.log ?? componentLogger('peers');
    this.dir = `${options.location.root}/${PEERS_DIR}`;
  }

  /** The current list. */
  current(): PeerList {
    return this.peers.getValue();
  }

  /** Starts following the store; returns at once. */
  start(): void {
    const { location } = this.options;
    this.stop = location.kind === 'etcd' ? this.followEtcd(location.endpoints, location.credentials) : this.followZooKeeper(location.connectString, location.credentials?.zooKeeperDigest());
  }

  /** Stops following and releases the client, within about a second; the list completes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stop?.();
    this.peers.complete();
  }

  private publish(next: PeerList): void {
    if (this.closed || samePeers(this.peers.getValue(), next)) return;
    this.peers.next(next);
  }

  private followEtcd(endpoints: readonly string[], credentials: ConnectionCredentials | undefined): () => Promise<void> {
    const keyPrefix = `${this.dir}/`;
    let session: EtcdSession | undefined;
    let wake: (() => void) | undefined;
    const outage = new OutageLog(this.log, { failed: 'peer watch ended; the peer list stays as it was, re-listing', recovered: 'peer list read again: its outage is over' });
    const running = (async () => {
      let attempt = 0;
      let index = Math.floor(Math.random() * endpoints.length);
      while (!this.closed) {
        const endpoint = endpoints[index % endpoints.length]!;
        let entries = new Map<string, PeerRecord>();
        session = new EtcdSession(
          { endpoint, keyPrefix, requestTimeoutMs: PEER_READ_TIMEOUT_MS, stallTimeoutMs: ETCD_STALL_TIMEOUT_MS, credentials },
          {
            onListed: (listing) => {
              attempt = 0;
              outage.recovered({ peers: listing.kvs.length });
              entries = new Map();
              for (const kv of listing.kvs) addEntry(entries, kv.key.toString().slice(keyPrefix.length), kv.value.toString());
              this.publish(entries);
            },
            onWatchResponse: (response) => {
              if (response.events.length === 0) return;
              entries = new Map(entries);
              for (const event of response.events) {
                const id = event.kv.key.toString().slice(keyPrefix.length);
                if (event.type === 'Delete') entries.delete(id);
                else addEntry(entries, id, event.kv.value.toString());
              }
              this.publish(entries);
            },
          },
        );
        const end = await session.run();
        session = undefined;
        if (this.closed || end.reason === 'closed') return;
        outage.failed({ endpoint, reason: end.reason, err: end.error === undefined ? undefined : errorMessage(end.error) }, { problem: sessionEndProblem(end) });
        index += 1;
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, backoffDelay(attempt++, DEFAULT_BACKOFF)).unref();
        });
      }
    })();
    return async () => {
      session?.close();
      wake?.();
      await running;
    };
  }

  private followZooKeeper(connectString: string, digest: string | undefined): () => Promise<void> {
    const supervisor = new ZooKeeperSessionSupervisor({ connectString, sessionTimeoutMs: this.options.sessionTimeoutMs, name: `peers:${connectString}`, log: this.log, ...(digest === undefined ? {} : { digest }) });
    let reading = false;
    let again = false;
    let retry: NodeJS.Timeout | undefined;
    // Watch events and new sessions all ask for one re-read; reads never overlap, a request during one causes one more.
    const sync = (): void => {
      clearTimeout(retry);
      if (this.closed) return;
      if (reading) return void (again = true);
      const session = supervisor.currentState() === 'connected' ? supervisor.currentSession() : undefined;
      if (!session) return;
      reading = true;
      withDeadline(this.readZooKeeper(session, sync), PEER_READ_TIMEOUT_MS)
        .then((list) => this.publish(list))
        .catch((error: unknown) => {
          this.log.warn({ err: errorMessage(describeZooKeeperRefusal(error, { connectString, username: digestUser(digest) })) }, 'peer list read failed; retrying');
          retry = setTimeout(sync, 1_000);
          retry.unref();
        })
        .finally(() => {
          reading = false;
          if (again) {
            again = false;
            sync();
          }
        });
    };
    const sessions: Subscription = supervisor.session$.subscribe(() => sync());
    const states = supervisor.state$.subscribe((state) => state === 'connected' && sync());
    supervisor.start();
    return async () => {
      clearTimeout(retry);
      sessions.unsubscribe();
      states.unsubscribe();
      await supervisor.close();
    };
  }

  private async readZooKeeper(session: ZooKeeperSession, onChange: () => void): Promise<PeerList> {
    const entries = new Map<string, PeerRecord>();
    let children: readonly string[];
    try {
      ({ children } = await getChildren(session.client, this.dir, onChange));
    } catch (error) {
      if (!isZooKeeperError(error, 'NO_NODE')) throw error;
      // No gateway registered yet: watch for the directory to appear.
      if (await exists(session.client, this.dir, onChange)) return this.readZooKeeper(session, onChange);
      return entries;
    }
    await Promise.all(
      children.map(async (id) => {
        try {
          const { data } = await getData(session.client, `${this.dir}/${id}`, onChange);
          addEntry(entries, id, data?.toString() ?? '');
        } catch (error) {
          // Gone between the listing and the read: the child watch reports it.
          if (!isZooKeeperError(error, 'NO_NODE')) throw error;
        }
      }),
    );
    return entries;
  }
}

function addEntry(entries: Map<string, PeerRecord>, id: string, text: string): void {
  const record = decodePeerRecord(text);
  if (record && record.id === id) entries.set(id, record);
}

function samePeers(a: PeerList, b: PeerList): boolean {
  if (a.size !== b.size) return false;
  for (const [id, record] of a) if (JSON.stringify(b.get(id)) !== JSON.stringify(record)) return false;
  return true;
}

function withDeadline<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from ZooKeeper within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
