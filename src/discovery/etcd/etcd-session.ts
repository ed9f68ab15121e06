import { Range, type Etcd3, type IWatchResponse } from 'etcd3';
import type { ConnectionCredentials } from '../../connection-credentials.ts';
import { RegistryError, RegistryRefusalError } from '../../errors.ts';
import { createEtcdClient } from './etcd-client.ts';
import { describeEtcdRefusal, isEtcdRefusal } from './etcd-refusal.ts';
import { isCompactedError, listPrefix, type PrefixListing } from './etcd-list.ts';
import { openPrefixWatch, type PrefixWatch } from './etcd-watch.ts';
import { StallDetector } from './stall-detector.ts';

/** How long a closing session waits for etcd to confirm the watch cancel before closing the client anyway. */
export const WATCH_CANCEL_GRACE_MS = 1_000;

/** Why a session ended; every reason but `closed` calls for a new session and a full re-list. */
export type SessionEndReason = 'compacted' | 'broken' | 'stalled' | 'closed';

/** The outcome of one session. */
export interface SessionEnd {
  readonly reason: SessionEndReason;
  /** How long the session served after its listing; undefined when it never completed one. */
  readonly listedForMs: number | undefined;
  readonly error?: unknown;
}

/**
 * The kind of problem that ended a session, for an `OutageLog`: etcd refusing the client (its user,
 * password or rights: the operator's to put right) or etcd not serving it. A refusal that follows an
 * outage is a new problem, not one more retry of it.
 */
export function sessionEndProblem(end: SessionEnd): 'refused' | 'unavailable' {
  return end.error instanceof RegistryRefusalError ? 'refused' : 'unavailable';
}

/** Options of one session. */
export interface EtcdSessionOptions {
  readonly endpoint: string;
  /** `<prefix>/`: the range that is listed and watched. */
  readonly keyPrefix: string;
  readonly requestTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly listPageSize?: number;
  /** TLS files and user/password of the client. */
  readonly credentials?: ConnectionCredentials | undefined;
}

/** Where a session delivers what it reads; neither callback may throw. */
export interface EtcdSessionHandlers {
  /** The full listing, before the watch starts. */
  onListed(listing: PrefixListing): void;
  /** Each watch response, in revision order. */
  onWatchResponse(response: IWatchResponse): void;
}

/**
 * One client's life: list the prefix, watch it from the listing's revision + 1, and probe for
 * stalls, until the first failure or `close()`. A session never recovers in place; the provider
 * starts a new one (new client, new connections, full re-list), which keeps every path the same.
 */
export class EtcdSession {
  private readonly client: Etcd3;
  private readonly detector: StallDetector;
  private readonly ended: Promise<SessionEnd>;
  private finish: (reason: SessionEndReason, error?: unknown) => void = () => undefined;
  private watch: PrefixWatch | undefined;
  private createTimer: NodeJS.Timeout | undefined;
  private listedAt: number | undefined;
  private done = false;
  /** The watch has delivered every event up to this revision (listing included)… */
  private deliveredRevision = 0n;
  /** …which leaves this many keys under the prefix. */
  private deliveredKeys = 0;
  /** Store revision at which a probe last found the watch caught up; the store has not moved while it is current. */
  private caughtUpAt = -1n;

  constructor(
    private readonly options: EtcdSessionOptions,
    private readonly handlers: EtcdSessionHandlers,
  ) {
    this.client = createEtcdClient({ endpoint: options.endpoint, requestTimeoutMs: options.requestTimeoutMs, credentials: options.credentials });
    this.detector = new StallDetector({
      stallTimeoutMs: options.stallTimeoutMs,
      // etcd refusing the probe's read means the user lost its right to the prefix (or auth was turned
      // on): end the session now, so the re-list says so, instead of waiting out the stall timeout.
      probe: () =>
        this.watchCaughtUp().catch((error: unknown) => {
          if (isEtcdRefusal(error)) this.finish('broken', error);
          throw error;
        }),
      onStall: (silentMs) => this.finish('stalled', new RegistryError(`etcd ${options.endpoint} silent for ${silentMs} ms`)),
    });
    this.ended = new Promise((resolve) => {
      this.finish = (reason, error) => {
        if (this.done) return;
        this.done = true;
        const listedForMs = this.listedAt === undefined ? undefined : Date.now() - this.listedAt;
        const described = describeEtcdRefusal(error, { endpoint: options.endpoint, key: options.keyPrefix, right: 'read', username: options.credentials?.username });
        resolve({ reason, listedForMs, ...(described === undefined ? {} : { error: described }) });
      };
    });
  }

