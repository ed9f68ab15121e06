import type { z } from 'zod';

/** The parts of a zod schema's definition that lead to the schemas inside it. */
interface WalkedDef {
  readonly type: string;
  readonly shape?: Readonly<Record<string, z.core.$ZodType>>;
  readonly element?: z.core.$ZodType;
  readonly valueType?: z.core.$ZodType;
  readonly innerType?: z.core.$ZodType;
  readonly in?: z.core.$ZodType;
  readonly out?: z.core.$ZodType;
  readonly left?: z.core.$ZodType;
  readonly right?: z.core.$ZodType;
  readonly options?: readonly z.core.$ZodType[];
  readonly getter?: () => z.core.$ZodType;
}

/** Deeper than any configuration file nests: a guard against a lazy schema that refers to itself. */
const MAX_DEPTH = 64;

/**
 * The keys of every object schema that `root` may apply at `path` (a zod issue path: object keys,
 * array indexes, record keys), for "did you mean" hints that name only keys valid there. Several
 * objects answer where a union has several object branches; none where the path leaves the schema.
 */
export function objectKeysAt(root: z.core.$ZodType, path: readonly PropertyKey[]): Set<string> {
  const keys = new Set<string>();
  const visit = (schema: z.core.$ZodType | undefined, at: number, depth: number): void => {
    if (!schema || depth > MAX_DEPTH) return;
    const def = schema._zod.def as unknown as WalkedDef;
    switch (def.type) {
      case 'object':
        if (at === path.length) for (const key of Object.keys(def.shape ?? {})) keys.add(key);
        else visit(def.shape?.[String(path[at])], at + 1, depth + 1);
        return;
      case 'array':
        return at < path.length ? visit(def.element, at + 1, depth + 1) : undefined;
      case 'record':
        return at < path.length ? visit(def.valueType, at + 1, depth + 1) : undefined;
      case 'union':
        for (const option of def.options ?? []) visit(option, at, depth + 1);
        return;
      case 'intersection':
        visit(def.left, at, depth + 1);
        return visit(def.right, at, depth + 1);
      case 'pipe':
        // `.transform()` validates on its `in` side, `z.preprocess()` on its `out` side.
        visit(def.in, at, depth + 1);
        return visit(def.out, at, depth + 1);
      case 'lazy':
        return visit(def.getter?.(), at, depth + 1);
      default:
        // optional, nullable, default, prefault, catch, readonly, nonoptional wrap one schema.
        return visit(def.innerType, at, depth + 1);
    }
  };
  visit(root, 0, 0);
  return keys;
}
