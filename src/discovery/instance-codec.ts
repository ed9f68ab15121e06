import { z } from 'zod';
import { InvalidInstanceError } from '../errors.ts';
import { fitsUpstreamUrl, HOST_FORM_REASON, HOST_SPACES_REASON, MAX_HOST_LENGTH } from './instance-host.ts';
import { INSTANCE_PROTOCOLS, type Instance } from './instance.ts';

/** Highest weight accepted from a registry; larger values are refused as likely mistakes. */
export const MAX_INSTANCE_WEIGHT = 1_000_000;
/**
 * The most bytes a registry entry's data may hold: a larger one is skipped as invalid, and the agent
 * refuses at start to write one (its `--metadata`). Far under what the registries store (ZooKeeper's
 * `jute.maxbuffer`, about 1 MB; etcd's request limit, 1.5 MiB), which every gateway would hold per
 * instance, and past what Consul lets a service's metadata be (64 pairs of 128-byte keys and 512-byte values).
 */
export const MAX_INSTANCE_ENTRY_BYTES = 65_536;
/** The longest instance id an entry may carry; the agent refuses a longer `--id`. */
export const MAX_INSTANCE_ID_LENGTH = 256;

/** A registry entry before decoding: the service it sits under, its node or key name, its raw value. */
export interface RawInstance {
  readonly service: string;
  /** The last path segment: znode name or the key's suffix after `<prefix>/<service>/`. */
  readonly name: string;
  /** The full znode path or etcd key, for operators; `<service>/<name>` when the provider does not say. */
  readonly key?: string;
  readonly data: Uint8Array | string | null | undefined;
}

/** Outcome of decoding one entry: failures are values so one bad entry never stops its siblings. */
export type DecodeResult = { ok: true; instance: Instance } | { ok: false; error: InvalidInstanceError };

/**
 * The host of an instance, one the proxy can put in an upstream URL (`http://<host>:<port>`, IPv6
 * bracketed): a name or an IPv4 address without URL delimiters, or an IPv6 address without brackets
 * or zone. Anything else (`10.0.0.5:8080` as the host, `[::1]`) makes a URL the proxy cannot parse,
 * so every request picked for it would fail inside the gateway, where health never notices.
 */
export const INSTANCE_HOST = z.string().min(1).max(MAX_HOST_LENGTH).regex(/^[^\s/]+$/, HOST_SPACES_REASON).refine(fitsUpstreamUrl, HOST_FORM_REASON);
const port = z.int().min(1).max(65_535);
const weight = z.number().int().min(0).max(MAX_INSTANCE_WEIGHT);
const metadata = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String));

const nativePayload = z.object({
  id: z.string().min(1).max(MAX_INSTANCE_ID_LENGTH).optional(),
  service: z.string().min(1).optional(),
  host: INSTANCE_HOST,
  port,
  weight: weight.optional(),
  protocol: z.enum(INSTANCE_PROTOCOLS).optional(),
  metadata: metadata.optional(),
  draining: z.boolean().optional(),
});

/** Curator `ServiceInstance` as Spring Cloud Zookeeper writes it (`payload` is a `ZookeeperInstance`). */
const curatorPayload = z.object({
  name: z.string().min(1),
  id: z.string().min(1).max(MAX_INSTANCE_ID_LENGTH),
  address: INSTANCE_HOST,
  port: port.nullable().optional(),
  sslPort: port.nullable().optional(),
  payload: z
    .object({ metadata: metadata.nullable().optional() })
    .loose()
    .nullable()
    .optional(),
});

/**
 * Decodes one registry entry. Accepts, in order: the native JSON payload, Curator / Spring Cloud
 * Zookeeper `ServiceInstance` JSON, and a bare `host:port` name with empty data (weight 1).
 */
export function decodeInstance(raw: RawInstance): DecodeResult {
  try {
    return { ok: true, instance: decodeOrThrow(raw) };
  } catch (error) {
    const invalid =
      error instanceof InvalidInstanceError
        ? error
        : new InvalidInstanceError(`${raw.service}/${raw.name}: ${String(error)}`, { cause: error });
    return { ok: false, error: invalid };
  }
}

/**
 * The native JSON payload the registry agent writes for an instance; `protocol` is left out when it
 * was only defaulted, `draining` when it is not set.
 */
export function encodeInstance(instance: Instance): string {
  const { id, service, host, port, weight, protocol, metadata } = instance;
  const draining = instance.draining === true ? true : undefined;
  return JSON.stringify({ id, service, host, port, weight, protocol: instance.protocolDefaulted === true ? undefined : protocol, metadata, draining });
}

