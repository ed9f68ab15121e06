/** Wire protocols an instance can speak; the proxy picks its transport from this. */
export const INSTANCE_PROTOCOLS = ['http', 'https', 'h2c', 'h2', 'grpc', 'grpcs', 'tcp'] as const;

export type InstanceProtocol = (typeof INSTANCE_PROTOCOLS)[number];

/**
 * One backend instance of a service as the gateway routes to it. Values are immutable: a change in
 * the registry produces a new object, so identity comparison is never used to detect change.
 */
export interface Instance {
  /** Unique within its service and provider (the znode or key name by default). */
  readonly id: string;
  readonly service: string;
  readonly host: string;
  readonly port: number;
  /** Relative share of traffic; 0 drains the instance without removing it. */
  readonly weight: number;
  readonly protocol: InstanceProtocol;
  /**
   * True when the registry entry did not name a protocol, so `protocol` is the codec's `http` and a
   * consumer's own default (a gateway service's `protocol`) may replace it; absent when the entry said.
   */
  readonly protocolDefaulted?: boolean;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * True when the registry entry says its owner is shutting down (the agent's drain handshake):
   * the instance stays known, its requests in flight finish, and it gets no new pick. Absent otherwise.
   */
  readonly draining?: boolean;
}

/** `instance` speaking `protocol` when its registry entry did not name one; unchanged otherwise (the registry wins). */
export function withDefaultProtocol(instance: Instance, protocol: InstanceProtocol): Instance {
  return instance.protocolDefaulted === true && instance.protocol !== protocol ? { ...instance, protocol } : instance;
}

/** The address balancers and health checks key an instance by: `host:port`, IPv6 hosts bracketed. */
export function instanceAddress(instance: Pick<Instance, 'host' | 'port'>): string {
  return instance.host.includes(':') ? `[${instance.host}]:${instance.port}` : `${instance.host}:${instance.port}`;
}

/** True when two instances would route and balance identically. */
export function sameInstance(a: Instance, b: Instance): boolean {
  if (a.id !== b.id || a.service !== b.service || a.host !== b.host || a.port !== b.port) return false;
  if (a.weight !== b.weight || a.protocol !== b.protocol || (a.protocolDefaulted === true) !== (b.protocolDefaulted === true)) return false;
  if ((a.draining === true) !== (b.draining === true)) return false;
  const aKeys = Object.keys(a.metadata);
  if (aKeys.length !== Object.keys(b.metadata).length) return false;
  return aKeys.every((key) => a.metadata[key] === b.metadata[key]);
}

/** True when two instance lists hold the same instances in the same order. */
export function sameInstances(a: readonly Instance[], b: readonly Instance[]): boolean {
  return a.length === b.length && a.every((instance, index) => sameInstance(instance, b[index]!));
}

/** Sorts instances by id then address, so equal sets compare equal whatever order a registry lists them in. */
export function sortInstances(instances: Iterable<Instance>): Instance[] {
  return [...instances].sort((a, b) => compareStrings(a.id, b.id) || compareStrings(instanceAddress(a), instanceAddress(b)));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
