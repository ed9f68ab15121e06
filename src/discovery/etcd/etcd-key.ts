/** Where a registry key sits: the service it belongs to and the instance id it names. */
export interface InstanceKey {
  readonly service: string;
  readonly instanceId: string;
}

/**
 * The prefix in canonical form: trailing slashes removed, so `/services/` and `/services` name the
 * same keys. The keys under it start with `<prefix>/`.
 */
export function normalizePrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/**
 * Splits `<prefix>/<service>/<instanceId>` into its parts; any other shape (a key directly under
 * the prefix, a deeper key, an empty segment, a key outside the prefix) yields `undefined`.
 * `prefix` must be normalised.
 */
export function parseInstanceKey(prefix: string, key: string): InstanceKey | undefined {
  const head = `${prefix}/`;
  if (!key.startsWith(head)) return undefined;
  const segments = key.slice(head.length).split('/');
  if (segments.length !== 2) return undefined;
  const [service, instanceId] = segments as [string, string];
  if (service === '' || instanceId === '') return undefined;
  return { service, instanceId };
}

/**
 * Splits `<prefix>/<instanceId>` when the prefix is one service's node (`layout=single` or
 * `service=`): every key one level below it is an instance of `service`; any other shape yields
 * `undefined`. `prefix` must be normalised.
 */
export function parseSingleServiceKey(prefix: string, service: string, key: string): InstanceKey | undefined {
  const head = `${prefix}/`;
  if (!key.startsWith(head)) return undefined;
  const instanceId = key.slice(head.length);
  return instanceId === '' || instanceId.includes('/') ? undefined : { service, instanceId };
}

/**
 * The service of a key one level or more below an instance key (`<prefix>/<service>/<instanceId>/…`,
 * or `<prefix>/<instanceId>/…` when `service` names the prefix's one service): a registration
 * written too deep, most often under the wrong prefix, which must not go unnoticed. Undefined for
 * any other key, and for every key under a prefix of `/`: there, deeper keys are other tools' (the
 * config store's `/switchboard/…`, for one), not misplaced registrations. `prefix` must be normalised.
 */
export function tooDeepKeyService(prefix: string, key: string, service?: string): string | undefined {
  const head = `${prefix}/`;
  if (prefix === '' || !key.startsWith(head)) return undefined;
  const segments = key.slice(head.length).split('/');
  if (service !== undefined) return segments.length > 1 && segments[0] !== '' ? service : undefined;
  return segments.length > 2 && segments[0] !== '' && segments[1] !== '' ? segments[0] : undefined;
}
