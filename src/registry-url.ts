import { SwitchboardError } from './errors.ts';

/** How a registry's entries are laid out and encoded; `native` is what the registry agent writes. */
export const REGISTRY_LAYOUTS = ['native', 'registrator', 'go-micro', 'dubbo'] as const;

export type RegistryLayoutName = (typeof REGISTRY_LAYOUTS)[number];

/** The layout a registry URL asks for: entry encoding, and whether the root is one service's node. */
export interface RegistryLayoutSpec {
  readonly name: RegistryLayoutName;
  /** When set, the root (prefix) is this one service's node and its children are the instances. */
  readonly service?: string;
}

/**
 * How the gateway watches a ZooKeeper tree: `recursive` (the default) arms one persistent recursive
 * watch on the root when the server has them (3.6+); `one-shot` a watch per znode, as before 3.6.
 */
export const ZOOKEEPER_WATCH_MODES = ['recursive', 'one-shot'] as const;

export type ZooKeeperWatchMode = (typeof ZOOKEEPER_WATCH_MODES)[number];

/** Where instances are registered, parsed from a registry URL; `layout` is absent for the default `native` tree. */
export type RegistryLocation =
  | { kind: 'zookeeper'; connectString: string; root: string; layout?: RegistryLayoutSpec; watch?: ZooKeeperWatchMode }
  | { kind: 'etcd'; endpoints: string[]; prefix: string; layout?: RegistryLayoutSpec }
  | { kind: 'file'; path: string };

/** Root under which services live when the URL names none (the Curator / Spring Cloud default). */
export const DEFAULT_REGISTRY_ROOT = '/services';

/** Root a layout uses when the URL names none: where go-micro's etcd registry and Dubbo's ZooKeeper registry write. */
const LAYOUT_DEFAULT_ROOTS: Partial<Record<RegistryLayoutName, string>> = { 'go-micro': '/micro/registry', dubbo: '/dubbo' };

/** A registry URL that cannot be used; the message says which part is wrong. */
export class RegistryUrlError extends SwitchboardError {
  constructor(url: string, reason: string) {
    // Credentials belong in `auth`, never in the URL; one written there anyway stays out of the message (and the log).
    super('SB_REGISTRY_URL', `invalid registry URL "${url}": ${reason}`.replace(USERINFO_PASSWORD, '$1$2:[redacted]@'));
  }
}

