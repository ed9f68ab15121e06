import { z } from 'zod';
import { InvalidInstanceError } from '../../errors.ts';
import { describePayloadIssues, MAX_INSTANCE_WEIGHT, parseHostPort, type RawInstance } from '../instance-codec.ts';
import { INSTANCE_PROTOCOLS, type Instance, type InstanceProtocol } from '../instance.ts';
import type { EntryDecodeResult } from './entry-decoder.ts';

/*
 * go-micro's registry, as micro/go-micro v2 `registry/etcd/etcd.go` writes it (and go-micro v4/v5's
 * etcd plugin, unchanged): one key per node at `/micro/registry/<service>/<node-id>` (`/` in either
 * name replaced by `-`), whose value is `json.Marshal` of a `registry.Service` (`registry/registry.go`)
 * holding that node: `{"name","version","metadata","endpoints","nodes":[{"id","address","metadata"}]}`.
 * Go marshals nil maps and slices as `null`. go-micro v1 before 2019 wrote the port in a separate
 * `port` field; that form is read too. The older `/micro-registry` prefix has the same shape.
 */

const stringMap = z.record(z.string(), z.string()).nullable().optional();

const goMicroNode = z
  .object({
    id: z.string().min(1).max(256),
    address: z.string().min(1),
    port: z.int().min(1).max(65_535).optional(),
    metadata: stringMap,
  })
  .loose();

const goMicroService = z
  .object({
    name: z.string().min(1),
    version: z.string().nullable().optional(),
    metadata: stringMap,
    nodes: z.array(goMicroNode).nullable().optional(),
  })
  .loose();

/** Decodes one go-micro registry key into one instance per node of its Service JSON (go-micro writes one). */
export function decodeGoMicroEntry(raw: RawInstance): EntryDecodeResult {
  const where = raw.key ?? `${raw.service}/${raw.name}`;
  const invalid = (reason: string, cause?: unknown): EntryDecodeResult => ({
    ok: false,
    error: new InvalidInstanceError(`${where}: ${reason}`, cause === undefined ? undefined : { cause }),
  });
  const text = typeof raw.data === 'string' ? raw.data : raw.data ? Buffer.from(raw.data).toString('utf8') : '';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return invalid(`value is not a go-micro Service JSON (${(error as Error).message})`, error);
  }
  const parsed = goMicroService.safeParse(json);
  if (!parsed.success) return invalid(`not a go-micro Service: ${describePayloadIssues(parsed.error)}`);
  const service = parsed.data;
  // go-micro derives the key from the name; a value naming another service is a copied or misplaced key.
  if (service.name.replaceAll('/', '-') !== raw.service) return invalid(`Service JSON names "${service.name}" but the key is under "${raw.service}"`);
  const instances: Instance[] = [];
  for (const node of service.nodes ?? []) {
    const address = parseHostPort(node.port === undefined ? node.address : `${node.address}:${node.port}`);
    if (address === undefined) return invalid(`node "${node.id}" has address "${node.address}", expected host:port`);
    const metadata: Record<string, string> = { ...(node.metadata ?? {}) };
    if (service.version) metadata.version = service.version;
    instances.push({
      id: node.id,
      service: raw.service,
      ...address,
      weight: weightOf(metadata.weight),
      ...protocolOf(metadata.protocol),
      metadata,
    });
  }
  return { ok: true, instances };
}

/** go-micro has no weight; a `weight` node metadata entry is honoured when it is a valid one. */
function weightOf(text: string | undefined): number {
  const value = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
  return Number.isInteger(value) && value >= 0 && value <= MAX_INSTANCE_WEIGHT ? value : 1;
}

/** go-micro's `protocol` node metadata (`mucp`, `grpc`, `http`): a protocol the gateway speaks is taken, any other leaves the default. */
function protocolOf(protocol: string | undefined): Pick<Instance, 'protocol' | 'protocolDefaulted'> {
  return protocol !== undefined && (INSTANCE_PROTOCOLS as readonly string[]).includes(protocol)
    ? { protocol: protocol as InstanceProtocol }
    : { protocol: 'http', protocolDefaulted: true };
}
