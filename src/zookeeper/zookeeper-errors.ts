import zookeeper from 'node-zookeeper-client';
import { SwitchboardError, errorMessage } from '../errors.ts';

/** ZooKeeper result codes the gateway and the agent act on, by the library's constant names. */
export const ZOOKEEPER_ERROR_NAMES = [
  'NO_NODE',
  'NODE_EXISTS',
  'NOT_EMPTY',
  'BAD_VERSION',
  'NO_CHILDREN_FOR_EPHEMERALS',
  'CONNECTION_LOSS',
  'OPERATION_TIMEOUT',
  'SESSION_EXPIRED',
  'NO_AUTH',
  'AUTH_FAILED',
  'INVALID_ACL',
  'BAD_ARGUMENTS',
  'MARSHALLING_ERROR',
  'SYSTEM_ERROR',
  'UNIMPLEMENTED',
] as const;

/** A known ZooKeeper result name, or `UNKNOWN` for anything else the library or the socket threw. */
export type ZooKeeperErrorName = (typeof ZOOKEEPER_ERROR_NAMES)[number] | 'UNKNOWN';

const NAME_BY_CODE = new Map<number, ZooKeeperErrorName>(ZOOKEEPER_ERROR_NAMES.map((name) => [zookeeper.Exception[name], name]));

/** Results worth retrying on the same or the next session: the request may not have reached the server. */
const TRANSIENT: ReadonlySet<ZooKeeperErrorName> = new Set(['CONNECTION_LOSS', 'OPERATION_TIMEOUT', 'SESSION_EXPIRED']);

/**
 * A failed ZooKeeper operation. `code` is stable (`SB_ZK_NO_NODE`, `SB_ZK_CONNECTION_LOSS`…),
 * `reason` is the ZooKeeper result name and `cause` the library's error.
 */
export class ZooKeeperError extends SwitchboardError {
  readonly reason: ZooKeeperErrorName;
  readonly path: string | undefined;
  /** The operation that failed (`create`, `setData`, `getData`…; of a `multi`, the operation in it that failed). */
  readonly operation: string | undefined;

  constructor(reason: ZooKeeperErrorName, message: string, options?: { cause?: unknown; path?: string; operation?: string }) {
    super(`SB_ZK_${reason}`, message, options);
    this.reason = reason;
    this.path = options?.path;
    this.operation = options?.operation;
  }

  /** True when retrying the operation later can succeed (connection loss, timeout, expiry). */
  get transient(): boolean {
    return TRANSIENT.has(this.reason);
  }
}

/** A client that did not finish its handshake before the connect deadline. */
export class ZooKeeperConnectTimeoutError extends SwitchboardError {
  constructor(connectString: string, timeoutMs: number) {
    super('SB_ZK_CONNECT_TIMEOUT', `no ZooKeeper session from ${connectString} within ${timeoutMs} ms`);
  }
}

/** Maps whatever an operation threw or called back with to a `ZooKeeperError` naming the operation and path. */
export function toZooKeeperError(error: unknown, operation: string, path: string): ZooKeeperError {
  if (error instanceof ZooKeeperError) return error;
  const code = typeof (error as { code?: unknown } | null)?.code === 'number' ? (error as { code: number }).code : undefined;
  const reason = (code === undefined ? undefined : NAME_BY_CODE.get(code)) ?? 'UNKNOWN';
  return new ZooKeeperError(reason, `${operation} ${path}: ${reason === 'UNKNOWN' ? errorMessage(error) : reason}`, { cause: error, path, operation });
}

/** True when `error` is a `ZooKeeperError` with result `reason`. */
export function isZooKeeperError(error: unknown, reason: ZooKeeperErrorName): error is ZooKeeperError {
  return error instanceof ZooKeeperError && error.reason === reason;
}
