import { z } from 'zod';

/** What a gateway writes about itself under `<root>/peers/<id>` (JSON). */
export interface PeerRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** The admin listener's `host:port`; null without one. */
  readonly admin: string | null;
  readonly version: string;
  /** ISO time the gateway started. */
  readonly startedAt: string;
  /** The last store revision this gateway applied; null before the first. */
  readonly revision: string | null;
  /** ISO time that revision was applied; null before the first. */
  readonly appliedAt: string | null;
  /**
   * `listingDigest` of the object entries applied with `revision`; absent before the first apply
   * and from gateways older than the field (they decode all the same and are compared by revision alone).
   */
  readonly digest?: string;
}

const peerRecordSchema = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number(),
  admin: z.string().nullable(),
  version: z.string(),
  startedAt: z.string(),
  revision: z.string().nullable(),
  appliedAt: z.string().nullable(),
  digest: z.string().optional(),
});

/** Reads a peer entry; undefined (never a throw) for a value that is not a peer record, so a stray key hides no other peer. */
export function decodePeerRecord(text: string): PeerRecord | undefined {
  try {
    const parsed = peerRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Orders two store revisions: etcd revisions and ZooKeeper zxids are decimal or hex counters, so a
 * longer one is newer and equal lengths compare as text. Null (nothing applied yet) is oldest.
 */
export function compareRevisions(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  const left = a.replace(/^(0x)?0*/i, '');
  const right = b.replace(/^(0x)?0*/i, '');
  if (left.length !== right.length) return left.length - right.length;
  return left < right ? -1 : left > right ? 1 : 0;
}
