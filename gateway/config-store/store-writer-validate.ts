import { isAbsolute } from 'node:path';
import { Document, LineCounter } from 'yaml';
import { z } from 'zod';
import { locateIssues } from '../config/issues.ts';
import { consumersSchema } from '../config/schema-access.ts';
import { namedCertificatesSchema } from '../config/schema-certificate.ts';
import { middlewaresSchema } from '../config/schema-middleware.ts';
import { routeSchema, serviceName } from '../config/schema-route.ts';
import { serviceSettingsSchema } from '../config/schema-service.ts';
import { OBJECT_NAME, type StoreKind } from './store-layout.ts';
import { storeObjectIssues, type ConfigDocument } from './store-objects.ts';

/** One reason an object was refused: where, as the file would show it (`routes[x].path`), and why. */
export interface ObjectIssue {
  readonly path: string;
  readonly reason: string;
}

/** An object ready to store (exactly what the file holds at its place), or why it is refused. */
export type ObjectCheck = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly issues: readonly ObjectIssue[] };

/** Each kind's schema, keyed as the file keys it: a record for the named kinds, one entry for a route. */
const SCHEMAS: Record<Exclude<StoreKind, 'routes'>, z.ZodType> = {
  services: z.record(serviceName, serviceSettingsSchema.nullable()),
  middlewares: middlewaresSchema,
  consumers: consumersSchema,
  certificates: namedCertificatesSchema,
};

/**
 * Validates one object with the schema the configuration file uses at its place (a route,
 * `services.<name>`, `middlewares.<name>`, `consumers.<name>`, `certificates.<name>`). Only the object itself is checked:
 * references to other objects (a route's middleware names) are the reader's to resolve, since the
 * file and the store together make the configuration. A route's `name` is its id: filled in when
 * absent, refused when it differs. The value stored is the input, not the parsed output, so the
 * store holds what the author wrote (durations as text, not milliseconds).
 */
export function checkStoreObject(kind: StoreKind, name: string, value: unknown): ObjectCheck {
  const place = kind === 'routes' ? `routes[${name}]` : `${kind}.${name}`;
  if (!OBJECT_NAME.test(name)) return refuse(place, `the name must match ${OBJECT_NAME.source}`);
  let stored = value;
  if (kind === 'routes') {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse(place, 'expected a route object');
    const named = (value as { name?: unknown }).name;
    if (named !== undefined && named !== name) return refuse(`${place}.name`, `must be "${name}", the route's id (or left out)`);
    stored = { name, ...value };
  }
  const result = kind === 'routes' ? routeSchema.safeParse(stored) : SCHEMAS[kind].safeParse({ [name]: stored });
  if (result.success) return kind === 'certificates' ? absolutePaths(place, stored) : { ok: true, value: stored };
  // Located against a document of the object at its place, so unknown keys get the file's "did you mean" hints.
  const prefix = kind === 'routes' ? [kind, name] : [kind];
  const placed = kind === 'routes' ? { routes: { [name]: stored } } : { [kind]: { [name]: stored } };
  const issues = result.error.issues.map((issue) => ({ ...issue, path: [...prefix, ...issue.path] }));
  const located = locateIssues(issues as z.core.$ZodIssue[], new Document(placed), new LineCounter());
  const objectPrefix = `${kind}.${name}`;
  return {
    ok: false,
    issues: located.map((issue) => ({
      path: issue.keyPath.startsWith(objectPrefix) ? `${place}${issue.keyPath.slice(objectPrefix.length)}` : issue.keyPath,
      reason: issue.reason,
    })),
  };
}

/**
 * The object's own schema (`checkStoreObject`), then the store reader's judgement beside `file`, a
 * gateway's configuration document (its `defaults` and other top-level settings, rules across the
 * file's sections): refused when a gateway with that file would refuse it at load and skip it with
 * a warning. The admin API judges a write so beside its own file; `switchboard config --against` beside others.
 */
export function checkStoreObjectBeside(file: ConfigDocument, kind: StoreKind, name: string, value: unknown): ObjectCheck {
  const check = checkStoreObject(kind, name, value);
  if (!check.ok) return check;
  const issues = storeObjectIssues(file, kind, name, check.value);
  if (issues.length === 0) return check;
  const place = kind === 'routes' ? `routes[${name}]` : `${kind}.${name}`;
  return { ok: false, issues: issues.map(({ where, inObject, message }) => ({ path: !inObject ? where : where === '' ? place : `${place}.${where}`, reason: message })) };
}

/** The issues as one line: `path: reason; path: reason`. */
export function describeObjectIssues(issues: readonly ObjectIssue[]): string {
  return issues.map((issue) => `${issue.path}: ${issue.reason}`).join('; ');
}

/**
 * A stored certificate names files on every gateway's disk: a relative path would mean a different
 * file beside each gateway's configuration, so the write API wants absolute ones.
 */
function absolutePaths(place: string, value: unknown): ObjectCheck {
  const files = value as { certFile: string; keyFile: string };
  for (const key of ['certFile', 'keyFile'] as const) {
    if (!isAbsolute(files[key])) return refuse(`${place}.${key}`, `a stored certificate's path must be absolute (each gateway reads "${files[key]}" from its own disk)`);
  }
  return { ok: true, value };
}

function refuse(path: string, reason: string): ObjectCheck {
  return { ok: false, issues: [{ path, reason }] };
}
