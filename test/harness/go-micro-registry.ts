import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** go-micro's etcd registry prefix (micro/go-micro v2 `registry/etcd/etcd.go`, `prefix`). */
export const GO_MICRO_PREFIX = '/micro/registry/';

/** A go-micro `registry.Node` (`registry/registry.go`). */
export interface GoMicroNode {
  readonly id: string;
  readonly address: string;
  readonly metadata: Record<string, string> | null;
}

/** A go-micro `registry.Service` (`registry/registry.go`); `endpoints` are carried through untouched. */
export interface GoMicroService {
  readonly name: string;
  readonly version: string;
  readonly metadata: Record<string, string> | null;
  readonly endpoints: readonly unknown[] | null;
  readonly nodes: readonly GoMicroNode[];
}

/**
 * The key go-micro puts a node under: `nodePath` in micro/go-micro v2 `registry/etcd/etcd.go`,
 * `path.Join(prefix, strings.Replace(service, "/", "-", -1), strings.Replace(id, "/", "-", -1))`.
 */
export function goMicroNodeKey(service: string, nodeId: string, prefix = GO_MICRO_PREFIX): string {
  const joined = [prefix, service.replaceAll('/', '-'), nodeId.replaceAll('/', '-')].join('/');
  // path.Join cleans the result: duplicate slashes collapse and no trailing slash remains.
  return joined.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
}

/**
 * The value go-micro writes: `json.Marshal(service)` in micro/go-micro v2 `registry/etcd/etcd.go`
 * `encode`. Go emits struct fields in declaration order (`name, version, metadata, endpoints,
 * nodes`; a node is `id, address, metadata`), nil maps and slices as `null`, and escapes `<`, `>`,
 * `&`, U+2028 and U+2029 as `\u` sequences (its HTML-safe default).
 */
export function encodeGoMicroService(service: GoMicroService): string {
  const ordered = {
    name: service.name,
    version: service.version,
    metadata: service.metadata,
    endpoints: service.endpoints,
    nodes: service.nodes.map((node) => ({ id: node.id, address: node.address, metadata: node.metadata })),
  };
  return JSON.stringify(ordered).replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const run = promisify(execFile);
/** Bound on one etcdctl call; etcdctl's own dial timeout is 2 s and its command timeout 5 s. */
const ETCDCTL_TIMEOUT_MS = 15_000;

/** `etcdctl put <key> <value>` (API v3, Debian's etcd-client) against one endpoint; rejects with etcdctl's stderr. */
export async function etcdctlPut(endpoint: string, key: string, value: string): Promise<void> {
  await run('etcdctl', ['--endpoints', endpoint, 'put', '--', key, value], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: ETCDCTL_TIMEOUT_MS });
}

/** `etcdctl del <key>` (API v3) against one endpoint. */
export async function etcdctlDelete(endpoint: string, key: string): Promise<void> {
  await run('etcdctl', ['--endpoints', endpoint, 'del', key], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: ETCDCTL_TIMEOUT_MS });
}