  /** Runs the session to its end and releases the client; never rejects. */
  async run(): Promise<SessionEnd> {
    this.start().catch((error: unknown) => this.finish(isCompactedError(error) ? 'compacted' : 'broken', error));
    const end = await this.ended;
    this.detector.stop();
    clearTimeout(this.createTimer);
    await this.watch?.cancel(end.reason === 'closed' ? WATCH_CANCEL_GRACE_MS : 0);
    this.client.close();
    return end;
  }

  /** Ends the session; `run()` resolves with reason `closed`. */
  close(): void {
    this.finish('closed');
  }

  private async start(): Promise<void> {
    const listing = await listPrefix(this.client, this.options.keyPrefix, this.options.listPageSize);
    if (this.done) return;
    this.listedAt = Date.now();
    this.deliveredRevision = BigInt(listing.revision);
    this.deliveredKeys = listing.kvs.length;
    this.handlers.onListed(listing);
    this.createTimer = setTimeout(
      () => this.finish('broken', new RegistryError(`etcd ${this.options.endpoint} did not create the watch within ${this.options.requestTimeoutMs} ms`)),
      this.options.requestTimeoutMs,
    );
    this.watch = openPrefixWatch(this.client, this.options.keyPrefix, String(BigInt(listing.revision) + 1n), {
      onCreated: () => {
        clearTimeout(this.createTimer);
        this.detector.alive();
      },
      onResponse: (response) => {
        this.detector.alive();
        this.noteDelivered(response);
        this.handlers.onWatchResponse(response);
      },
      onEnd: (reason, error) => this.finish(reason, error),
    });
    this.detector.start();
  }

  private noteDelivered(response: IWatchResponse): void {
    for (const { type, kv } of response.events) {
      const revision = BigInt(kv.mod_revision);
      if (revision > this.deliveredRevision) this.deliveredRevision = revision;
      if (type === 'Delete') this.deliveredKeys -= 1;
      else if (kv.version === '1') this.deliveredKeys += 1;
    }
  }

  /**
   * The stall probe: linearizable reads (they need a leader, so they also fail on a member cut off
   * from its quorum) of the prefix's key count and newest key. An answer is a sign of life only when
   * the watch has delivered that state: as many keys as the delivered events leave (a delete shows
   * only in the count) and no key modified after the delivered revision. A watch stream that went
   * silent while reads still work (a proxy that lost its upstream stream, a stuck server-side
   * watcher) is thus noticed as soon as the prefix changes without it. Finding the newest key makes
   * etcd read every key in range (20 ms for 10,000 keys on etcd 3.4), so it is skipped while the
   * store revision has not moved since that read last found the watch caught up.
   */
  private async watchCaughtUp(): Promise<boolean> {
    const range = Range.prefix(this.options.keyPrefix);
    const counted = await this.client.kv.range({ key: range.start, range_end: range.end, count_only: true });
    if (Number(counted.count) !== this.deliveredKeys) return false;
    if (BigInt(counted.header.revision) <= this.caughtUpAt) return true;
    const newest = await this.client.kv.range({ key: range.start, range_end: range.end, limit: 1, sort_target: 'Mod', sort_order: 'Descend', keys_only: true });
    const newestRevision = newest.kvs[0] === undefined ? 0n : BigInt(newest.kvs[0].mod_revision);
    const caughtUp = newestRevision <= this.deliveredRevision && Number(newest.count) === this.deliveredKeys;
    if (caughtUp) this.caughtUpAt = BigInt(newest.header.revision);
    return caughtUp;
  }
}
