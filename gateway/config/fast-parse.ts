import jsYaml from 'js-yaml';

/**
 * The fast reader of configuration text. `yaml`'s `parseDocument` keeps a concrete syntax tree and
 * positions so that errors can name lines, which costs 1–3 s on a 10,000-route file; js-yaml reads
 * the same text in a few tens of milliseconds. The two differ at the edges (js-yaml is YAML 1.1 in
 * places, and more lenient about indentation), so js-yaml is only trusted on text that stays clear
 * of every construct where they were found to disagree; anything else, and any error, goes to the
 * `yaml` path, which stays the one that defines what a file means and says where it is wrong.
 */

/** YAML 1.2 core schema (no timestamps, no `yes`/`no` booleans) plus `<<` merge keys, as `yaml` reads with `merge: true`. */
const SCHEMA = jsYaml.CORE_SCHEMA.extend({ implicit: [(jsYaml as unknown as JsYamlTypes).types.merge] });

/** js-yaml exports its built-in types at run time; its type declarations leave them out. */
interface JsYamlTypes {
  readonly types: { readonly merge: jsYaml.Type };
}

/** `yaml`'s `maxAliasCount` in `toJS`: alias expansion beyond it is refused as a resource exhaustion attack. */
export const MAX_ALIAS_COUNT = 1_000;

/** A node property or indicator at the start of a token: after a line start, blank, flow indicator or `:`. */
const TOKEN_START = String.raw`(?:^|[\s\[{,:])`;
const ANCHORS = new RegExp(String.raw`${TOKEN_START}&[^\s,\[\]{}]`, 'gm');
const ALIASES = new RegExp(String.raw`${TOKEN_START}\*[^\s,\[\]{}]`, 'gm');

/**
 * Text where js-yaml and `yaml` (1.2 core schema, merge keys, unique keys) were found to read
 * differently, or might: each is sent to the `yaml` path.
 */
const DISPUTED: readonly RegExp[] = [
  /^%/m, // A directive (`%YAML 1.1` turns `yes` into true in `yaml`, not in js-yaml).
  new RegExp(`${TOKEN_START}!`, 'm'), // Tags: `yaml` knows !!binary, !!set, !!timestamp and ignores unknown ones; js-yaml throws.
  new RegExp(String.raw`${TOKEN_START}[-+]\.[0-9]`, 'm'), // `-.5`: a float in YAML 1.2, a string in js-yaml.
  new RegExp(String.raw`${TOKEN_START}[-+]?0b`, 'm'), // `0b101`: a string in YAML 1.2 core, a number in js-yaml.
  new RegExp(String.raw`${TOKEN_START}-0(?:\.0*)?(?:[\s,\]}]|$)`, 'm'), // `-0`: negative zero in `yaml`, 0 in js-yaml.
  new RegExp(String.raw`${TOKEN_START}(?:~|null|Null|NULL)?\s*:(?:\s|$)`, 'm'), // A null or empty key: "" in `yaml`, "null" in js-yaml.
  /[\]}]\s*:(?:\s|$)/m, // A collection as a key: stringified differently.
  new RegExp(String.raw`${TOKEN_START}\?(?:\s|$)`, 'm'), // An explicit (complex) key.
];

/**
 * In block YAML, every line at column 0 must start a top-level `key:`, a comment or a document
 * marker: js-yaml accepts a plain or quoted scalar continued at column 0 inside a block mapping,
 * which `yaml` refuses as not indented enough.
 */
const TOP_LEVEL_LINE = /^(?:[A-Za-z_][\w-]*:(?:[ \t\r]|$)|#|---|\.\.\.|[ \t\r]|$)/;

/**
 * The content of configuration `text` read by js-yaml, or `undefined` when the text uses anything
 * where js-yaml and `yaml` may disagree, or when js-yaml finds an error (then the caller reads it
 * again with `yaml`, which says where the error is).
 */
export function parseFast(text: string): { readonly content: unknown } | undefined {
  if (!isUndisputed(text)) return undefined;
  try {
    // Unique keys (js-yaml throws on a duplicate, as `yaml` with `uniqueKeys` refuses one).
    return { content: jsYaml.load(text, { schema: SCHEMA }) };
  } catch {
    return undefined;
  }
}

/** True when `text` stays clear of every construct where the two readers disagree. */
export function isUndisputed(text: string): boolean {
  if (DISPUTED.some((pattern) => pattern.test(text))) return false;
  if (!aliasesWithinLimit(text)) return false;
  const first = /\S/.exec(text)?.[0];
  // A top-level flow collection (JSON) has no indentation rules to disagree on.
  if (first === '{' || first === '[') return true;
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    const stop = end === -1 ? text.length : end;
    // Only lines at column 0 need the key check; most lines of a big file are indented and skip the regex.
    const char = text.charCodeAt(start);
    if (char !== 0x20 && char !== 0x0a && !TOP_LEVEL_LINE.test(text.slice(start, Math.min(stop, start + 256)))) return false;
    if (!isSelfContained(text, start, stop)) return false;
    start = stop + 1;
  }
  return true;
}

/**
 * True when the line from `start` to `stop` closes every flow collection and quoted scalar it
 * opens: js-yaml reads one continued at column 0 inside a block mapping (`a: {b: 1,\nc: 2}`),
 * which `yaml` refuses. Quotes count only where a scalar can start, and a comment ends the line.
 */
function isSelfContained(text: string, start: number, stop: number): boolean {
  let depth = 0;
  let quote = 0;
  for (let index = start; index < stop; index += 1) {
    const char = text.charCodeAt(index);
    if (quote === 0x22) {
      if (char === 0x5c) index += 1;
      else if (char === 0x22) quote = 0;
      continue;
    }
    if (quote === 0x27) {
      if (char === 0x27) quote = 0; // '' (an escaped quote) closes and reopens, which counts the same.
      continue;
    }
    const before = index === start ? 0x20 : text.charCodeAt(index - 1);
    const atTokenStart = before === 0x20 || before === 0x09 || before === 0x5b || before === 0x7b || before === 0x2c || before === 0x3a;
    if ((char === 0x22 || char === 0x27) && atTokenStart) quote = char;
    else if (char === 0x23 && (before === 0x20 || before === 0x09) ) break;
    else if (char === 0x5b || char === 0x7b) depth += 1;
    else if (char === 0x5d || char === 0x7d) depth -= 1;
  }
  return depth === 0 && quote === 0;
}

/**
 * `yaml` refuses an anchor used N times whose node holds aliases expanding to M nodes when N × M
 * exceeds `MAX_ALIAS_COUNT`; js-yaml has no such limit. Without the node tree the bound is taken at
 * its worst: A alias uses over K anchors chain at most to the product of K parts of A.
 */
function aliasesWithinLimit(text: string): boolean {
  const aliases = text.match(ALIASES)?.length ?? 0;
  if (aliases === 0) return true;
  const anchors = Math.max(1, text.match(ANCHORS)?.length ?? 0);
  for (let chain = 1; chain <= Math.min(anchors, aliases); chain += 1) {
    if ((aliases / chain) ** chain > MAX_ALIAS_COUNT) return false;
  }
  return true;
}
