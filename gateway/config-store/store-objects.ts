import { Document, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { MAX_ALIAS_COUNT } from '../config/fast-parse.ts';
import { locateIssues, type ConfigIssue } from '../config/issues.ts';
import { configSchema } from '../config/schema.ts';
import { decodeObject, OBJECT_NAME, parseObjectKey, STORE_KINDS, type StoreKind } from './store-layout.ts';

/** A store object left out of the configuration, with why; the rest of the store applies. */
export interface StoreRefusal {
  readonly key: string;
  readonly kind: StoreKind;
  readonly reason: string;
  /** Set when an earlier value of the object stays in force in its place (`LastGoodObjects`); absent when the object is left out. */
  readonly lastGoodInForce?: true;
}

/** The valid objects of a listing, by kind and name, as the file would hold them (raw JSON, not yet resolved). */
export type StoreObjects = { readonly [K in StoreKind]: ReadonlyMap<string, unknown> };

/** A raw document shaped like the configuration file (top-level keys to values). */
export type ConfigDocument = Readonly<Record<string, unknown>>;

/** The file's sections that store objects add to; every other top-level key stays the file's alone. */
export const STORE_SECTIONS: readonly StoreKind[] = STORE_KINDS;

/**
 * Validates every object of a listing on its own, with the file's zod schema: each object is put
 * into a one-object document beside the file's top-level settings (so a route's `entryPoints` and a
 * rate limit's `policy: redis` are checked against the file), and parsed. An object whose key is
 * not `<root>/<kind>/<name>` with a valid name, whose value is not JSON, that the schema refuses, or
 * a route whose `name` differs from its key's id, is refused alone. A route's references to named
 * middleware are checked later, against the merged document (`mergeStoreDocument`). With `cache`
 * (owned by the caller, cleared whenever `file` changes), an unchanged value is not validated again,
 * so a change to one object of thousands costs one validation.
 */
export function validateStoreObjects(root: string, entries: ReadonlyMap<string, string>, file: ConfigDocument, cache?: ValidationCache): { objects: StoreObjects; refused: StoreRefusal[] } {
  const context = withoutSections(file);
  const objects = { services: new Map<string, unknown>(), middlewares: new Map<string, unknown>(), consumers: new Map<string, unknown>(), certificates: new Map<string, unknown>(), routes: new Map<string, unknown>() };
  const refused: StoreRefusal[] = [];
  const seen = cache && new Set<string>();
  for (const [key, text] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
    const place = parseObjectKey(root, key);
    if (!place) continue;
    const refuse = (reason: string) => refused.push({ key, kind: place.kind, reason });
    if (!OBJECT_NAME.test(place.name)) {
      refuse(`"${place.name}" is not a valid object name (letters, digits, ".", "_" or "-", starting with a letter or digit, at most 128)`);
      continue;
    }
    let value: unknown;
    try {
      value = decodeObject(key, text);
    } catch (error) {
      refuse((error as Error).message.slice(key.length + 2));
      continue;
    }
    const cacheKey = `${key}\n${text}`;
    const cached = cache?.get(cacheKey);
    const reason = cached !== undefined ? (cached === VALID ? undefined : cached) : objectIssue(context, place.kind, place.name, value);
    seen?.add(cacheKey);
    if (cache && cached === undefined) cache.set(cacheKey, reason ?? VALID);
    if (reason !== undefined) refuse(reason);
    else objects[place.kind].set(place.name, place.kind === 'routes' ? { ...(value as object), name: place.name } : value);
  }
  // Values no longer in the store are forgotten, so the cache holds at most one listing's worth.
  if (cache && seen) for (const cacheKey of cache.keys()) if (!seen.has(cacheKey)) cache.delete(cacheKey);
  return { objects, refused };
}

const VALID = '';

/** Validation results by key and value text: `''` for valid, else the reason. */
export type ValidationCache = Map<string, string>;

/** Why one object is refused, or undefined when the schema accepts it. */
function objectIssue(context: ConfigDocument, kind: StoreKind, name: string, value: unknown): string | undefined {
  const issues = objectIssues(context, kind, name, value);
  return issues.length === 0 ? undefined : issues.map(({ where, message }) => (where === '' ? message : `${where}: ${message}`)).join('; ');
}

/** One reason the reader refuses an object: where (relative to the object, or the file's path when outside it; '' for the object itself) and why. */
export interface StoreObjectIssue {
  readonly where: string;
  /** Whether `where` lies inside the object. */
  readonly inObject: boolean;
  readonly message: string;
}

/**
 * Why every gateway reading the store beside `file` (the configuration file's document) would
 * refuse this one object, as `validateStoreObjects` judges it (the file's `defaults`, entry points
 * and other top-level settings applying); empty when it would take it. The admin API refuses such a
 * write instead of storing an object each gateway would skip with a warning.
 */
export function storeObjectIssues(file: ConfigDocument, kind: StoreKind, name: string, value: unknown): StoreObjectIssue[] {
  return objectIssues(withoutSections(file), kind, name, value);
}

function objectIssues(context: ConfigDocument, kind: StoreKind, name: string, value: unknown): StoreObjectIssue[] {
  let document: ConfigDocument;
  if (kind === 'routes') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return [{ where: '', inObject: true, message: 'a route is a JSON object' }];
    const routeName = (value as { name?: unknown }).name;
    if (routeName !== undefined && routeName !== name) return [{ where: '', inObject: true, message: `name "${String(routeName)}" differs from the key's id "${name}" (leave it out, or make them equal)` }];
    document = { ...context, routes: [{ ...value, name }] };
  } else document = { ...context, [kind]: { [name]: value } };
  const parsed = configSchema.safeParse(document);
  if (parsed.success) return [];
  // A reference to another object (a middleware of a route or an entry point, a route's mirror
  // service) is judged here in a document without the file's and the store's services, middlewares
  // and other routes: the merged document checks it (one still unknown there refuses that object alone).
  const issues = parsed.error.issues.filter((issue) => !isReferenceToOtherObjects(issue));
  // Worded as the file's check and the write API word them ("unknown field … (did you mean …)"), not in zod's own words.
  const located = locateIssues(issues, new Document(document), new LineCounter());
  return located.map((issue) => describeIssue(kind === 'routes' ? `${kind}.0` : `${kind}.${name}`, issue));
}

