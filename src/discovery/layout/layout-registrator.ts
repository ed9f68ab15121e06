import { InvalidInstanceError } from '../../errors.ts';
import { decodeInstance, hostPortInstance, parseHostPort, type RawInstance } from '../instance-codec.ts';
import type { EntryDecodeResult } from './entry-decoder.ts';

/**
 * gliderlabs/registrator's etcd backend (and the many flat registries modelled on it): the value of
 * `<prefix>/<service>/<id>` is the text `ip:port` and the key's last segment is the instance id.
 * Any other value (an empty one under an `ip:port` name, native or Curator JSON) is read as `native`.
 */
export function decodeRegistratorEntry(raw: RawInstance): EntryDecodeResult {
  const text = typeof raw.data === 'string' ? raw.data : raw.data ? Buffer.from(raw.data).toString('utf8') : '';
  const value = text.trim();
  const address = parseHostPort(value);
  if (address !== undefined) return { ok: true, instances: [hostPortInstance(raw, address)] };
  // Text that is no JSON object was meant as an address: say what is wrong with it, not how JSON.parse failed on it.
  if (value !== '' && !value.startsWith('{')) return { ok: false, error: new InvalidInstanceError(`${raw.service}/${raw.name}: ${addressReason(value)}`) };
  const native = decodeInstance(raw);
  return native.ok ? { ok: true, instances: [native.instance] } : native;
}

/** Longest part of a refused value quoted in its reason. */
const QUOTED_VALUE_LENGTH = 64;

/** Why a value that is no JSON object is no address either. */
function addressReason(value: string): string {
  const quoted = JSON.stringify(value.length > QUOTED_VALUE_LENGTH ? `${value.slice(0, QUOTED_VALUE_LENGTH)}…` : value);
  return /^(?:\[[^\]]+\]|[^:[\]]+):\d{1,5}$/.test(value) ? `value ${quoted} is not a valid host:port` : `value ${quoted} is neither host:port nor a JSON object`;
}
