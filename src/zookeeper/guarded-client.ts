import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import zookeeper, { type Client, type Event } from 'node-zookeeper-client';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { ZooKeeperFrameSplitter } from './zookeeper-frames.ts';
import { ADD_WATCH_OPCODE, AddWatchRequest, registerRecursiveWatchSupport } from './zookeeper-recursive-watch.ts';

/**
 * One node-zookeeper-client instance wrapped with the guards a supervisor needs. This file is the
 * only one that touches the library's private `connectionManager` (pinned to 1.1.3). It also gives the
 * client ZooKeeper 3.6's recursive watches, which the library lacks (`zookeeper-recursive-watch.ts`).
 */
export interface GuardedClient {
  readonly client: Client;
  /** Starts connecting; never throws. */
  connect(): void;
  /** Epoch milliseconds of the last bytes received from the server (creation time before any). */
  lastReceivedAt(): number;
  /** Drops the socket so that the library notices a dead connection and reconnects on the same session. */
  dropConnection(): void;
  /**
   * Ends the client for good and never throws: a connected client closes its session (ephemeral
   * nodes go at once), waiting at most `graceMs` for the server; any other client is aborted
   * without a close request. Resolves once the socket is gone and no reconnect can start.
   */
  retire(graceMs: number): Promise<void>;
}

/** Options passed through to the library; `retries` stays 0 because callers own their retry policy. */
export interface GuardedClientOptions {
  readonly sessionTimeoutMs: number;
  /** Upper bound of the library's random pause after it tried every server; 1000 ms by default. */
  readonly spinDelayMs?: number;
  /** Attach to this existing session instead of creating one (closing it then ends that session). */
  readonly session?: { readonly id: Buffer; readonly password: Buffer };
  /**
   * `user:password` of ZooKeeper's digest authentication: the library sends it on every connection
   * right after the handshake, before any request, so each request runs with that identity.
   */
  readonly digest?: string;
}

/** Builds guarded clients; the supervisor takes one so tests can substitute a fake. */
export type GuardedClientFactory = (connectString: string, options: GuardedClientOptions, log: Logger) => GuardedClient;

/** A request in the library's queues: its header (null for the connect request) and its callback. */
interface QueuedPacket {
  request: { header: { xid: number; type: number } | null };
  callback?: (error: unknown) => void;
}

/** The parts of the library's ConnectionManager the guards use (lib/ConnectionManager.js). */
interface ConnectionManagerInternals extends EventEmitter {
  state: number;
  socket?: Socket;
  pendingBuffer: Buffer | null;
  /** The last zxid the server reported; the library sends it when it reconnects. */
  zxid: Buffer;
  /** Requests sent and waiting for their reply, in the order the server answers them. */
  pendingQueue: QueuedPacket[];
  watcherManager: { emit(watcherEvent: { type: number; path: string }): void };
  onSocketData(buffer: Buffer): void;
  findNextServer(callback: (server: unknown) => void): void;
  setState(state: number): void;
  cleanupPendingQueue(errorCode: number): void;
  queue(request: object, callback: (error: unknown) => void): void;
  packetQueue?: { queue?: Array<{ callback?: (error: Error) => void }> };
}

const MANAGER_CONNECTED = 2;
const MANAGER_CONNECTED_READ_ONLY = 3;
const MANAGER_CLOSING = -1;
const MANAGER_CLOSED = -2;

