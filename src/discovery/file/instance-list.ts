import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigFileError, yamlErrorReason } from '../../errors.ts';
import type { RawInstance } from '../instance-codec.ts';

const entry = z.union([z.string(), z.record(z.string(), z.unknown())]);
const listFile = z.object({ services: z.record(z.string().min(1), z.array(entry).nullable()) }).strict();

/**
 * Parses an instance list file (YAML or JSON; JSON is YAML):
 * `services: { <name>: [ "host:port" | { host, port, weight?, id?, protocol?, metadata? } ] }`.
 * The file's structure must be right or it is refused whole with a `ConfigFileError` naming the
 * path and the place; single entries are only checked later, by the instance codec, so one bad
 * entry is skipped and counted while its siblings serve.
 */
export function parseInstanceList(path: string, text: string): Map<string, RawInstance[]> {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true });
  } catch (error) {
    throw new ConfigFileError(path, `not valid YAML or JSON: ${yamlErrorReason(error)}`, { cause: error });
  }
  const parsed = listFile.safeParse(document ?? {});
  if (!parsed.success) {
    const reasons = parsed.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`);
    throw new ConfigFileError(path, reasons.join('; '));
  }
  const services = new Map<string, RawInstance[]>();
  for (const [service, entries] of Object.entries(parsed.data.services)) {
    services.set(
      service,
      (entries ?? []).map((item, index) =>
        typeof item === 'string'
          ? { service, name: item, data: null }
          : { service, name: entryName(item, index), data: JSON.stringify(item) },
      ),
    );
  }
  return services;
}

function entryName(item: Record<string, unknown>, index: number): string {
  if (typeof item.id === 'string' && item.id !== '') return item.id;
  // As the configuration's `instances` and the string form name it: an IPv6 host bracketed, since
  // `::1:8080` would read as a host with no port and differ from the id of `"[::1]:8080"`.
  if (item.host === undefined || item.port === undefined) return `#${index}`;
  const host = String(item.host);
  return host.includes(':') ? `[${host}]:${String(item.port)}` : `${host}:${String(item.port)}`;
}

/**
 * Whether `next` keeps every instance of `applied` as it is (same service, name and entry) and at
 * most adds some: a list that cannot take an instance away, which a file written half-way can.
 */
export function onlyAdds(applied: ReadonlyMap<string, readonly RawInstance[]>, next: ReadonlyMap<string, readonly RawInstance[]>): boolean {
  for (const [service, instances] of applied) {
    if (instances.length === 0) continue;
    const kept = new Set((next.get(service) ?? []).map(instanceKey));
    if (!instances.every((instance) => kept.has(instanceKey(instance)))) return false;
  }
  return true;
}

function instanceKey(instance: RawInstance): string {
  return `${instance.name}\n${String(instance.data)}`;
}
