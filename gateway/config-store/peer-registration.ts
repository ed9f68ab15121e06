import { hostname } from 'node:os';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { EtcdRegistration } from '../../src/registration/registration-etcd.ts';
import { ZooKeeperRegistration } from '../../src/registration/registration-zookeeper.ts';
import type { Registration, RegisteredEntry } from '../../src/registration/registration.ts';
import packageJson from '../../package.json' with { type: 'json' };
import type { PeerRecord } from './peer-record.ts';
import { encodeObject, peerKey, STORE_READ_ACCESS, zooKeeperStoreAuth, type StoreLocation } from './store-layout.ts';

/** Rewrites of the peer entry for applied revisions are at most this frequent (a burst of applies costs one write). */
export const PEER_UPDATE_INTERVAL_MS = 250;

/** The gateway's version as its package states it. */
export const GATEWAY_VERSION: string = packageJson.version;

/** What a `PeerRegistration` needs. */
export interface PeerRegistrationOptions {
  readonly location: StoreLocation;
  /** The peer's id; `defaultPeerId()` when undefined. */
  readonly id: string | undefined;
  /** Lease TTL (etcd) or session timeout (ZooKeeper). */
  readonly ttlMs: number;
  /** The admin listener's `host:port`, null without one. */
  readonly admin: string | null;
  readonly log?: Logger;
  /** Builds the registration (tests pass a scripted one); the agent's etcd or ZooKeeper registration by default. */
  readonly registration?: (entry: RegisteredEntry<PeerRecord>) => Registration<PeerRecord>;
  readonly now?: () => number;
}

/** What a gateway applied, as its peer entry records it. */
export interface AppliedRevision {
  readonly revision: string;
  readonly appliedAt: Date | string | number;
  /** `listingDigest` of the applied object entries. */
  readonly digest?: string;
}

/** `<hostname>-<pid>`, made a valid store name: unique per running process, the same across reloads. */
export function defaultPeerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'gateway';
  return `${host.slice(0, 100)}-${process.pid}`;
}

/**
 * This gateway's entry under `<root>/peers/<id>`: an ephemeral znode or a leased key, written by
 * the registry agent's own registration (so session expiry and lease loss are handled the same
 * way: the entry is written again). `update()` records the store revision this gateway applied;
 * rewrites are coalesced to one per `PEER_UPDATE_INTERVAL_MS`. One per gateway: with workers,
 * the primary owns it.
 */
export class PeerRegistration {
  /** The id under which this gateway is listed. */
  readonly id: string;
  private record: PeerRecord;
  private readonly registration: Registration<PeerRecord>;
  private readonly now: () => number;
  private lastWriteAt = 0;
  private pending: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: PeerRegistrationOptions) {
    this.id = options.id ?? defaultPeerId();
    this.now = options.now ?? Date.now;
    const { location, ttlMs } = options;
    const log = options.log ?? componentLogger('peers');
    const entry: RegisteredEntry<PeerRecord> = { keyOf: (record) => peerKey(location.root, record.id), encode: encodeObject };
    this.registration =
      options.registration?.(entry) ??
      (location.kind === 'etcd'
        ? new EtcdRegistration<PeerRecord>({ endpoints: location.endpoints, prefix: location.root, ttlMs, entry, component: 'peer-registration', credentials: location.credentials })
        : new ZooKeeperRegistration<PeerRecord>({ connectString: location.connectString, root: location.root, sessionTimeoutMs: ttlMs, entry, component: 'peer-registration', readAccess: STORE_READ_ACCESS, ...zooKeeperStoreAuth(location) }));
    this.record = {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      admin: options.admin,
      version: GATEWAY_VERSION,
      startedAt: new Date(this.now()).toISOString(),
      revision: null,
      appliedAt: null,
    };
    log.info({ id: this.id, key: peerKey(location.root, this.id) }, 'registering as a peer in the config store');
  }

  /** What the entry says (or will say once written). */
  current(): PeerRecord {
    return this.record;
  }

  /** Starts registering; returns at once (the registration retries with backoff while the store is away). */
  start(): void {
    this.write();
  }

  /** Records the store revision (and content digest) this gateway applied last; written within `PEER_UPDATE_INTERVAL_MS`. */
  update(applied: AppliedRevision): void {
    if (this.closed) return;
    this.record = { ...this.record, revision: applied.revision, appliedAt: new Date(applied.appliedAt).toISOString(), digest: applied.digest };
    if (this.pending) return;
    const waitMs = this.lastWriteAt + PEER_UPDATE_INTERVAL_MS - this.now();
    if (waitMs <= 0) return this.write();
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.write();
    }, waitMs);
    this.pending.unref();
  }

  /** Removes the entry (bounded by `timeoutMs`; otherwise it goes with its lease or session) and closes the client. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.pending);
    await this.registration.deregister(timeoutMs);
    await this.registration.close();
  }

  private write(): void {
    if (this.closed) return;
    this.lastWriteAt = this.now();
    this.registration.register(this.record);
  }
}
