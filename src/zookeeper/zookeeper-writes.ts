import type { Client, Stat } from 'node-zookeeper-client';
import zookeeper from 'node-zookeeper-client';
import { toZooKeeperError } from './zookeeper-errors.ts';

/** Creates `path` with `data` in `mode` (a `CreateMode`); rejects with a `ZooKeeperError` (NODE_EXISTS…). */
export function create(client: Client, path: string, data: Buffer, mode: number): Promise<void> {
  return settle('create', path, (done) => client.create(path, data, mode, (error) => done(error)));
}

/** Creates `path` and its missing parents as persistent nodes; an existing path is fine. */
export function mkdirp(client: Client, path: string): Promise<void> {
  return settle('mkdirp', path, (done) => client.mkdirp(path, zookeeper.CreateMode.PERSISTENT, (error) => done(error)));
}

/** Replaces the data of `path` if its version is still `version` (-1: any version). */
export function setData(client: Client, path: string, data: Buffer, version: number): Promise<Stat> {
  let stat: Stat | undefined;
  return settle('setData', path, (done) =>
    client.setData(path, data, version, (error, result) => {
      stat = result;
      done(error);
    }),
  ).then(() => stat!);
}

/** Deletes `path` if its version is still `version` (-1: any version). */
export function remove(client: Client, path: string, version: number): Promise<void> {
  return settle('remove', path, (done) => client.remove(path, version, (error) => done(error)));
}

/** Session id that owns an ephemeral node, as 16 hex digits; all zeros for a persistent node. */
export function ephemeralOwnerOf(stat: Stat): string {
  return Buffer.from(stat.ephemeralOwner).toString('hex');
}

function settle(operation: string, path: string, start: (done: (error: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      // The library validates arguments by throwing synchronously.
      start((error) => (error ? reject(toZooKeeperError(error, operation, path)) : resolve()));
    } catch (error) {
      reject(toZooKeeperError(error, operation, path));
    }
  });
}