/** A route's or an entry point's reference to a middleware, or a route's to a mirror service, the document does not declare. */
function isReferenceToOtherObjects(issue: z.core.$ZodIssue): boolean {
  const [section, , field, sub] = issue.path;
  if ((section === 'routes' || section === 'entryPoints') && field === 'middlewares') return issue.message.startsWith('unknown middleware');
  return section === 'routes' && field === 'mirror' && sub === 'service' && issue.message.startsWith('unknown service');
}

/** The issue's path relative to the object itself (`place`, the file's `routes.0` or `services.x`, dropped), and its reason. */
function describeIssue(place: string, issue: ConfigIssue): StoreObjectIssue {
  const { keyPath, reason } = issue;
  if (keyPath === place) return { where: '', inObject: true, message: reason };
  if (keyPath.startsWith(`${place}.`)) return { where: keyPath.slice(place.length + 1), inObject: true, message: reason };
  return { where: keyPath, inObject: false, message: reason };
}

/** The file's document without the sections store objects contribute to. */
export function withoutSections(file: ConfigDocument): ConfigDocument {
  return Object.fromEntries(Object.entries(file).filter(([key]) => !(STORE_SECTIONS as readonly string[]).includes(key)));
}

/** A configuration file's text, which parsed already, as a plain document (anchors and merges expanded, `x-` keys dropped): what store objects are judged beside. */
export function fileDocumentOf(text: string): ConfigDocument {
  const content: unknown = parseDocument(text, { merge: true }).toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  if (typeof content !== 'object' || content === null || Array.isArray(content)) return {};
  return Object.fromEntries(Object.entries(content).filter(([key]) => !key.startsWith('x-')));
}
