import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomically } from '../atomic-file.ts';
import { errorMessage } from '../errors.ts';
import { INSTANCE_HOST, MAX_INSTANCE_WEIGHT } from './instance-codec.ts';
import { INSTANCE_PROTOCOLS, sortInstances, type Instance } from './instance.ts';

/**
 * Where a registry's snapshot goes when its `snapshot` is not set: beside the config file, named
 * after the provider (`zk:10.0.0.1:2181/services` → `<config>.registry-snapshot.zk_10.0.0.1_2181_services.json`).
 */
export function defaultRegistrySnapshotPath(configPath: string, provider: string): string {
  return `${configPath}.registry-snapshot.${provider.replace(/[^A-Za-z0-9._-]+/g, '_')}.json`;
}

/** The instance sets one registry provider last published, as `writeRegistrySnapshot` keeps them. */
export interface RegistrySnapshot {
  /** When the sets were written (epoch ms). */
  readonly savedAt: number;
  /** Per service, its instances and the registry revision they were read at. */
  readonly services: ReadonlyMap<string, { readonly instances: readonly Instance[]; readonly revision: string }>;
}

const instanceSchema = z.strictObject({
  id: z.string().min(1),
  service: z.string().min(1),
  host: INSTANCE_HOST,
  port: z.int().min(1).max(65_535),
  weight: z.int().min(0).max(MAX_INSTANCE_WEIGHT),
  protocol: z.enum(INSTANCE_PROTOCOLS),
  protocolDefaulted: z.literal(true).optional(),
  metadata: z.record(z.string(), z.string()),
  draining: z.literal(true).optional(),
});

/** The file as written: format version, the registry it came from (`registryIdentity`), the decoded sets. */
const fileSchema = z.object({
  format: z.literal(1),
  registry: z.string(),
  savedAt: z.iso.datetime(),
  services: z.record(z.string(), z.object({ revision: z.string(), instances: z.array(instanceSchema) })),
});

/**
 * Writes the sets of one registry atomically (see `writeFileAtomically`), with `registry` (its
 * `registryIdentity`) so that a file of another registry is never served from.
 */
export async function writeRegistrySnapshot(path: string, registry: string, services: RegistrySnapshot['services']): Promise<void> {
  const content: z.input<typeof fileSchema> = { format: 1, registry, savedAt: new Date().toISOString(), services: Object.fromEntries(services) as z.input<typeof fileSchema>['services'] };
  await writeFileAtomically(path, `${JSON.stringify(content)}\n`);
}

/**
 * The snapshot at `path` when it exists, is readable, of this format, of `registry`, and each of its
 * instances valid; otherwise undefined and why (`missing` when there is no file: a first start). Read
 * synchronously, once at start.
 */
export function readRegistrySnapshot(path: string, registry: string): { snapshot: RegistrySnapshot } | { snapshot: undefined; reason: string; missing?: true } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { snapshot: undefined, reason: `cannot read ${path}: ${code ?? errorMessage(error)}`, ...(code === 'ENOENT' ? { missing: true as const } : {}) };
  }
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (error) {
    return { snapshot: undefined, reason: `${path} is not JSON: ${errorMessage(error)}` };
  }
  const parsed = fileSchema.safeParse(content);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { snapshot: undefined, reason: `${path} is not a registry snapshot: ${issue.path.join('.') || 'file'}: ${issue.message}` };
  }
  if (parsed.data.registry !== registry) return { snapshot: undefined, reason: `${path} holds a snapshot of ${parsed.data.registry}, not of ${registry}` };
  const services = new Map<string, { instances: readonly Instance[]; revision: string }>();
  for (const [service, { revision, instances }] of Object.entries(parsed.data.services)) {
    const strays = instances.filter((instance) => instance.service !== service);
    if (strays.length > 0) return { snapshot: undefined, reason: `${path} is not a registry snapshot: services.${service} holds an instance of ${strays[0]!.service}` };
    services.set(service, { revision, instances: sortInstances(instances as Instance[]) });
  }
  return { snapshot: { savedAt: Date.parse(parsed.data.savedAt), services } };
}
