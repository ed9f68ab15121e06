import { parse } from 'yaml';
import { SwitchboardError, yamlErrorReason } from '../../src/errors.ts';
import { OBJECT_NAME, STORE_KINDS, type StoreKind } from './store-layout.ts';

/** One object of a configuration, as the store keeps it. */
export interface ConfigObject {
  readonly kind: StoreKind;
  readonly name: string;
  readonly value: unknown;
}

/** A configuration file split into store objects, and the top-level keys that have no place in a store. */
export interface SplitConfig {
  readonly objects: readonly ConfigObject[];
  /** Keys such as `listen`, `registries`, `admin`: they configure one gateway, not the group. */
  readonly ignored: readonly string[];
}

/** A file that cannot be split: not YAML/JSON, a section of the wrong shape, a route without a usable name. */
export class ConfigSplitError extends SwitchboardError {
  constructor(path: string, reason: string) {
    super('SB_CONFIG_SPLIT', `${path}: ${reason}`);
  }
}

/**
 * Splits a configuration file's text (YAML or JSON) into store objects: each route (by its `name`,
 * which a stored route needs as its id), each `services.<name>`, `middlewares.<name>`,
 * `consumers.<name>` and `certificates.<name>`. Objects come in the store's apply order (services first, routes last);
 * values are kept as written. Throws `ConfigSplitError` naming `path` and the place.
 */
export function splitConfig(path: string, text: string): SplitConfig {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new ConfigSplitError(path, `not YAML or JSON (${yamlErrorReason(error)})`);
  }
  if (document === null || document === undefined) return { objects: [], ignored: [] };
  if (!isRecord(document)) throw new ConfigSplitError(path, 'expected a mapping of sections at the top level');
  const objects: ConfigObject[] = [];
  for (const kind of STORE_KINDS) {
    const section = document[kind];
    if (section === undefined || section === null) continue;
    if (kind === 'routes') objects.push(...splitRoutes(path, section));
    else {
      if (!isRecord(section)) throw new ConfigSplitError(path, `${kind}: expected a mapping of names to settings`);
      for (const [name, value] of Object.entries(section)) {
        if (!OBJECT_NAME.test(name)) throw new ConfigSplitError(path, `${kind}.${name}: a stored name must match ${OBJECT_NAME.source}`);
        objects.push({ kind, name, value });
      }
    }
  }
  const ignored = Object.keys(document).filter((key) => !(STORE_KINDS as readonly string[]).includes(key));
  return { objects, ignored };
}

function splitRoutes(path: string, section: unknown): ConfigObject[] {
  if (!Array.isArray(section)) throw new ConfigSplitError(path, 'routes: expected a list of routes');
  const seen = new Set<string>();
  return section.map((route: unknown, index) => {
    const name = isRecord(route) ? route.name : undefined;
    if (typeof name !== 'string') throw new ConfigSplitError(path, `routes.${index}.name: a stored route needs a name (its id in the store)`);
    if (!OBJECT_NAME.test(name)) throw new ConfigSplitError(path, `routes.${index}.name: "${name}" must match ${OBJECT_NAME.source}`);
    if (seen.has(name)) throw new ConfigSplitError(path, `routes.${index}.name: route name "${name}" is used twice`);
    seen.add(name);
    return { kind: 'routes', name, value: route };
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
