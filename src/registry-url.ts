import { SwitchboardError } from './errors.ts';

/** Where instances are registered, parsed from a registry URL. */
export type RegistryLocation =
  | { kind: 'zookeeper'; connectString: string; root: string }
  | { kind: 'etcd'; endpoints: string[]; prefix: string }
  | { kind: 'file'; path: string };

/** Root under which services live when the URL names none (the Curator / Spring Cloud default). */
export const DEFAULT_REGISTRY_ROOT = '/services';

/** A registry URL that cannot be used; the message says which part is wrong. */
export class RegistryUrlError extends SwitchboardError {
  constructor(url: string, reason: string) {
    super('SB_REGISTRY_URL', `invalid registry URL "${url}": ${reason}`);
  }
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/**
 * Parses `zk://host:port[,host:port…][/root]`, `etcd://host:port[,…][/prefix]` (an `etcds://`
 * scheme means TLS) and `file:<path>`. Throws `RegistryUrlError` naming the bad part.
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
  const slash = rest.indexOf('/', 2);
  const hosts = (slash === -1 ? rest.slice(2) : rest.slice(2, slash)).split(',').filter((host) => host !== '');
  const path = slash === -1 ? '' : rest.slice(slash).replace(/\/+$/, '');
  if (hosts.length === 0) throw new RegistryUrlError(url, 'no host:port');
  for (const host of hosts) {
    if (!HOST_PORT.test(host)) throw new RegistryUrlError(url, `"${host}" is not host:port`);
    const port = Number(host.slice(host.lastIndexOf(':') + 1));
    if (port < 1 || port > 65_535) throw new RegistryUrlError(url, `port of "${host}" is out of range`);
  }
  const root = path === '' ? DEFAULT_REGISTRY_ROOT : path;
  if (/\/\/|\s/.test(root)) throw new RegistryUrlError(url, `"${root}" is not a valid path`);
  if (kind === 'zk' || kind === 'zookeeper') return { kind: 'zookeeper', connectString: hosts.join(','), root };
  const protocol = kind === 'etcds' ? 'https' : 'http';
  return { kind: 'etcd', endpoints: hosts.map((host) => `${protocol}://${host}`), prefix: root };
}
