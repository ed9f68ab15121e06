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
  return changesWarnings(composed, file, alreadyRefused, [{ kind, name, value }], cache);
}

/**
 * What the gateways reading the store would log once `kind/name` is deleted: the refusals of other
 * objects the deletion makes refused (a route naming the middleware or mirror service deleted), judged
 * as `writeWarnings` judges a write.
 */
export function deleteWarnings(composed: ComposedListing, file: ConfigDocument, alreadyRefused: readonly StoreRefusal[], kind: StoreKind, name: string, cache?: ValidationCache): StoreRefusal[] {
  return changesWarnings(composed, file, alreadyRefused, [{ kind, name, deleted: true }], cache);
}

/** One change of a store object: a value written, or the object deleted. */
export type StoreChange = { readonly kind: StoreKind; readonly name: string } & ({ readonly value: unknown } | { readonly deleted: true });

/**
 * What the gateways would log once all of `changes` are made (`writeWarnings` for many, as
 * `switchboard config apply` makes them): judged in one merge of the store with every change, so a
 * route naming a middleware another change adds is no warning, and the cost is one merge, not one
 * per object. The whole refusal, if any, is said once, at the first change's key.
 */
export function changesWarnings(composed: ComposedListing, file: ConfigDocument, alreadyRefused: readonly StoreRefusal[], changes: readonly StoreChange[], cache?: ValidationCache): StoreRefusal[] {
  const { path, root, listing } = composed;
  const entries = new Map(listing.entries);
  const changed = new Set<string>();
  for (const change of changes) {
    const key = objectKey(root, change.kind, change.name);
    changed.add(key);
    if ('deleted' in change) entries.delete(key);
    else entries.set(key, encodeObject(change.value));
  }
  const merged = mergeWithStore(path, root, file, { ...listing, entries }, cache);
  // By key: a route's reason names its place in the merged document, which a write before it moves.
  const refusedBefore = new Map(alreadyRefused.map((entry) => [entry.key, entry]));
  // The reader keeps an object's last good value when a new value is refused (`LastGoodObjects`):
  // one it holds in force, or still keeps; an object refused with none kept has none to keep.
  const keepsLastGood = (key: string) => listing.entries.has(key) && (!refusedBefore.has(key) || refusedBefore.get(key)!.lastGoodInForce === true);
  const warnings = merged.refused
    .filter((entry) => changed.has(entry.key) || !refusedBefore.has(entry.key))
    .map((entry) => (changed.has(entry.key) && keepsLastGood(entry.key) ? { ...entry, reason: `${entry.reason}; ${LAST_GOOD_KEPT}`, lastGoodInForce: true as const } : entry));
  const first = changes[0];
  if (!merged.ok && first) warnings.push({ key: objectKey(root, first.kind, first.name), kind: first.kind, reason: `the configuration merged with the store would be refused as a whole, the running one staying: ${merged.error.message}` });
  return warnings;
}
