import { encodeObject, objectKey, type StoreKind } from './store-layout.ts';
import { LAST_GOOD_KEPT } from './store-last-good.ts';
import { mergeWithStore } from './store-config.ts';
import type { ConfigDocument, StoreRefusal, ValidationCache } from './store-objects.ts';
import type { ComposedListing } from './store-status.ts';

/**
 * What the gateways reading the store would log once `value` is written at `kind/name`, though the
 * write itself is valid: the object's refusals when merged with the rest of the store and the file
 * (a route naming a middleware or a mirror service that neither declares, a certificate file missing
 * on this host), and those of other objects the write makes refused (a route whose service it
 * changes). Judged as the reader judges a listing (`mergeWithStore`), beside the one it last
 * composed; objects in `alreadyRefused`, the reader's refusals now, are left out
 * (but this one), as the reader does not log them again. `cache` is the caller's, cleared whenever `file` changes.
 */
export function writeWarnings(composed: ComposedListing, file: ConfigDocument, alreadyRefused: readonly StoreRefusal[], kind: StoreKind, name: string, value: unknown, cache?: ValidationCache): StoreRefusal[] {
  return changeWarnings(composed, file, alreadyRefused, kind, name, encodeObject(value), cache);
}

/**
 * What the gateways reading the store would log once `kind/name` is deleted: the refusals of other
 * objects the deletion makes refused (a route naming the middleware or mirror service deleted), judged
 * as `writeWarnings` judges a write.
 */
export function deleteWarnings(composed: ComposedListing, file: ConfigDocument, alreadyRefused: readonly StoreRefusal[], kind: StoreKind, name: string, cache?: ValidationCache): StoreRefusal[] {
  return changeWarnings(composed, file, alreadyRefused, kind, name, undefined, cache);
}

/** The refusals once the object at `kind/name` holds `text` (undefined: deleted), beside `composed`. */
function changeWarnings(composed: ComposedListing, file: ConfigDocument, alreadyRefused: readonly StoreRefusal[], kind: StoreKind, name: string, text: string | undefined, cache: ValidationCache | undefined): StoreRefusal[] {
  const { path, root, listing } = composed;
  const key = objectKey(root, kind, name);
  const entries = new Map(listing.entries);
  if (text === undefined) entries.delete(key);
  else entries.set(key, text);
  const merged = mergeWithStore(path, root, file, { ...listing, entries }, cache);
  // By key: a route's reason names its place in the merged document, which a write before it moves.
  const known = new Set(alreadyRefused.map((entry) => entry.key));
  const earlier = listing.entries.get(key);
  // The reader keeps an object's last good value when a new value is refused (`LastGoodObjects`).
  const refusedNow = alreadyRefused.find((entry) => entry.key === key);
  const keepsLastGood = earlier !== undefined && (refusedNow === undefined || refusedNow.lastGoodInForce === true);
  const warnings = merged.refused
    .filter((entry) => entry.key === key || !known.has(entry.key))
    .map((entry) => (entry.key === key && keepsLastGood ? { ...entry, reason: `${entry.reason}; ${LAST_GOOD_KEPT}`, lastGoodInForce: true as const } : entry));
  if (!merged.ok) warnings.push({ key, kind, reason: `the configuration merged with the store would be refused as a whole, the running one staying: ${merged.error.message}` });
  return warnings;
}
