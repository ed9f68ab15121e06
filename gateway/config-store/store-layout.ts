import { closestName } from '../../src/closest-name.ts';
import { SwitchboardError } from '../../src/errors.ts';
import type { ConnectionCredentials } from '../../src/connection-credentials.ts';
import type { ZooKeeperReadAccess } from '../../src/zookeeper/zookeeper-writes.ts';
import { parseRegistryUrl, type RegistryLocation, type ZooKeeperWatchMode } from '../../src/registry-url.ts';

/**
 * Where a shared configuration lives in etcd or ZooKeeper, and how one object is spelled there.
 *
 * Layout under the store's root (the URL's path, `/switchboard` when it names none):
 *
 *   <root>/routes/<id>          one route (the file's `routes[]` entry; its `name` is the id)
 *   <root>/services/<name>      one service's settings (the file's `services.<name>`)
 *   <root>/middlewares/<name>   one named middleware (the file's `middlewares.<name>`)
 *   <root>/consumers/<name>     one consumer (the file's `consumers.<name>`)
 *   <root>/certificates/<name>  one named certificate by reference: `{ certFile, keyFile, entryPoints? }`,
 *                               paths on each gateway's disk (the key itself never enters the store)
 *   <root>/peers/<gateway id>   one running gateway (ephemeral znode / leased key)
 *
 * Every object value is UTF-8 JSON of exactly what the file would hold at that place, so the same
 * zod schema validates both. In etcd the key is the path itself (no leading-slash stripping); in
 * ZooKeeper the path is a znode whose data is the value.
 */

/** The object kinds a store holds, in the order they are applied (routes reference the rest). */
export const STORE_KINDS = ['services', 'middlewares', 'consumers', 'certificates', 'routes'] as const;

export type StoreKind = (typeof STORE_KINDS)[number];

/** The kinds kept by name in a record of the file (`services.<name>`…), unlike routes, a list whose entries carry their name. */
export const NAMED_KINDS = STORE_KINDS.filter((kind): kind is Exclude<StoreKind, 'routes'> => kind !== 'routes');

/** A kind kept by name in a record of the file. */
export type NamedKind = (typeof NAMED_KINDS)[number];

/** The child of the root under which running gateways register themselves. */
export const PEERS_DIR = 'peers';

/** Root used when the store URL names no path. */
export const DEFAULT_STORE_ROOT = '/switchboard';

/** An object's id: what a URL path segment, an etcd key segment and a znode name all accept. */
export const OBJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A store URL that cannot be used; the message says which part is wrong. */
export class StoreUrlError extends SwitchboardError {
  constructor(url: string, reason: string) {
    super('SB_CONFIG_STORE_URL', `invalid config store URL "${url}": ${reason}`);
  }
}

/** A stored value that is not JSON; the message carries the key. */
export class StoreValueError extends SwitchboardError {
  constructor(key: string, reason: string) {
    super('SB_CONFIG_STORE_VALUE', `${key}: ${reason}`);
  }
}

/** Where the shared configuration is kept, parsed from `configStore: etcd://…/root` or `zk://…/root`. */
export type StoreLocation =
  | { kind: 'etcd'; url: string; endpoints: string[]; root: string; credentials?: ConnectionCredentials | undefined }
  | { kind: 'zookeeper'; url: string; connectString: string; root: string; watch?: ZooKeeperWatchMode; credentials?: ConnectionCredentials | undefined };

/**
 * Who may read the znodes a gateway with `auth` creates in a ZooKeeper store (objects, their kinds'
 * nodes, the root, peer entries): its user alone. Objects carry credential header values, URL
 * passwords and API key digests, which the registry's policy (anyone reads) would hand to every
 * client of the ensemble; the gateways sharing a store read it with the same `auth`.
 */
export const STORE_READ_ACCESS: ZooKeeperReadAccess = 'owner';

/**
 * The `digest` session option (ZooKeeper's digest scheme) of a ZooKeeper store client with the
 * location's `auth`, as the registry's sessions take it; empty without it. What such a client
 * creates gets `writeAcls(true, STORE_READ_ACCESS)`.
 */
export function zooKeeperStoreAuth(location: Extract<StoreLocation, { kind: 'zookeeper' }>): { digest?: string } {
  const digest = location.credentials?.zooKeeperDigest();
  return digest === undefined ? {} : { digest };
}

/**
 * Parses a store URL (`etcd://`, `etcds://`, `zk://`); throws `StoreUrlError`. The one parameter is
 * ZooKeeper's `watch=recursive|one-shot`, as on a registry URL (a store has no layout or service).
 */
