import { decodeObject, objectKey, type StoreKind } from './store-layout.ts';
import type { StoreRefusal } from './store-objects.ts';
import type { ComposedListing } from './store-status.ts';
import { sameValue } from './store-writer-diff.ts';

/** How `GET /api/store` marks an object the gateway refused: why, and whether its last good value serves in its place. */
export interface ObjectRefusalMark {
  readonly reason: string;
  /** True: the value this gateway applied before stays in force; false: the object is left out of the configuration. */
  readonly lastGoodInForce: boolean;
}

/**
 * The store's objects as a writer listed them, each one the store's reader refused marked `refused`
 * (`ObjectRefusalMark`). Only a refusal of the value listed: one the reader judged before a newer
 * write (which it has not composed yet) is no verdict on what the listing shows. `values` false: the
 * entries hold no value to compare (unreadable ones): marked only when the value judged was not JSON
 * either, not by the refusal of a readable value that text was written over since.
 */
export function markRefused<T extends { readonly kind: StoreKind; readonly name: string; readonly value?: unknown }>(
  entries: readonly T[],
  refused: readonly StoreRefusal[],
  composed: ComposedListing | undefined,
  values = true,
): (T & { refused?: ObjectRefusalMark })[] {
  if (!composed || refused.length === 0) return [...entries];
  const byKey = new Map(refused.map((entry) => [entry.key, entry]));
  return entries.map((entry) => {
    const key = objectKey(composed.root, entry.kind, entry.name);
    const refusal = byKey.get(key);
    const judged = composed.listing.entries.get(key);
    if (!refusal || (values ? !judgedSame(key, judged, entry.value) : !judgedUnreadable(key, judged))) return entry;
    return { ...entry, refused: { reason: refusal.reason, lastGoodInForce: refusal.lastGoodInForce === true } };
  });
}

function judgedSame(key: string, judged: string | undefined, listed: unknown): boolean {
  if (judged === undefined) return false;
  try {
    return sameValue(decodeObject(key, judged), listed);
  } catch {
    return false;
  }
}

function judgedUnreadable(key: string, judged: string | undefined): boolean {
  if (judged === undefined) return false;
  try {
    decodeObject(key, judged);
    return false;
  } catch {
    return true;
  }
}
