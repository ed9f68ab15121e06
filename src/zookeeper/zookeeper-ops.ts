import type { Client, Event, Stat } from 'node-zookeeper-client';
import { callZooKeeper, operationTimeoutOf } from './zookeeper-call.ts';
import { ZooKeeperError } from './zookeeper-errors.ts';
import { ZooKeeperGate } from './zookeeper-gate.ts';
import { recursiveWatchSupportOf } from './zookeeper-recursive-watch.ts';

/**
 * A one-shot ZooKeeper watch callback. The library keeps one registration per function and path,
 * so passing the same function again while a watch is armed does not stack notifications.
 */
export type ZooKeeperWatcher = (event: Event) => void;

/** Children of a node and the node's stat (`pzxid` moves with every child change). */
export interface ChildrenResult {
  readonly children: readonly string[];
  readonly stat: Stat;
}

/** Data of a node (null or empty when the node holds none) and its stat. */
export interface DataResult {
  readonly data: Buffer | null;
  readonly stat: Stat;
}

/**
 * The reads a watcher needs, bound to one session's client. Every method rejects with a
 * `ZooKeeperError` (never throws synchronously), `OPERATION_TIMEOUT` after the session timeout,
 * and arms `watcher` only when the read succeeds.
 */
export interface ZooKeeperReader {
  getChildren(path: string, watcher?: ZooKeeperWatcher): Promise<ChildrenResult>;
  getData(path: string, watcher?: ZooKeeperWatcher): Promise<DataResult>;
  /** Resolves null for a missing node; with a watcher, the watch then fires when the node is created. */
  exists(path: string, watcher?: ZooKeeperWatcher): Promise<Stat | null>;
  /**
   * Arms a persistent recursive watch on `path` (which may not exist yet) for the current
   * connection: from its reply on, every creation, deletion and data change at or below `path`
   * reaches the `listen` listeners, until the connection drops. Rejects `UNIMPLEMENTED` when the
   * server (before ZooKeeper 3.6) or the client cannot. Absent on readers that never can.
   */
  addRecursiveWatch?(path: string): Promise<void>;
  /** Calls `listener` with every notification of the session's client until the returned function is called. */
  listen?(listener: ZooKeeperWatcher): () => void;
}

/** Lists the children of `path`, arming a child watch when `watcher` is given. */
export function getChildren(client: Client, path: string, watcher?: ZooKeeperWatcher, wrap: StartWrapper = unwrapped): Promise<ChildrenResult> {
  return call(client, 'getChildren', path, wrap((done: (error: unknown, children: string[], stat: Stat) => void) => {
    if (watcher) client.getChildren(path, watcher, done);
    else client.getChildren(path, done);
  })).then(([children, stat]) => ({ children: children ?? [], stat }));
}

/** Reads the data of `path`, arming a data watch (change or deletion) when `watcher` is given. */
export function getData(client: Client, path: string, watcher?: ZooKeeperWatcher, wrap: StartWrapper = unwrapped): Promise<DataResult> {
  return call(client, 'getData', path, wrap((done: (error: unknown, data: Buffer, stat: Stat) => void) => {
    if (watcher) client.getData(path, watcher, done);
    else client.getData(path, done);
  })).then(([data, stat]) => ({ data: data ?? null, stat }));
}

/** Stat of `path` or null when it does not exist, arming a data or existence watch when `watcher` is given. */
export function exists(client: Client, path: string, watcher?: ZooKeeperWatcher, wrap: StartWrapper = unwrapped): Promise<Stat | null> {
  return call(client, 'exists', path, wrap((done: (error: unknown, stat: Stat) => void) => {
    if (watcher) client.exists(path, watcher, done);
    else client.exists(path, done);
  })).then(([stat]) => stat ?? null);
}

/** Arms a persistent recursive watch on `path`; see `ZooKeeperReader.addRecursiveWatch`. */
export async function addRecursiveWatch(client: Client, path: string): Promise<void> {
  const support = recursiveWatchSupportOf(client);
  if (!support) throw new ZooKeeperError('UNIMPLEMENTED', `addWatch ${path}: this client cannot send recursive watches`, { path });
  await call(client, 'addWatch', path, (done: (error: unknown) => void) => support.add(path, done));
}

/** Reads one reader keeps in flight at most by default; the rest wait their turn (see `ZooKeeperGate`). */
export const DEFAULT_MAX_READS_IN_FLIGHT = 256;

/**
 * A `ZooKeeperReader` over `client`, for code that should not know the library. At most
 * `maxInFlight` of its reads are sent at once; each read's timeout counts its wait for a slot.
 */
export function readerFor(client: Client, maxInFlight = DEFAULT_MAX_READS_IN_FLIGHT): ZooKeeperReader {
  const gate = new ZooKeeperGate(maxInFlight);
  const gated =
    <A extends unknown[]>(start: (done: (error: unknown, ...results: A) => void) => void) =>
    (done: (error: unknown, ...results: A) => void): (() => void) =>
      gate.admit((ticket) => {
        try {
          start((error, ...results) => {
            ticket.release();
            done(error, ...results);
          });
        } catch (error) {
          ticket.release();
          (done as unknown as (error: unknown) => void)(error ?? new Error('unknown failure'));
        }
      }).release;
  return {
    getChildren: (path, watcher) => getChildren(client, path, watcher, gated),
    getData: (path, watcher) => getData(client, path, watcher, gated),
    exists: (path, watcher) => exists(client, path, watcher, gated),
    addRecursiveWatch: (path) => addRecursiveWatch(client, path),
    listen: (listener) => recursiveWatchSupportOf(client)?.listen(listener) ?? (() => undefined),
  };
}

/** A zxid (8 bytes, big-endian) as decimal text, the form snapshots carry as `revision`. */
export function zxidToString(zxid: Buffer | undefined): string {
  return zxid && zxid.length >= 8 ? zxid.readBigUInt64BE(0).toString() : '0';
}

/** The larger of two zxids in `zxidToString` form. */
export function maxZxid(a: string, b: string): string {
  return BigInt(a) >= BigInt(b) ? a : b;
}

type Start<A extends unknown[]> = (done: (error: unknown, ...results: A) => void) => void | (() => void);

/** Wraps how a call is started (a gate); `callZooKeeper` calls what the wrapped start returns on timeout. */
type StartWrapper = <A extends unknown[]>(start: (done: (error: unknown, ...results: A) => void) => void) => Start<A>;

const unwrapped: StartWrapper = (start) => start;

function call<A extends unknown[]>(client: Client, operation: string, path: string, start: Start<A>): Promise<A> {
  return callZooKeeper(operation, path, operationTimeoutOf(client), start);
}
