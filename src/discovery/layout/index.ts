import type { RegistryLayoutName, RegistryLayoutSpec } from '../../registry-url.ts';
import { decodeInstance, type RawInstance } from '../instance-codec.ts';
import type { EntryDecodeResult, EntryDecoder } from './entry-decoder.ts';
import { decodeDubboEntry } from './layout-dubbo.ts';
import { decodeGoMicroEntry } from './layout-go-micro.ts';
import { decodeRegistratorEntry } from './layout-registrator.ts';

export type { EntryDecodeResult, EntryDecoder } from './entry-decoder.ts';

/**
 * Where a provider finds instances and how it reads them. Every layout keeps instance entries as
 * the children of a service node (`<root>/<service>/<entry>`, or `<root>/<service>/<instancesNode>/<entry>`),
 * or, with `service`, as the children of the root itself, which then is that one service's node.
 */
export interface RegistryLayout {
  readonly name: RegistryLayoutName;
  readonly decode: EntryDecoder;
  /** Set when the root is this one service's node. */
  readonly service?: string;
  /** The child of each service node that holds its instance entries (`providers` for Dubbo); the service node itself when absent. */
  readonly instancesNode?: string;
}

/** The layout every provider uses unless told otherwise: native JSON, Curator JSON or a bare `host:port` name. */
export const NATIVE_LAYOUT: RegistryLayout = { name: 'native', decode: decodeNative };

const DECODERS: Record<RegistryLayoutName, EntryDecoder> = {
  native: decodeNative,
  registrator: decodeRegistratorEntry,
  'go-micro': decodeGoMicroEntry,
  dubbo: decodeDubboEntry,
};

const INSTANCES_NODES: Partial<Record<RegistryLayoutName, string>> = { dubbo: 'providers' };

/** The layout a registry URL asked for (`native` when it asked for none). */
export function registryLayout(spec: RegistryLayoutSpec | undefined): RegistryLayout {
  if (spec === undefined) return NATIVE_LAYOUT;
  const instancesNode = INSTANCES_NODES[spec.name];
  return {
    name: spec.name,
    decode: DECODERS[spec.name],
    ...(spec.service === undefined ? {} : { service: spec.service }),
    ...(instancesNode === undefined ? {} : { instancesNode }),
  };
}

function decodeNative(raw: RawInstance): EntryDecodeResult {
  const result = decodeInstance(raw);
  return result.ok ? { ok: true, instances: [result.instance] } : result;
}
