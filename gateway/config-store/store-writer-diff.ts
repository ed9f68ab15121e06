import { stringify } from 'yaml';
import type { ConfigObject } from './store-writer-split.ts';

/** `+` only in the file (apply creates it), `-` only in the store (`--prune` deletes it), `~` in both but different. */
export type ObjectChangeKind = '+' | '-' | '~';

/** One object that differs between a file and a store. */
export interface ObjectChange {
  readonly change: ObjectChangeKind;
  readonly kind: ConfigObject['kind'];
  readonly name: string;
  /** The change as unified-style lines of the object's YAML (`+ `, `- `, `  `). */
  readonly lines: readonly string[];
}

/**
 * The objects that differ between `stored` and `desired`, in the order of `desired` (then what only
 * the store holds). Values compare as JSON with keys sorted, so key order never counts as a change.
 */
export function diffObjects(stored: readonly ConfigObject[], desired: readonly ConfigObject[]): ObjectChange[] {
  const id = (object: ConfigObject) => `${object.kind}/${object.name}`;
  const inStore = new Map(stored.map((object) => [id(object), object]));
  const inFile = new Set(desired.map(id));
  const changes: ObjectChange[] = [];
  for (const object of desired) {
    const current = inStore.get(id(object));
    if (!current) changes.push({ change: '+', kind: object.kind, name: object.name, lines: yamlLines(object.value).map((line) => `+ ${line}`) });
    else if (!sameValue(current.value, object.value)) changes.push({ change: '~', kind: object.kind, name: object.name, lines: diffLines(yamlLines(current.value), yamlLines(object.value)) });
  }
  for (const object of stored) {
    if (!inFile.has(id(object))) changes.push({ change: '-', kind: object.kind, name: object.name, lines: yamlLines(object.value).map((line) => `- ${line}`) });
  }
  return changes;
}

/** Whether two JSON values are equal, whatever the order of their keys. */
export function sameValue(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The changes for a terminal: a `~ routes/x` header per object, then its lines. */
export function formatChanges(changes: readonly ObjectChange[]): string {
  return changes.map((change) => `${change.change} ${change.kind}/${change.name}\n${change.lines.map((line) => `    ${line}`).join('\n')}\n`).join('');
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, entry: unknown) =>
    typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? Object.fromEntries(Object.entries(entry).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : entry,
  );
}

function yamlLines(value: unknown): string[] {
  return stringify(value, { sortMapEntries: true }).trimEnd().split('\n');
}

/**
 * A line diff by longest common subsequence. Hand-written rather than a dependency: objects are
 * tens of lines, where the quadratic table costs nothing, and the output needs no hunks.
 */
export function diffLines(before: readonly string[], after: readonly string[]): string[] {
  const common: number[][] = Array.from({ length: before.length + 1 }, () => new Array<number>(after.length + 1).fill(0));
  for (let i = before.length - 1; i >= 0; i--) {
    for (let j = after.length - 1; j >= 0; j--) {
      common[i]![j] = before[i] === after[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const lines: string[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    if (i < before.length && j < after.length && before[i] === after[j]) {
      lines.push(`  ${before[i++]}`);
      j++;
    } else if (i < before.length && (j === after.length || common[i + 1]![j]! >= common[i]![j + 1]!)) lines.push(`- ${before[i++]}`);
    else lines.push(`+ ${after[j++]}`);
  }
  return lines;
}
