import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { objectKeysAt } from './schema-keys.ts';

const root = z.strictObject({
  list: z.array(z.strictObject({ a: z.string(), b: z.string() })).optional(),
  named: z.record(z.string(), z.strictObject({ c: z.number() }).nullable()),
  either: z.union([z.string(), z.strictObject({ d: z.number() }), z.strictObject({ e: z.number() })]).default('x'),
  cleaned: z.preprocess((value) => value, z.strictObject({ f: z.number() })),
  shaped: z.strictObject({ g: z.number() }).transform((value) => value.g),
  late: z.lazy(() => z.strictObject({ h: z.number() })),
});

describe('objectKeysAt', () => {
  it.each([
    { path: [], keys: ['list', 'named', 'either', 'cleaned', 'shaped', 'late'] },
    { path: ['list', 3], keys: ['a', 'b'] },
    { path: ['named', 'anything'], keys: ['c'] },
    { path: ['either'], keys: ['d', 'e'] },
    { path: ['cleaned'], keys: ['f'] },
    { path: ['shaped'], keys: ['g'] },
    { path: ['late'], keys: ['h'] },
    { path: ['list'], keys: [] },
    { path: ['nowhere', 'deeper'], keys: [] },
  ])('names the keys of the objects that apply at $path', ({ path, keys }) => {
    expect([...objectKeysAt(root, path)].sort()).toEqual([...keys].sort());
  });
});