export function parseStoreUrl(url: string): StoreLocation {
  const trimmed = url.trim();
  const at = trimmed.indexOf('?');
  const base = at < 0 ? trimmed : trimmed.slice(0, at);
  const query = at < 0 ? '' : trimmed.slice(at);
  if (!/^(zk|zookeeper|etcd|etcds):\/\//i.test(base)) throw new StoreUrlError(url, 'expected etcd://host:port[/root] or zk://host:port[/root]');
  const stray = [...new URLSearchParams(query).keys()].find((key) => key !== 'watch');
  if (stray !== undefined) throw new StoreUrlError(url, `unknown parameter "${stray}" (a config store URL takes only watch=, on zk://)`);
  if (/^[a-z]+:\/\/[^/]+\/+$/i.test(base)) throw new StoreUrlError(url, 'the root must be a path below / (e.g. /switchboard)');
  const hasPath = /^[a-z]+:\/\/[^/]+\/./i.test(base);
  let location: RegistryLocation;
  try {
    location = parseRegistryUrl(`${base}${hasPath ? '' : DEFAULT_STORE_ROOT}${query}`);
  } catch (error) {
    throw new StoreUrlError(url, (error as Error).message.replace(/^invalid registry URL "[^"]*": /, ''));
  }
  if (location.kind === 'etcd') return { kind: 'etcd', url, endpoints: location.endpoints, root: location.prefix };
  if (location.kind === 'zookeeper') return { kind: 'zookeeper', url, connectString: location.connectString, root: location.root, ...(location.watch === undefined ? {} : { watch: location.watch }) };
  throw new StoreUrlError(url, 'expected etcd:// or zk://');
}

/**
 * Which store a URL names, whatever its spelling and parameters (`watch=` changes how the gateway
 * follows the store, not which one it is): the same for `zk://a:1/x` and `zk://a:1/x/?watch=one-shot`.
 * A URL that does not parse is its own identity.
 */
export function storeIdentity(url: string): string {
  let location: StoreLocation;
  try {
    location = parseStoreUrl(url);
  } catch {
    return url;
  }
  return location.kind === 'etcd' ? `etcd ${location.endpoints.join(',')}${location.root}` : `zookeeper ${location.connectString}${location.root}`;
}

/** The key (etcd) or znode path (ZooKeeper) of one object. */
export function objectKey(root: string, kind: StoreKind, name: string): string {
  return `${root}/${kind}/${name}`;
}

/** The directory (key prefix with trailing slash stripped, or parent znode) of one kind. */
export function kindDir(root: string, kind: StoreKind): string {
  return `${root}/${kind}`;
}

/** The key or znode path under which gateway `id` registers itself. */
export function peerKey(root: string, id: string): string {
  return `${root}/${PEERS_DIR}/${id}`;
}

/** Splits a key below `root` into its kind and name; undefined for keys that are not objects (peers, strays). */
export function parseObjectKey(root: string, key: string): { kind: StoreKind; name: string } | undefined {
  if (!key.startsWith(`${root}/`)) return undefined;
  const [kind, name, ...rest] = key.slice(root.length + 1).split('/');
  if (rest.length > 0 || name === undefined || !(STORE_KINDS as readonly string[]).includes(kind!)) return undefined;
  return { kind: kind as StoreKind, name };
}

/**
 * Why the gateway ignores a key below `root` that is neither an object (`<root>/<kind>/<name>`) nor
 * a peer (`<root>/peers/…`): a typo written around the API (`<root>/route/x`, `<root>/routes`,
 * `<root>/routes/a/b`); undefined for an object, a peer, or a key outside the root.
 */
export function ignoredKeyReason(root: string, key: string): string | undefined {
  if (!key.startsWith(`${root}/`) || parseObjectKey(root, key)) return undefined;
  const [first = '', second] = key.slice(root.length + 1).split('/');
  if (first === PEERS_DIR) return undefined;
  if (isStoreKind(first)) {
    if (second === undefined) return `a kind's own key holds no object: an object's key is ${root}/${first}/<name>`;
    return `below ${root}/${first}/${second}: an object's key is ${root}/${first}/<name>, nothing after the name`;
  }
  const meant = closestName(first, [...STORE_KINDS, PEERS_DIR]);
  return `"${first}" is not a kind of object (${STORE_KINDS.join(', ')})${meant === undefined ? '' : `: did you mean "${meant}"?`}`;
}

/** Whether `kind` names a store kind (for URL segments such as `/api/routes/{id}`). */
export function isStoreKind(kind: string): kind is StoreKind {
  return (STORE_KINDS as readonly string[]).includes(kind);
}

/** Whether `kind` names a kind kept by name in a record of the file. */
export function isNamedKind(kind: string): kind is NamedKind {
  return (NAMED_KINDS as readonly string[]).includes(kind);
}

/** How an object is written: compact JSON, a trailing newline so `etcdctl get` prints cleanly. */
export function encodeObject(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/**
 * V8's `Unexpected token 'a', ..."api-key":abcdefghi"... is not valid JSON`: the character and the
 * text around it, which may be a secret's. The reason goes to `/api/store`, `/api/config`, events and logs.
 */
const QUOTED_EXCERPT = /^Unexpected token .*is not valid JSON$/s;

/** Reads a stored value; throws `StoreValueError` naming `key` when it is not JSON, without quoting the text. */
export function decodeObject(key: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const message = (error as Error).message;
    throw new StoreValueError(key, `not JSON (${QUOTED_EXCERPT.test(message) ? 'an unexpected character; the text is not quoted, as it may hold a secret' : message})`);
  }
}