/** The password of a `user:password@` in a URL or a host list, after `/`, `"` or `,`. */
const USERINFO_PASSWORD = /([/",]|^)([^/",@:\s]*):[^/",@\s]*@/g;

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const SERVICE_NAME = /^[^\s/]+$/;

/**
 * Parses `zk://host:port[,host:port…][/root][?layout=…&service=…&watch=…]`, `etcd://host:port[,…][/prefix][?…]`
 * (an `etcds://` scheme means TLS) and `file:<path>`. A path of `/` is the registry's root itself.
 * `layout` is one of `REGISTRY_LAYOUTS` or `single` (`native` with the root as one service's node);
 * `service` names the service that node maps to (by default its last path segment); `watch`
 * (zk:// only) is one of `ZOOKEEPER_WATCH_MODES`. Throws `RegistryUrlError` naming the bad part.
 */
export function parseRegistryUrl(url: string): RegistryLocation {
  const scheme = /^([a-z0-9+]+):(.*)$/i.exec(url.trim());
  if (!scheme) throw new RegistryUrlError(url, 'expected zk://, etcd:// or file:');
  const kind = scheme[1]!.toLowerCase();
  const rest = scheme[2]!;
  if (kind === 'file') {
    const path = rest.replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new RegistryUrlError(url, 'file: needs a path');
    return { kind: 'file', path };
  }
  if (kind !== 'zk' && kind !== 'zookeeper' && kind !== 'etcd' && kind !== 'etcds') {
    throw new RegistryUrlError(url, `unknown scheme "${kind}" (expected zk, etcd or file)`);
  }
  if (!rest.startsWith('//')) throw new RegistryUrlError(url, `expected ${kind}://host:port`);
  const question = rest.indexOf('?');
  const beforeQuery = question === -1 ? rest : rest.slice(0, question);
  const slash = beforeQuery.indexOf('/', 2);
  const hosts = (slash === -1 ? beforeQuery.slice(2) : beforeQuery.slice(2, slash)).split(',').filter((host) => host !== '');
  if (hosts.length === 0) throw new RegistryUrlError(url, 'no host:port');
  for (const host of hosts) {
    if (!HOST_PORT.test(host)) throw new RegistryUrlError(url, `"${host}" is not host:port`);
    const port = Number(host.slice(host.lastIndexOf(':') + 1));
    if (port < 1 || port > 65_535) throw new RegistryUrlError(url, `port of "${host}" is out of range`);
  }
  // A bare `/` names the registry's root; only a URL without any path gets the default root.
  const path = slash === -1 ? '' : beforeQuery.slice(slash).replace(/\/+$/, '') || '/';
  const params = new URLSearchParams(question === -1 ? '' : rest.slice(question + 1));
  for (const key of params.keys()) {
    if (key !== 'layout' && key !== 'service' && key !== 'watch') throw new RegistryUrlError(url, `unknown parameter "${key}" (expected layout, service or watch)`);
    if (params.getAll(key).length > 1) throw new RegistryUrlError(url, `parameter "${key}" given more than once`);
  }
  const layout = params.has('layout') || params.has('service') ? parseLayout(url, params, path) : undefined;
  const root = path === '' ? ((layout && LAYOUT_DEFAULT_ROOTS[layout.name]) ?? DEFAULT_REGISTRY_ROOT) : path;
  if (/\/\/|\s/.test(root)) throw new RegistryUrlError(url, `"${root}" is not a valid path`);
  const withLayout = layout === undefined ? {} : { layout };
  const watch = params.get('watch') ?? undefined;
  if (watch !== undefined && kind !== 'zk' && kind !== 'zookeeper') throw new RegistryUrlError(url, 'watch= applies to ZooKeeper (zk://) only');
  if (watch !== undefined && !(ZOOKEEPER_WATCH_MODES as readonly string[]).includes(watch)) {
    throw new RegistryUrlError(url, `unknown watch "${watch}" (expected ${ZOOKEEPER_WATCH_MODES.join(' or ')})`);
  }
  if (watch === 'recursive' && (root === '/' || layout?.name === 'dubbo')) {
    throw new RegistryUrlError(url, 'watch=recursive does not apply under a root of / or with layout=dubbo, which always use one-shot watches');
  }
  if (kind === 'zk' || kind === 'zookeeper') {
    return { kind: 'zookeeper', connectString: hosts.join(','), root, ...withLayout, ...(watch === undefined ? {} : { watch: watch as ZooKeeperWatchMode }) };
  }
  if (layout?.name === 'dubbo') throw new RegistryUrlError(url, 'layout=dubbo is read from ZooKeeper (zk://) only');
  const protocol = kind === 'etcds' ? 'https' : 'http';
  return { kind: 'etcd', endpoints: hosts.map((host) => `${protocol}://${host}`), prefix: root, ...withLayout };
}

function parseLayout(url: string, params: URLSearchParams, path: string): RegistryLayoutSpec {
  const requested = params.get('layout') ?? 'native';
  const single = requested === 'single';
  const name = single ? 'native' : requested;
  if (!(REGISTRY_LAYOUTS as readonly string[]).includes(name)) {
    throw new RegistryUrlError(url, `unknown layout "${requested}" (expected ${[...REGISTRY_LAYOUTS, 'single'].join(', ')})`);
  }
  let service = params.get('service') ?? undefined;
  if (single && service === undefined) {
    service = path.split('/').filter((segment) => segment !== '').at(-1);
    if (service === undefined) throw new RegistryUrlError(url, 'layout=single needs a path naming the service node, or service=<name>');
  }
  if (service !== undefined && name === 'dubbo') throw new RegistryUrlError(url, 'layout=dubbo takes no service= (each interface is a service)');
  if (service !== undefined && path === '') throw new RegistryUrlError(url, 'service=<name> needs a path naming that service\'s node');
  if (service !== undefined && !SERVICE_NAME.test(service)) throw new RegistryUrlError(url, `service "${service}" must not be empty or contain "/" or spaces`);
  return { name: name as RegistryLayoutName, ...(service === undefined ? {} : { service }) };
}
