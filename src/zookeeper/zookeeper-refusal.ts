import type { RegistryRefusal } from '../errors.ts';
import { isZooKeeperError, ZooKeeperError } from './zookeeper-errors.ts';

/** Who asked, to name in a refusal. */
export interface ZooKeeperRefusalContext {
  readonly connectString: string;
  /** The digest user the session authenticates as; undefined: no `auth` (ZooKeeper's `world:anyone`). */
  readonly username: string | undefined;
}

/** ZooKeeper's permission an operation needs, where, and its letter in a zkCli ACL (`digest:<user>:<hash>:r`). */
export interface MissingPermission {
  readonly permission: 'READ' | 'WRITE' | 'CREATE' | 'DELETE';
  readonly letter: 'r' | 'w' | 'c' | 'd';
  /** The node that lacks it, as the message names it. */
  readonly on: string;
  /** The node to name in the `setAcl` hint. */
  readonly node: string;
}

/** A NO_AUTH already described (so that a caller up the stack does not describe it again). */
class ZooKeeperRefusalError extends ZooKeeperError implements RegistryRefusal {
  readonly refusal = true as const;
  constructor(message: string, options: { cause: unknown; path: string; operation?: string }) {
    super('NO_AUTH', message, options);
  }
}

/**
 * Which permission a NO_AUTH of `operation` on `path` lacks: ZooKeeper checks CREATE and DELETE on
 * the parent, READ (listing, reading, watching) and WRITE on the node itself; `mkdirp` needs CREATE
 * on the deepest node that exists, which the error does not tell.
 */
export function missingPermission(operation: string | undefined, path: string): MissingPermission {
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  switch (operation) {
    case 'create':
      return { permission: 'CREATE', letter: 'c', on: parent, node: parent };
    case 'mkdirp':
      return { permission: 'CREATE', letter: 'c', on: `the deepest existing node of ${path}`, node: '<that node>' };
    case 'remove':
      return { permission: 'DELETE', letter: 'd', on: parent, node: parent };
    case 'setData':
      return { permission: 'WRITE', letter: 'w', on: path, node: path };
    default:
      return { permission: 'READ', letter: 'r', on: path, node: path };
  }
}

/**
 * A NO_AUTH as a `ZooKeeperError` (still `SB_ZK_NO_AUTH`) whose message names the connect string,
 * the user (never its password), the node and the permission missing there, with the zkCli grant;
 * any other error comes back unchanged. A bare "getChildren /zsb: NO_AUTH" names neither the user
 * nor what to grant, so it read like an outage.
 */
export function describeZooKeeperRefusal(error: unknown, context: ZooKeeperRefusalContext): unknown {
  if (!isZooKeeperError(error, 'NO_AUTH') || error instanceof ZooKeeperRefusalError || error.path === undefined) return error;
  const { connectString, username } = context;
  const missing = missingPermission(error.operation, error.path);
  const user = username === undefined ? 'the client, connected without auth (world:anyone),' : `digest user "${username}"`;
  const message = `ZooKeeper ${connectString} refused ${user} the ${missing.permission} permission on ${missing.on} (${error.message}): grant it there, ${grantHint(missing, username)}`;
  return new ZooKeeperRefusalError(message, { cause: error, path: error.path, ...(error.operation === undefined ? {} : { operation: error.operation }) });
}

/** How to grant `missing` to `username` (undefined: `world:anyone`) with zkCli, keeping the node's other entries. */
export function grantHint({ letter, node }: MissingPermission, username: string | undefined): string {
  const entry = username === undefined ? `world:anyone:${letter}` : `digest:${username}:<base64 sha1 of ${username}:password>:${letter}`;
  return `keeping the node's other ACL entries (zkCli: getAcl ${node}, then setAcl ${node} <those entries>,${entry})`;
}

/** The user of a `user:password` digest, for naming it in a refusal; undefined without one. */
export function digestUser(digest: string | undefined): string | undefined {
  return digest === undefined ? undefined : digest.slice(0, digest.indexOf(':'));
}
