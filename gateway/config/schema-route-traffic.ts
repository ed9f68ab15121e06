import { z } from 'zod';
import { headerName, section } from './schema-values.ts';

/** A metadata key as registries carry it (`version`, `zone`). */
const metadataKey = z.string().min(1).max(128);

/** A metadata value; YAML numbers and booleans (`version: 2`) are read as the text registries hold. */
const metadataValue = z
  .union([z.string(), z.number(), z.boolean()], { error: 'expected a metadata value (text)' })
  .transform(String)
  .refine((value) => value.length > 0, 'must not be empty');

/** Metadata pairs an instance must all carry: `{ version: v2, zone: a }`. */
const selector = z
  .record(metadataKey, metadataValue, { error: 'expected metadata pairs such as { version: v2 }' })
  .refine((pairs) => Object.keys(pairs).length > 0, 'expected at least one metadata pair such as { version: v2 }');

/** What a route gets when its selection is empty: every instance (`any`), nothing (`none`: 503), or another selection. */
const fallback = z.union([z.enum(['any', 'none']), selector], { error: 'expected any, none, or metadata pairs such as { version: v1 }' });

/** A cookie name (RFC 6265 token). */
const cookieName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'is not a valid cookie name');

/** `subset:` of a route: the instances whose metadata holds every `match` pair (Envoy's subset load balancer). */
export const subsetSchema = section({
  match: selector,
  fallback: fallback.optional(),
});

/** One lane of a canary: requests carrying the header (or cookie), with `value` when given, go to subset `to`. */
const laneSchema = section({
  header: headerName.optional(),
  cookie: cookieName.optional(),
  value: z.union([z.string(), z.number(), z.boolean()]).transform(String).optional(),
  to: metadataValue,
}).superRefine((lane, context) => {
  if ((lane.header === undefined) === (lane.cookie === undefined)) {
    context.addIssue({ code: 'custom', path: [lane.header === undefined ? 'header' : 'cookie'], message: 'a lane names either a header or a cookie' });
  }
});

/** `canary:` of a route: a weighted split between the subsets `by` one metadata key, plus lanes for marked requests. */
export const canarySchema = section({
  by: metadataKey,
  split: z
    .record(metadataKey, z.int({ error: 'expected a whole-number weight' }).min(0).max(1_000_000), { error: 'expected weights per value such as { v1: 90, v2: 10 }' })
    .refine((weights) => Object.values(weights).some((weight) => weight > 0), 'expected at least one weight above 0'),
  lanes: z.array(laneSchema).min(1, 'expected lanes (leave it out for none)').optional(),
  fallback: fallback.optional(),
});

/** `subset:` as parsed. */
export type SubsetInput = z.output<typeof subsetSchema>;

/** `canary:` as parsed. */
export type CanaryInput = z.output<typeof canarySchema>;
