import type { ACL, Client, Stat } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { callZooKeeper, operationTimeoutOf } from './zookeeper-call.ts';
import { toZooKeeperError } from './zookeeper-errors.ts';

const ANYONE = new zookeeper.Id('world', 'anyone');
/** ZooKeeper's `OPEN_ACL_UNSAFE` (the library has it, its type definitions do not): every right to anyone. */
const OPEN: ACL[] = [new zookeeper.ACL(zookeeper.Permission.ALL, ANYONE)];

/**
 * Who may read what an authenticated client writes: `anyone` (the registry's policy: an instance's
 * address is no secret, and gateways without credentials still discover it) or `owner` (the config
 * store's: its objects carry credential headers and API key digests, so only its user reads them).
 */
export type ZooKeeperReadAccess = 'anyone' | 'owner';

/**
 * The ACL of the nodes a client writes: open to all (ZooKeeper's `OPEN_ACL_UNSAFE`) for a client
 * without credentials; for one with digest credentials, every right to the identities it
 * authenticated as (the `auth` scheme), and reading to anyone unless `read` is `owner`, so that only
 * holders of those credentials can change or delete what it wrote.
 */
export function writeAcls(authenticated: boolean, read: ZooKeeperReadAccess = 'anyone'): ACL[] {
  if (!authenticated) return OPEN;
  const owner = new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('auth', ''));
  return read === 'owner' ? [owner] : [owner, new zookeeper.ACL(zookeeper.Permission.READ, ANYONE)];
}

/** Creates `path` with `data` in `mode` (a `CreateMode`) under `acls` (open by default); rejects with a `ZooKeeperError` (NODE_EXISTS…). */
export function create(client: Client, path: string, data: Buffer, mode: number, acls: ACL[] = OPEN): Promise<void> {
  return settle(client, 'create', path, (done) => client.create(path, data, acls, mode, (error) => done(error)));
}

/** Creates `path` and its missing parents as persistent nodes under `acls` (open by default); an existing path is fine. */
export function mkdirp(client: Client, path: string, acls: ACL[] = OPEN): Promise<void> {
  return settle(client, 'mkdirp', path, (done) => client.mkdirp(path, acls, zookeeper.CreateMode.PERSISTENT, (error) => done(error)));
}

/** Replaces the data of `path` if its version is still `version` (-1: any version). */
export function setData(client: Client, path: string, data: Buffer, version: number): Promise<Stat> {
  let stat: Stat | undefined;
  return settle(client, 'setData', path, (done) =>
    client.setData(path, data, version, (error, result) => {
      stat = result;
      done(error);
    }),
  ).then(() => stat!);
}

/** Deletes `path` if its version is still `version` (-1: any version). */
export function remove(client: Client, path: string, version: number): Promise<void> {
  return settle(client, 'remove', path, (done) => client.remove(path, version, (error) => done(error)));
}

/** Session id that owns an ephemeral node, as 16 hex digits; all zeros for a persistent node. */
export function ephemeralOwnerOf(stat: Stat): string {
  return Buffer.from(stat.ephemeralOwner).toString('hex');
}

// Bounded like every read: a write queued on a dead client rejects with OPERATION_TIMEOUT.
function settle(client: Client, operation: string, path: string, start: (done: (error: unknown) => void) => void): Promise<void> {
  return callZooKeeper<[]>(operation, path, operationTimeoutOf(client), (done) => start((error) => done(error))).then(() => undefined);
}

/** One operation of a `multi`, in the library's `Transaction` terms. */
export type ZooKeeperOp = { op: 'check'; path: string; version: number } | { op: 'setData'; path: string; data: Buffer; version: number } | { op: 'remove'; path: string; version: number } | { op: 'create'; path: string; data: Buffer; acls: ACL[]; mode: number };

/**
 * Runs `ops` as one ZooKeeper transaction (`multi`): all apply or none does. Rejects with a
 * `ZooKeeperError` of the first operation that failed (BAD_VERSION, NO_NODE, NODE_EXISTS…), whose
 * `operation` and `path` are that operation's (`create` of the object, not the whole transaction).
 */
export function multi(client: Client, ops: readonly ZooKeeperOp[]): Promise<void> {
  return settle(client, 'multi', ops.map((op) => op.path).join(','), (done) => {
    let transaction = client.transaction();
    // The library's check/setData/remove take `version || -1`, so version 0 became "any version"
    // (lib/Transaction.js); the queued operation is given the exact version back.
    const queued = (transaction as unknown as { ops: { version?: number }[] }).ops;
    for (const op of ops) {
      if (op.op === 'check') transaction = transaction.check(op.path, op.version);
      else if (op.op === 'setData') transaction = transaction.setData(op.path, op.data, op.version);
      else if (op.op === 'remove') transaction = transaction.remove(op.path, op.version);
      else transaction = transaction.create(op.path, op.data, op.acls, op.mode);
      if (op.op !== 'create') queued[queued.length - 1]!.version = op.version;
    }
    transaction.commit((error, results: unknown) => done(error && failedOperationError(error, ops, results)));
  });
}

/**
 * The error of the operation that failed a transaction: ZooKeeper answers OK for the operations
 * before it, its code for it, and RUNTIME_INCONSISTENCY for those after (the library reports the
 * first non-OK). The whole error is kept when the results do not say which one failed.
 */
function failedOperationError(error: unknown, ops: readonly ZooKeeperOp[], results: unknown): unknown {
  const index = Array.isArray(results) ? results.findIndex((result: { err?: unknown } | undefined) => typeof result?.err === 'number' && result.err !== zookeeper.Exception.OK) : -1;
  const op = index >= 0 ? ops[index] : undefined;
  return op ? toZooKeeperError(error, op.op, op.path) : error;
}
