import { decodeInstance, hostPortInstance, parseHostPort, type RawInstance } from '../instance-codec.ts';
import type { EntryDecodeResult } from './entry-decoder.ts';

/**
 * gliderlabs/registrator's etcd backend (and the many flat registries modelled on it): the value of
 * `<prefix>/<service>/<id>` is the text `ip:port` and the key's last segment is the instance id.
 * Any other value (an empty one under an `ip:port` name, native or Curator JSON) is read as `native`.
 */
export function decodeRegistratorEntry(raw: RawInstance): EntryDecodeResult {
  const text = typeof raw.data === 'string' ? raw.data : raw.data ? Buffer.from(raw.data).toString('utf8') : '';
  const address = parseHostPort(text.trim());
  if (address !== undefined) return { ok: true, instances: [hostPortInstance(raw, address)] };
  const native = decodeInstance(raw);
  return native.ok ? { ok: true, instances: [native.instance] } : native;
}
