import type { Client, Stat } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { callZooKeeper, operationTimeoutOf } from './zookeeper-call.ts';

/** Creates `path` with `data` in `mode` (a `CreateMode`); rejects with a `ZooKeeperError` (NODE_EXISTS…). */
export function create(client: Client, path: string, data: Buffer, mode: number): Promise<void> {
  return settle(client, 'create', path, (done) => client.create(path, data, mode, (error) => done(error)));
}

/** Creates `path` and its missing parents as persistent nodes; an existing path is fine. */
export function mkdirp(client: Client, path: string): Promise<void> {
  return settle(client, 'mkdirp', path, (done) => client.mkdirp(path, zookeeper.CreateMode.PERSISTENT, (error) => done(error)));
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
