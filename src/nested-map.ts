/** A two-level map: the values of `key1`, each by `key2`. */
export type NestedMap<K1, K2, V> = Map<K1, Map<K2, V>>;

/**
 * The value at `key1` then `key2` in `outer`, made by `create(key1, key2)` and stored on first
 * use. A hit is two Map lookups and allocates nothing, provided `create` is a function made once
 * (a method bound in a constructor, a module-level function), not a closure written at the call.
 */
export function nestedValue<K1, K2, V>(outer: NestedMap<K1, K2, V>, key1: K1, key2: K2, create: (key1: K1, key2: K2) => V): V {
  let inner = outer.get(key1);
  if (inner === undefined) {
    inner = new Map();
    outer.set(key1, inner);
  }
  let value = inner.get(key2);
  if (value === undefined) {
    value = create(key1, key2);
    inner.set(key2, value);
  }
  return value;
}