/** Creates a real node-zookeeper-client with the guards installed. */
export const createGuardedClient: GuardedClientFactory = (connectString, options, log) => {
  const client = zookeeper.createClient(connectString, {
    sessionTimeout: options.sessionTimeoutMs,
    spinDelay: options.spinDelayMs ?? 1_000,
    retries: 0,
    // Supported by the library (lib/ConnectionManager.js) but missing from its type definitions.
    ...(options.session ? { sessionId: options.session.id, sessionPassword: options.session.password } : {}),
  } as Partial<zookeeper.Option>);
  if (options.digest !== undefined) client.addAuthInfo('digest', Buffer.from(options.digest, 'utf8'));
  const manager = (client as unknown as { connectionManager?: ConnectionManagerInternals }).connectionManager;
  let lastReceivedAt = Date.now();
  let framesReset: () => void = () => undefined;
  let retired: Promise<void> | undefined;

  if (manager) {
    // A reply the parser cannot map (a close request racing the handshake makes it read the
    // connect response as a reply: "Unknown code") throws inside a socket 'data' listener, where
    // nothing else could catch it. Treat it as a broken connection instead of a process crash.
    // The library is fed one whole frame per call (see ZooKeeperFrameSplitter for why).
    const onSocketData = manager.onSocketData;
    const frames = new ZooKeeperFrameSplitter();
    framesReset = () => frames.reset();
    let framedSocket: Socket | undefined;
    manager.onSocketData = function guardedOnSocketData(this: ConnectionManagerInternals, buffer: Buffer) {
      lastReceivedAt = Date.now();
      const socket = this.socket;
      if (socket !== framedSocket) {
        // A new connection: a partial frame of the old one must not prefix its stream.
        frames.reset();
        framedSocket = socket;
      }
      try {
        // A frame that made the library drop the socket ends this chunk: the rest belongs to a dead connection.
        frames.push(buffer, (frame) => {
          if (!takeAddWatchReply(this, frame, log)) onSocketData.call(this, frame);
          return this.socket === socket && socket?.destroyed !== true;
        });
      } catch (error) {
        log.warn({ err: errorMessage(error) }, 'ZooKeeper client failed to parse a reply; dropping the connection');
        frames.reset();
        this.pendingBuffer = null;
        this.socket?.destroy();
      }
    };
    installRecursiveWatches(client, manager, log);
    // Once retired, a reconnect the library already scheduled must not open a socket again.
    const findNextServer = manager.findNextServer;
    manager.findNextServer = function guardedFindNextServer(this: ConnectionManagerInternals, callback) {
      findNextServer.call(this, (server) => {
        if (!retired) callback(server);
      });
    };
  }

  const abort = (): void => {
    if (!manager) return;
    // CLOSING makes the library's socket 'close' handler finish in CLOSED instead of reconnecting.
    if (manager.state !== MANAGER_CLOSED) manager.setState(MANAGER_CLOSING);
    const socket = manager.socket;
    if (socket && !socket.destroyed) socket.destroy();
  };

  return {
    client,
    connect() {
      try {
        client.connect();
      } catch (error) {
        log.warn({ err: errorMessage(error) }, 'ZooKeeper client failed to start connecting');
      }
    },
    lastReceivedAt: () => lastReceivedAt,
    dropConnection() {
      if (retired || !manager) return;
      // The library keeps a half-read frame across reconnects; it would corrupt the next stream.
      manager.pendingBuffer = null;
      framesReset();
      manager.socket?.destroy();
    },
    retire(graceMs) {
      retired ??= new Promise<void>((resolve) => {
        if (!manager) {
          resolve();
          return;
        }
        const finish = (): void => {
          clearTimeout(timer);
          manager.off('state', onState);
          failQueuedRequests(manager);
          resolve();
        };
        const onState = (state: number): void => {
          if (state === MANAGER_CLOSED) finish();
        };
        manager.on('state', onState);
        const graceful = manager.state === MANAGER_CONNECTED && manager.socket !== undefined && !manager.socket.destroyed;
        const timer = setTimeout(
          () => {
            abort();
            finish();
          },
          graceful ? graceMs : 0,
        );
        try {
          if (graceful) client.close();
          else abort();
        } catch (error) {
          log.warn({ err: errorMessage(error) }, 'ZooKeeper client failed to close; aborting it');
          abort();
        }
      });
      return retired;
    },
  };
};

/** Bytes of a reply frame up to the end of its header: length, xid, zxid, err. */
const REPLY_HEADER_END = 4 + 4 + 8 + 4;

