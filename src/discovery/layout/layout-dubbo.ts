import { InvalidInstanceError } from '../../errors.ts';
import { MAX_INSTANCE_WEIGHT, parseHostPort, type RawInstance } from '../instance-codec.ts';
import type { InstanceProtocol } from '../instance.ts';
import type { EntryDecodeResult } from './entry-decoder.ts';

/*
 * Apache Dubbo's ZooKeeper registry, as the Dubbo user guide's "ZooKeeper registry" page lays it out
 * (root `/dubbo`, then the interface, then the `providers` category, then the URL) and apache/dubbo
 * `URL.encode` writes the name (java.net.URLEncoder, UTF-8: a space becomes `+`): each provider is
 * an ephemeral znode `/dubbo/<interface>/providers/<URL-encoded provider URL>`, e.g.
 * `tri://10.0.0.5:50051/org.example.Greeter?application=demo&side=provider&version=1.0.0&weight=100`.
 * The name carries everything; the data is whatever the client wrote (Curator writes the local IP),
 * and is ignored.
 */

/** Dubbo's default provider weight (`DEFAULT_WEIGHT` in dubbo's `LoadBalance`), used when a URL names none. */
export const DUBBO_DEFAULT_WEIGHT = 100;

/** Provider protocols the gateway can speak, and as what: Triple and gRPC over cleartext HTTP/2, REST over HTTP. */
const PROTOCOLS: Record<string, InstanceProtocol> = { tri: 'h2c', grpc: 'h2c', rest: 'http', http: 'http', https: 'https' };

/** URL parameters copied into the instance metadata (the ones routing by metadata wants). */
const METADATA_KEYS = ['version', 'group', 'side', 'application', 'release', 'dubbo'] as const;

/** Decodes one Dubbo provider znode into one instance, or says why it is not routable. */
export function decodeDubboEntry(raw: RawInstance): EntryDecodeResult {
  const where = raw.key ?? `${raw.service}/${raw.name}`;
  const invalid = (reason: string): EntryDecodeResult => ({ ok: false, error: new InvalidInstanceError(`${where}: ${reason}`) });
  let url: URL;
  try {
    url = new URL(decodeURIComponent(raw.name.replaceAll('+', ' ')));
  } catch {
    return invalid('name is not a URL-encoded Dubbo provider URL');
  }
  const params = url.searchParams;
  // An operator disabling a provider is a normal state, not a bad entry: left out silently, as Dubbo's consumers do.
  if (!isEnabled(params)) return { ok: true, instances: [] };
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme === 'dubbo') return invalid('dubbo binary protocol is not supported');
  const protocol = PROTOCOLS[scheme];
  if (protocol === undefined) return invalid(`protocol "${scheme}" is not supported (tri, grpc, rest, http, https are)`);
  const address = parseHostPort(`${url.hostname}:${url.port}`);
  if (address === undefined) return invalid(`"${url.host}" is not host:port`);
  const iface = params.get('interface') ?? url.pathname.replace(/^\//, '');
  // The path is the contract: a provider filed under another interface is a mistake, not an alias.
  if (iface !== '' && iface !== raw.service) return invalid(`provider URL is for "${iface}" but sits under "${raw.service}"`);
  const weightText = params.get('weight');
  // `weight=` is absent to Dubbo (URL.getParameter falls back to the default on an empty value); Number('') is 0, which would drain it.
  const weight = weightText === null || weightText.trim() === '' ? DUBBO_DEFAULT_WEIGHT : Number(weightText);
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_INSTANCE_WEIGHT) return invalid(`weight "${weightText}" is not an integer from 0 to ${MAX_INSTANCE_WEIGHT}`);
  const metadata: Record<string, string> = { 'dubbo.protocol': scheme };
  for (const key of METADATA_KEYS) {
    const value = params.get(key);
    if (value !== null && value !== '') metadata[key] = value;
  }
  const id = `${url.host}${metadata.group ? `/${metadata.group}` : ''}${metadata.version ? `:${metadata.version}` : ''}`;
  return { ok: true, instances: [{ id, service: raw.service, ...address, weight, protocol, metadata }] };
}

/**
 * Whether Dubbo's consumers would call the provider (apache/dubbo `RegistryDirectory.toInvokers`):
 * `disabled`, when present, decides, else `enabled`; each read as `URL.getParameter(key, default)`
 * does, an empty value meaning the default and any other value `Boolean.parseBoolean` of it.
 */
function isEnabled(params: URLSearchParams): boolean {
  const flag = (key: string, fallback: boolean): boolean => {
    const value = params.get(key);
    return value === null || value === '' ? fallback : value.toLowerCase() === 'true';
  };
  return params.has('disabled') ? !flag('disabled', false) : flag('enabled', true);
}
