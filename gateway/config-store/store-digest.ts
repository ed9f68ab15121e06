import { createHash } from 'node:crypto';

/**
 * A digest of a listing's object entries (keys and raw values, in key order): equal for two
 * listings that hold the same objects, whatever revision each was read at. etcd's revision also
 * moves with writes that are not objects (peer entries, other keys in the same etcd), so a
 * gateway that re-listed reports a higher revision than one that only watched, for the same
 * content; peers compare this digest to tell the two apart (see `PeerLag`).
 */
export function listingDigest(entries: ReadonlyMap<string, string>): string {
  const hash = createHash('sha256');
  for (const key of [...entries.keys()].sort()) {
    const value = entries.get(key)!;
    // Lengths first, so that no key or value can pass for the boundary between two others.
    hash.update(`${Buffer.byteLength(key)}:${Buffer.byteLength(value)}:`).update(key).update(value);
  }
  return hash.digest('base64url');
}
