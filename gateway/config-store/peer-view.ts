import { compareRevisions, type PeerRecord } from './peer-record.ts';
import type { PeerList } from './peer-watcher.ts';

/** One peer as `GET /api/peers` shows it. */
export interface PeerViewEntry extends PeerRecord {
  /** True when this is the gateway answering. */
  readonly self: boolean;
  /** Behind the newest applied revision (with other content) for longer than `lagAfterMs`. */
  readonly lagging: boolean;
  /** Since when (ISO) it has been behind; null when it is not. */
  readonly behindSince: string | null;
}

/** What tells this gateway's own entry apart: its id, and the process that wrote it. */
export type PeerSelf = Pick<PeerRecord, 'id' | 'host' | 'pid' | 'startedAt'>;

/**
 * True when `peer` is the entry `self` wrote. The id alone is not enough: two gateways given one id
 * (or one default `<hostname>-<pid>`, as containers on the host's network that each run as pid 1)
 * share one entry, which the later one holds; the other must not take that entry for its own.
 */
export function isOwnEntry(peer: PeerRecord, self: PeerSelf): boolean {
  return peer.id === self.id && peer.host === self.host && peer.pid === self.pid && peer.startedAt === self.startedAt;
}

/** `GET /api/peers`: every gateway listed in the store, the newest revision any of them applied. */
export interface PeersView {
  readonly self: string;
  readonly count: number;
  readonly newestRevision: string | null;
  readonly lagAfterMs: number;
  readonly peers: readonly PeerViewEntry[];
}

/**
 * Tells which peers lag: a peer behind the newest applied revision is noted with the time it was
 * first seen behind, and shows `lagging` once that is older than `lagAfterMs` (a change takes a
 * watch round trip to reach every gateway, so being behind for a moment is normal). A peer whose
 * content digest equals the newest peer's applied the same objects and is not behind, whatever
 * its revision: etcd's revision also counts writes that are not objects (peer entries, other keys),
 * so a gateway that re-listed reports a higher one than a gateway that only watched.
 */
export class PeerLag {
  private readonly behindSince = new Map<string, number>();

  constructor(
    private readonly lagAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Notes the list as of now and returns its view; call on every list change and every view request. */
  view(list: PeerList, self: PeerSelf): PeersView {
    const now = this.now();
    let newest: PeerRecord | undefined;
    for (const peer of list.values()) if (compareRevisions(peer.revision, newest?.revision ?? null) > 0) newest = peer;
    for (const id of [...this.behindSince.keys()]) if (!list.has(id)) this.behindSince.delete(id);
    const peers = [...list.values()]
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((peer): PeerViewEntry => {
        const behind = compareRevisions(peer.revision, newest?.revision ?? null) < 0 && !sameContent(peer, newest);
        if (!behind) this.behindSince.delete(peer.id);
        else if (!this.behindSince.has(peer.id)) this.behindSince.set(peer.id, now);
        const since = this.behindSince.get(peer.id);
        return { ...peer, self: isOwnEntry(peer, self), lagging: since !== undefined && now - since > this.lagAfterMs, behindSince: since === undefined ? null : new Date(since).toISOString() };
      });
    return { self: self.id, count: list.size, newestRevision: newest?.revision ?? null, lagAfterMs: this.lagAfterMs, peers };
  }
}

/** Both applied the same objects (a peer older than the digest field is never taken as such). */
function sameContent(peer: PeerRecord, newest: PeerRecord | undefined): boolean {
  return peer.digest !== undefined && peer.digest === newest?.digest;
}