/**
 * Takes the reply to an `addWatch` request out of the stream: the oldest request waiting for a
 * reply is that request and `frame` answers it (by xid). Does what the library does for a reply
 * it knows (drops the request from its queue, keeps the zxid, calls back) and returns true; false
 * for any other frame (the connect response, a notification, a ping, another reply).
 */
function takeAddWatchReply(manager: ConnectionManagerInternals, frame: Buffer, log: Logger): boolean {
  // Not while connecting or closing: a connect response read in those states is not a reply.
  if ((manager.state !== MANAGER_CONNECTED && manager.state !== MANAGER_CONNECTED_READ_ONLY) || frame.length < REPLY_HEADER_END) return false;
  const waiting = manager.pendingQueue[0];
  const header = waiting?.request.header;
  if (header?.type !== ADD_WATCH_OPCODE || header.xid !== frame.readInt32BE(4)) return false;
  manager.pendingQueue.shift();
  // As the Java client does: only a positive zxid counts. A server without addWatch answers with
  // -1, which the library would then send as the last zxid seen when it reconnects.
  if (frame.readBigInt64BE(8) > 0n) manager.zxid = Buffer.from(frame.subarray(8, 16));
  const code = frame.readInt32BE(16);
  try {
    waiting!.callback?.(code === 0 ? null : libraryException(code));
  } catch (error) {
    log.error({ err: errorMessage(error) }, 'ZooKeeper addWatch callback failed');
  }
  return true;
}

/** Makes `client` able to arm recursive watches and report their notifications (see `zookeeper-recursive-watch.ts`). */
function installRecursiveWatches(client: Client, manager: ConnectionManagerInternals, log: Logger): void {
  const listeners = new Set<(event: Event) => void>();
  const watchers = manager.watcherManager;
  const emit = watchers.emit;
  const createEvent = (zookeeper.Event as unknown as { create(watcherEvent: { type: number; path: string }): Event }).create;
  watchers.emit = function emitToRecursiveListeners(this: unknown, watcherEvent) {
    if (listeners.size > 0 && watcherEvent.type >= zookeeper.Event.NODE_CREATED && watcherEvent.type <= zookeeper.Event.NODE_CHILDREN_CHANGED) {
      const event = createEvent(watcherEvent);
      for (const listener of [...listeners]) {
        try {
          listener(event);
        } catch (error) {
          log.error({ err: errorMessage(error) }, 'ZooKeeper watch listener failed');
        }
      }
    }
    emit.call(this, watcherEvent);
  };
  registerRecursiveWatchSupport(client, {
    add(path, done) {
      try {
        manager.queue(new AddWatchRequest(path), done);
      } catch (error) {
        done(error);
      }
    },
    listen(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  });
}

/**
 * Fails requests still waiting in the library's queues, so no caller waits forever on a dead client.
 * The error must be the library's own `Exception`: its per-request callbacks call `getCode()` on it
 * (exists, mkdirp), and a plain Error made them throw, which stranded that request and every one
 * queued behind it (an agent's registration then waited forever on a retired client).
 */
export function failQueuedRequests(manager: Pick<ConnectionManagerInternals, 'cleanupPendingQueue' | 'packetQueue'>): void {
  try {
    manager.cleanupPendingQueue(zookeeper.Exception.CONNECTION_LOSS);
  } catch {
    // A throwing callback must not keep the queued requests below from failing.
  }
  const queued = manager.packetQueue?.queue ?? [];
  for (let packet = queued.shift(); packet; packet = queued.shift()) {
    try {
      packet.callback?.(libraryException(zookeeper.Exception.CONNECTION_LOSS));
    } catch {
      // Best effort: one caller's failure must not strand the others.
    }
  }
}

/**
 * The library's own `Exception` for `code`, which its callers expect (they call `getCode()` on
 * it); an error of the same shape for a code the library does not know (its factory throws then).
 */
function libraryException(code: number): Error {
  const create = (zookeeper.Exception as unknown as { create?: (code: number) => Error }).create;
  try {
    if (create) return create(code);
  } catch {
    // An unknown code: fall through.
  }
  return Object.assign(new Error(`ZooKeeper error ${code}`), { code, getCode: () => code });
}
