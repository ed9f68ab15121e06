import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { ZooKeeperFrameSplitter } from './zookeeper-frames.ts';

/**
 * One node-zookeeper-client instance wrapped with the guards a supervisor needs. This file is the
 * only one that touches the library's private `connectionManager` (pinned to 1.1.3).
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
}

/** Builds guarded clients; the supervisor takes one so tests can substitute a fake. */
export type GuardedClientFactory = (connectString: string, options: GuardedClientOptions, log: Logger) => GuardedClient;

/** The parts of the library's ConnectionManager the guards use (lib/ConnectionManager.js). */
interface ConnectionManagerInternals extends EventEmitter {
  state: number;
  socket?: Socket;
  pendingBuffer: Buffer | null;
  onSocketData(buffer: Buffer): void;
  findNextServer(callback: (server: unknown) => void): void;
  setState(state: number): void;
  cleanupPendingQueue(errorCode: number): void;
  packetQueue?: { queue?: Array<{ callback?: (error: Error) => void }> };
}

const MANAGER_CONNECTED = 2;
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
          onSocketData.call(this, frame);
          return this.socket === socket && socket?.destroyed !== true;
        });
      } catch (error) {
        log.warn({ err: errorMessage(error) }, 'ZooKeeper client failed to parse a reply; dropping the connection');
        frames.reset();
        this.pendingBuffer = null;
        this.socket?.destroy();
      }
    };
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
      packet.callback?.(connectionLoss());
    } catch {
      // Best effort: one caller's failure must not strand the others.
    }
  }
}

function connectionLoss(): Error {
  const create = (zookeeper.Exception as unknown as { create?: (code: number) => Error }).create;
  return create ? create(zookeeper.Exception.CONNECTION_LOSS) : Object.assign(new Error('CONNECTION_LOSS'), { code: zookeeper.Exception.CONNECTION_LOSS, getCode: () => zookeeper.Exception.CONNECTION_LOSS });
}
