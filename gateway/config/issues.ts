import { isMap, isScalar, type Document, type LineCounter, type Node } from 'yaml';
import type { z } from 'zod';
import { closestName } from '../../src/closest-name.ts';
import { configSchema } from './schema.ts';
import { objectKeysAt } from './schema-keys.ts';
import { KNOWN_KEYS } from './schema-values.ts';

/** One reason a configuration file was refused: where (key path and line) and why. */
export interface ConfigIssue {
  /** Dotted key path in the file (`routes.1.service`), `(root)` for the whole document, empty when no key is involved (syntax, unreadable file). */
  readonly keyPath: string;
  /** 1-based line, when the place (or its nearest parent) exists in the file. */
  readonly line: number | undefined;
  readonly reason: string;
}

type Path = readonly PropertyKey[];

/** Turns zod issues into located config issues, sorted by line; union failures report the branch that fits the value. */
export function locateIssues(issues: readonly z.core.$ZodIssue[], document: Document, lines: LineCounter): ConfigIssue[] {
  const located: ConfigIssue[] = [];
  const visit = (issue: z.core.$ZodIssue, prefix: Path) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) located.push(at([...path, key], lineOfKey(document, lines, path, key), unknownKeyReason(key, path)));
      return;
    }
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const fitting = bestFittingBranches(issue.errors);
      if (fitting.length === 1) {
        for (const inner of fitting[0]!) visit(inner, path);
        return;
      }
      // Several object shapes fit equally (`{}`, or keys of both): the union's own message names
      // them, unless a key none of them knows is a near miss of one they do (`servce`): that
      // misspelling, not the choice of shape, is the mistake to point at.
      const misspelt = misspeltKeys(fitting, path);
      if (misspelt.length > 0) {
        for (const key of misspelt) located.push(at([...path, key], lineOfKey(document, lines, path, key), unknownKeyReason(key, path)));
        return;
      }
    }
    located.push(at(path, lineOfValue(document, lines, path), reasonOf(issue)));
  };
  for (const issue of issues) visit(issue, []);
  return located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** `key (line N): reason` issues joined by `; ` for one error message. */
export function describeIssues(issues: readonly ConfigIssue[]): string {
  return issues
    .map((issue) => {
      const line = issue.line === undefined ? '' : issue.keyPath ? ` (line ${issue.line})` : `line ${issue.line}`;
      const where = `${issue.keyPath}${line}`;
      return where ? `${where}: ${issue.reason}` : issue.reason;
    })
    .join('; ');
}

function at(path: Path, line: number | undefined, reason: string): ConfigIssue {
  return { keyPath: path.length === 0 ? '(root)' : path.map(String).join('.'), line, reason };
}

/**
 * The union branches the value most likely meant: those that fit its type, and among them those
 * that know most of its keys. Without the second rule `fallback: { status: x }` was judged by the
 * `{ service }` branch, whose "unknown field status" hides the bad status.
 */
function bestFittingBranches(branches: readonly (readonly z.core.$ZodIssue[])[]): (readonly z.core.$ZodIssue[])[] {
  const fitting = branches.filter((branch) => branch.every((inner) => !isTypeMismatch(inner)));
  const unknownKeys = (branch: readonly z.core.$ZodIssue[]) => branch.reduce((sum, inner) => sum + (inner.code === 'unrecognized_keys' && inner.path.length === 0 ? inner.keys.length : 0), 0);
  const fewest = Math.min(...fitting.map(unknownKeys));
  return fitting.filter((branch) => unknownKeys(branch) === fewest);
}

/**
 * The keys of an object that every one of `branches` refuses as unknown, none knows, and that are
 * within reach of a key one of them does know: `{ servce: a }` is no fallback shape, but plainly
 * meant `{ service: a }`. Not one whose near miss the object has already: in `{ status: 200,
 * service: x, statuss: 1 }` the shapes tie for `status` beside `service`, which the union's message
 * says, and "did you mean "status"?" would point at a key that is there.
 */
function misspeltKeys(branches: readonly (readonly z.core.$ZodIssue[])[], objectPath: Path): string[] {
  const unknownIn = (branch: readonly z.core.$ZodIssue[]) => new Set(branch.flatMap((inner) => (inner.code === 'unrecognized_keys' && inner.path.length === 0 ? inner.keys : [])));
  const unknown = branches.map(unknownIn);
  const [first, ...others] = unknown;
  // Every key of the object that some shape does not know: with shapes that tie, each key of one is unknown to another.
  const given = new Set(unknown.flatMap((keys) => [...keys]));
  const candidates = objectKeysAt(configSchema, objectPath);
  return [...(first ?? [])].filter((key) => {
    if (!others.every((keys) => keys.has(key)) || candidates.has(key)) return false;
    const meant = closestName(key, candidates);
    return meant !== undefined && !given.has(meant);
  });
}

/**
 * A branch failed on the value's type itself (not deeper), so it is not the branch the author meant.
 * A nested union whose every branch fails so counts too (`workers`' count is itself a union), or an
 * object given for `{ count }` would be read as a bad count rather than as that section.
 */
function isTypeMismatch(issue: z.core.$ZodIssue): boolean {
  if (issue.path.length > 0) return false;
  if (issue.code === 'invalid_union') return issue.errors.length > 0 && issue.errors.every((branch) => branch.some(isTypeMismatch));
  return issue.code === 'invalid_type' || issue.code === 'invalid_value';
}

function reasonOf(issue: z.core.$ZodIssue): string {
  // A record's key failed its own schema (a header name with a space): zod says only "Invalid key
  // in record". Its schema's reason is the one to give, naming the key unless it does already.
  if (issue.code === 'invalid_key' && issue.issues.length > 0) {
    const reason = issue.issues.map(reasonOf).join('; ');
    const key = JSON.stringify(String(issue.path.at(-1)));
    return reason.includes(key) ? reason : `${key}: ${reason}`;
  }
  return issue.message.replace(/^Invalid (input|option): /, '');
}

/**
 * An unknown key's reason, with the key it most likely meant among those valid in its object
 * (`from` is a jwtAuth key: no hint for a top-level `foo`), or a note that it is another section's.
 */
function unknownKeyReason(key: string, objectPath: Path): string {
  const candidates = objectKeysAt(configSchema, objectPath);
  // Known to another branch of a union (`service` beside `status` in a fallback): no "did you mean" itself.
  if (candidates.has(key)) return `field "${key}" does not go with the fields beside it`;
  const suggestion = closestName(key, candidates);
  if (suggestion === undefined && KNOWN_KEYS.has(key)) return `unknown field "${key}" (it belongs in another section)`;
  return `unknown field "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`;
}

/** Line of the node at `path`, or of its nearest ancestor present in the file (a missing key is reported at its parent). */
function lineOfValue(document: Document, lines: LineCounter, path: Path): number | undefined {
  for (let length = path.length; length >= 0; length -= 1) {
    const node = nodeAt(document, path.slice(0, length));
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

function lineOfKey(document: Document, lines: LineCounter, path: Path, key: string): number | undefined {
  const map = nodeAt(document, path);
  if (isMap(map)) {
    const pair = map.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
    if (isScalar(pair?.key) && pair.key.range) return lines.linePos(pair.key.range[0]).line;
  }
  return lineOfValue(document, lines, path);
}

function nodeAt(document: Document, path: Path): Node | undefined {
  if (path.length === 0) return document.contents ?? undefined;
  const node = document.getIn(path as unknown[], true);
  return node && typeof node === 'object' && 'range' in node ? (node as Node) : undefined;
}
