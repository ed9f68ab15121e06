import { NAMED_KINDS, objectKey, type NamedKind } from './store-layout.ts';
import type { ConfigDocument, StoreObjects, StoreRefusal } from './store-objects.ts';

/**
 * The file and the store as one document, in the file's own shape, so that it goes through the
 * same `parseConfig` as a file reload (and travels to workers as text). Precedence:
 *
 * - every top-level setting (listen, entryPoints, admin, registries, defaults, redis, …) is the file's;
 * - `services`, `middlewares`, `consumers` and `certificates`: the file's entries, then the store's; a store object
 *   replaces the file's entry of the same name;
 * - `routes`: the file's routes, then the store's in id order; a store route replaces the file's
 *   route of the same `name`.
 *
 * A store route naming a middleware that neither the file nor the store declares is kept, without
 * its middleware, as `unavailable` (it answers 503 with the reason, and never serves unprotected)
 * and reported as a refusal; its reason says which of them the store holds but refused (their keys
 * in `refusedKeys`), so that it points at that refusal rather than at a middleware never written.
 * The file's own references are not touched: the file alone was valid.
 */
export function mergeStoreDocument(root: string, file: ConfigDocument, objects: StoreObjects, refusedKeys: ReadonlySet<string> = new Set()): { document: ConfigDocument; refused: StoreRefusal[] } {
  const refused: StoreRefusal[] = [];
  const section = (kind: NamedKind): Record<string, unknown> | undefined => {
    const own = (file[kind] ?? {}) as Record<string, unknown>;
    if (objects[kind].size === 0) return file[kind] as Record<string, unknown> | undefined;
    return { ...own, ...Object.fromEntries(objects[kind]) };
  };
  const middlewares = section('middlewares');
  const storeRoutes = [...objects.routes].sort(([a], [b]) => a.localeCompare(b));
  const replaced = new Set(storeRoutes.map(([name]) => name));
  const fileRoutes = ((file.routes ?? []) as { name?: unknown }[]).filter((route) => typeof route.name !== 'string' || !replaced.has(route.name));
  const routes = storeRoutes.map(([name, value]) => {
    const route = value as { middlewares?: unknown };
    const missing = Array.isArray(route.middlewares) ? route.middlewares.filter((entry) => typeof entry !== 'string' || !middlewares || !Object.hasOwn(middlewares, entry)) : [];
    if (missing.length === 0) return route;
    const held = missing.filter((entry) => typeof entry === 'string' && refusedKeys.has(objectKey(root, 'middlewares', entry)));
    const unknown = missing.filter((entry) => !held.includes(entry));
    const names = (entries: unknown[]) => entries.map((entry) => `"${String(entry)}"`).join(', ');
    const reasons = [
      ...(unknown.length > 0 ? [`references middleware ${names(unknown)} that is declared neither in the file nor in the store`] : []),
      ...(held.length > 0 ? [`references middleware ${names(held)} whose store object is refused (see its own refusal)`] : []),
    ];
    const reason = reasons.join('; ');
    refused.push({ key: objectKey(root, 'routes', name), kind: 'routes', reason });
    const { middlewares: _dropped, ...rest } = route;
    return { ...rest, unavailable: `route ${name} ${reason}` };
  });
  const document: Record<string, unknown> = { ...file };
  for (const kind of NAMED_KINDS) {
    const merged = kind === 'middlewares' ? middlewares : section(kind);
    if (merged !== undefined) document[kind] = merged;
  }
  if (fileRoutes.length + routes.length > 0) document.routes = [...fileRoutes, ...routes];
  return { document, refused };
}