function decodeOrThrow(raw: RawInstance): Instance {
  const where = `${raw.service}/${raw.name}`;
  const bytes = typeof raw.data === 'string' ? Buffer.byteLength(raw.data) : (raw.data?.byteLength ?? 0);
  if (bytes > MAX_INSTANCE_ENTRY_BYTES) throw new InvalidInstanceError(`${where}: data is ${bytes} bytes, more than the ${MAX_INSTANCE_ENTRY_BYTES} a registry entry may hold`);
  const text = typeof raw.data === 'string' ? raw.data : raw.data ? Buffer.from(raw.data).toString('utf8') : '';
  if (text.trim() === '') return decodeHostPortName(raw, where);

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidInstanceError(`${where}: data is not JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidInstanceError(`${where}: data must be a JSON object`);
  }
  if ('address' in json && 'name' in json) return decodeCurator(raw, json, where);

  const parsed = nativePayload.safeParse(json);
  if (!parsed.success) throw new InvalidInstanceError(`${where}: ${describePayloadIssues(parsed.error)}`);
  const value = parsed.data;
  // The registry path is the contract: a payload that claims another service is a mistake (a copied
  // payload, a wrong path), and routing it under either name would hide that mistake.
  if (value.service !== undefined && value.service !== raw.service) {
    throw new InvalidInstanceError(`${where}: payload names service "${value.service}" but the entry is under "${raw.service}"`);
  }
  return {
    id: value.id ?? raw.name,
    service: raw.service,
    host: value.host,
    port: value.port,
    weight: value.weight ?? 1,
    ...(value.protocol === undefined ? { protocol: 'http', protocolDefaulted: true } : { protocol: value.protocol }),
    metadata: value.metadata ?? {},
    ...(value.draining === true ? { draining: true } : {}),
  };
}

/**
 * Why the entry the agent would write for `instance` (with the drain mark, its largest form) is one
 * gateways skip for its size, or undefined: its metadata, the one field of unbounded length.
 */
export function instanceEntrySizeProblem(instance: Instance): string | undefined {
  const bytes = Buffer.byteLength(encodeInstance({ ...instance, draining: true }));
  if (bytes <= MAX_INSTANCE_ENTRY_BYTES) return undefined;
  const metadataBytes = Buffer.byteLength(JSON.stringify(instance.metadata));
  return `${metadataBytes} bytes of metadata make an entry of ${bytes} bytes, more than the ${MAX_INSTANCE_ENTRY_BYTES} a registry entry may hold (gateways skip a larger one)`;
}

function decodeCurator(raw: RawInstance, json: object, where: string): Instance {
  const parsed = curatorPayload.safeParse(json);
  if (!parsed.success) throw new InvalidInstanceError(`${where}: ${describePayloadIssues(parsed.error)}`);
  const value = parsed.data;
  const plainPort = value.port ?? undefined;
  const sslPort = value.sslPort ?? undefined;
  const chosenPort = plainPort ?? sslPort;
  if (chosenPort === undefined) throw new InvalidInstanceError(`${where}: Curator instance has neither port nor sslPort`);
  const meta: Record<string, string> = { ...(value.payload?.metadata ?? {}) };
  // A blank weight (a property left unset) is no weight: Number('') is 0, which would drain the instance.
  const metaWeight = meta.weight === undefined || meta.weight.trim() === '' ? undefined : Number(meta.weight);
  // Only `sslPort` says something (https); a plain `port` leaves the protocol to the consumer's default.
  const protocol: Pick<Instance, 'protocol' | 'protocolDefaulted'> = plainPort === undefined ? { protocol: 'https' } : { protocol: 'http', protocolDefaulted: true };
  // Spring Cloud Zookeeper's instance status (OUT_OF_SERVICE from its /service-registry endpoint):
  // its own load balancer routes only to a blank status or UP, in any case; any other status drains.
  const status = meta.instance_status?.trim();
  return {
    id: value.id,
    service: raw.service,
    host: value.address,
    port: chosenPort,
    weight: metaWeight !== undefined && weight.safeParse(metaWeight).success ? metaWeight : 1,
    ...protocol,
    metadata: meta,
    ...(status && status.toUpperCase() !== 'UP' ? { draining: true } : {}),
  };
}

function decodeHostPortName(raw: RawInstance, where: string): Instance {
  const address = parseHostPort(raw.name);
  if (address === undefined) {
    throw new InvalidInstanceError(/^(?:\[[^\]]+\]|[^:[\]]+):\d{1,5}$/.test(raw.name) ? `${where}: name is not a valid host:port` : `${where}: empty data and the name is not host:port`);
  }
  return hostPortInstance(raw, address);
}

/** `host:port` or `[v6]:port` as a valid host and port; `undefined` for anything else. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const parsedHost = INSTANCE_HOST.safeParse(match[1] ?? match[2]);
  const parsedPort = port.safeParse(Number(match[3]));
  return parsedHost.success && parsedPort.success ? { host: parsedHost.data, port: parsedPort.data } : undefined;
}

/** The instance a bare address stands for: id from the entry's name, weight 1, protocol left to the consumer. */
export function hostPortInstance(raw: Pick<RawInstance, 'service' | 'name'>, address: { host: string; port: number }): Instance {
  return { id: raw.name, service: raw.service, host: address.host, port: address.port, weight: 1, protocol: 'http', protocolDefaulted: true, metadata: {} };
}

/**
 * A payload's schema issues on one line, each as `<field path>: <reason>` (`port: Too big: expected
 * number to be <=65535`), as the config store names a refused object's keys; zod's pretty form
 * spreads them over lines with glyphs that a log field or `/api/services` reason shows as noise.
 */
export function describePayloadIssues(error: z.ZodError): string {
  return error.issues.map((issue) => (issue.path.length === 0 ? issue.message : `${issue.path.join('.')}: ${issue.message}`)).join('; ');
}
