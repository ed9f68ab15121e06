// The gateway's one way to reach Redis. ioredis rather than node-redis: one client speaks to a
// single server, a Sentinel-managed master and a Redis Cluster alike; `defineCommand` runs a Lua
// script by EVALSHA and falls back to EVAL on NOSCRIPT by itself; and `enableOfflineQueue: false`
// with `commandTimeout` makes every call fail fast instead of queueing while Redis is away.
import type { ConnectionOptions } from 'node:tls';
import { Cluster, MaxRetriesPerRequestError, Redis, type RedisOptions } from 'ioredis';
import { componentLogger } from '../../src/logger.ts';
import type { RedisSettings } from '../config/types.ts';

/** A connection to the configured Redis: a plain or Sentinel-backed `Redis`, or a `Cluster`. */
export type RedisConnection = Redis | Cluster;

/** Reconnect attempts back off to at most this (ms): a Redis that returns is found within it. */
const MAX_RECONNECT_DELAY_MS = 1_000;
/** A TCP connect may take a little longer than one command before it counts as failed. */
const MIN_CONNECT_TIMEOUT_MS = 1_000;
/** Connection errors are logged at most this often: a Redis that stays down must not flood the log. */
const ERROR_LOG_INTERVAL_MS = 30_000;

const log = componentLogger('redis');

/**
 * A new connection to `settings`' Redis. Every command has the `timeoutMs` deadline, none is queued
 * while disconnected (it fails at once), none is retried; the client keeps reconnecting in the
 * background (backing off to one second). Keys get `keyPrefix`.
 */
export function createRedisConnection(settings: RedisSettings): RedisConnection {
  const tls = tlsOf(settings);
  const options: RedisOptions = {
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...settings.credentials?.login(),
    ...(tls ? { tls } : {}),
    commandTimeout: settings.timeoutMs,
    connectTimeout: Math.max(MIN_CONNECT_TIMEOUT_MS, settings.timeoutMs),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    keyPrefix: settings.keyPrefix,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
  };
  const { target } = settings;
  let connection: RedisConnection;
  if (target.kind === 'cluster') {
    const { keyPrefix, retryStrategy: _retry, enableOfflineQueue: _queue, ...redisOptions } = options;
    connection = new Cluster(
      target.nodes.map((node) => ({ host: node.host, port: node.port })),
      { redisOptions, keyPrefix, enableOfflineQueue: false, clusterRetryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS), slotsRefreshTimeout: Math.max(MIN_CONNECT_TIMEOUT_MS, settings.timeoutMs) },
    );
  } else if (target.kind === 'sentinel') {
    const sentinelLogin = settings.sentinelCredentials?.login();
    connection = new Redis({
      ...options,
      sentinels: target.sentinels.map((node) => ({ host: node.host, port: node.port })),
      name: target.name,
      sentinelMaxConnections: 4,
      ...(sentinelLogin ? { sentinelPassword: sentinelLogin.password, ...(sentinelLogin.username !== undefined ? { sentinelUsername: sentinelLogin.username } : {}) } : {}),
      // One `tls` for both: a deployment that runs Redis over TLS runs its Sentinels so too.
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    });
  } else {
    connection = new Redis(target.url, options);
  }
  firstReady.set(connection, {
    ready: new Promise((resolve) =>
      connection.once('ready', () => {
        firstReady.delete(connection);
        resolve();
      }),
    ),
    timeoutMs: settings.timeoutMs,
  });
  let lastLogged = 0;
  connection.on('ready', () => socketErrors.delete(connection));
  // Without a listener ioredis prints every connection error to the console; callers see failures as rejected commands.
  connection.on('error', (error: Error) => {
    socketErrors.set(connection, error.message);
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return;
    lastLogged = now;
    log.warn({ target: describeTarget(settings), err: error.message }, 'redis connection error; reconnecting');
  });
  return connection;
}

/** Per connection, the last error it reported since it was last ready (a reset, a refused connect). */
const socketErrors = new WeakMap<RedisConnection, string>();

/**
 * What a failed call on `connection` says of its cause. ioredis rejects the commands in flight when
 * the connection drops with "Reached the max retries per request limit (which is 0)…", which names
 * an option, not what happened: that becomes the connection's loss, with the error it reported
 * (`read ECONNRESET`) when it reported one, and every other error its own message.
 */
export function redisFailureReason(connection: RedisConnection, error: unknown): string {
  if (!(error instanceof MaxRetriesPerRequestError)) return error instanceof Error ? error.message : String(error);
  const cause = socketErrors.get(connection);
  return `connection to redis lost with the command in flight (${cause ?? 'closed by redis or the network'})`;
}

/**
 * The node:tls options of `settings`' connections: the CA, client pair and server name of `tls`;
 * undefined without `tls` (a rediss:// url then verifies against the system roots).
 */
function tlsOf(settings: RedisSettings): ConnectionOptions | undefined {
  if (settings.tls === undefined) return undefined;
  return { ...settings.credentials?.tlsOptions(), ...(settings.tls.serverName !== undefined ? { servername: settings.tls.serverName } : {}) };
}

/** Connections made here that have not been ready yet: their first 'ready', and their command timeout. */
const firstReady = new WeakMap<RedisConnection, { readonly ready: Promise<void>; readonly timeoutMs: number }>();

/**
 * Resolves when `connection` is ready for the first time, or after its command timeout; undefined
 * once it has been ready. With the offline queue off, ioredis fails a command sent while the
 * connection is still being made at once: a gateway that takes requests the moment it listens
 * would start every limit in fallback (and with `onRedisError: deny` refuse its first requests).
 * Waiting for the first connection as for a slow answer avoids it.
 */
export function untilFirstReady(connection: RedisConnection): Promise<void> | undefined {
  const starting = firstReady.get(connection);
  if (!starting) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, starting.timeoutMs)));
  return Promise.race([starting.ready, timeout]).finally(() => clearTimeout(timer));
}

/** ioredis' rejection of a command past `commandTimeout` (it carries no code). */
const COMMAND_TIMED_OUT = 'Command timed out';
/** The `code` of a caller's own deadline on Redis calls (one shorter than `commandTimeout`): as telling as ioredis' timeout. */
export const REDIS_CALL_TIMED_OUT = 'REDIS_CALL_TIMED_OUT';

/**
 * How long a connection may go without a byte from Redis while its commands time out before it is
 * taken for silent. Redis answers every command, in order: a timed-out command's reply still comes
 * from a Redis that is only slow (a long script, `CLIENT PAUSE`), and bytes then arrive.
 */
export const SILENT_CONNECTION_MS = 2_000;

/**
 * Per connection, per node (the connection itself, or each node of a Cluster): its bytes read and
 * written when a command first timed out with none read from it since, and since when it owes
 * Redis' replies with none read (undefined while that is not known).
 */
interface QuietNode {
  readonly read: number;
  readonly written: number;
  owedSince: number | undefined;
}
const quietNodes = new WeakMap<RedisConnection, Map<Redis, QuietNode>>();

/**
 * Cuts the silent part of `connection` and lets it connect again when `error` is a command timeout
 * (ioredis' own, or one with the code `REDIS_CALL_TIMED_OUT`) while it reports itself ready and no
 * byte has come from Redis for `SILENT_CONNECTION_MS` since an earlier timeout. ioredis keeps a
 * connection whose commands time out; one whose path went silent without a reset (Redis failed
 * over behind the same address, a NAT or load balancer dropped the flow, the host died) would stay
 * "ready" and unanswered until the kernel gives up retransmitting, about 15 minutes. The connection
 * is shared by every limit and the flow statistics, so a Redis that is only slow (whose replies
 * come late) must not be cut for one timeout: every other user's commands would fail until it
 * reconnected. On a Cluster each node is judged alone, since the other nodes answering says nothing
 * of a silent one: a node that was sent commands since a timeout and has read nothing for
 * `SILENT_CONNECTION_MS` since (a timeout does not say which node it came from) is cut alone, and
 * ioredis connects to it again when it is next sent a command.
 */
export function reconnectIfSilent(connection: RedisConnection, error: unknown, now = Date.now()): void {
  if (connection.status !== 'ready' || !(error instanceof Error)) return;
  if (error.message !== COMMAND_TIMED_OUT && (error as { code?: unknown }).code !== REDIS_CALL_TIMED_OUT) return;
  const cluster = connection instanceof Cluster;
  const before = quietNodes.get(connection);
  const quiet = new Map<Redis, QuietNode>();
  const silent: Redis[] = [];
  for (const node of cluster ? connection.nodes() : [connection]) {
    const stream = node.stream as { bytesRead?: number; bytesWritten?: number } | undefined;
    const read = stream?.bytesRead ?? 0;
    const written = stream?.bytesWritten ?? 0;
    const last = before?.get(node);
    if (last === undefined || last.read !== read) {
      // A lone connection is the one the command timed out on: it owes a reply from now.
      quiet.set(node, { read, written, owedSince: cluster ? undefined : now });
      continue;
    }
    if (last.owedSince === undefined && written !== last.written) last.owedSince = now;
    if (last.owedSince !== undefined && now - last.owedSince >= SILENT_CONNECTION_MS) silent.push(node);
    else quiet.set(node, last);
  }
  quietNodes.set(connection, quiet);
  if (silent.length === 0) return;
  if (!cluster) {
    quietNodes.delete(connection);
    connection.disconnect(true);
    return;
  }
  // A Cluster's node does not reconnect by itself: ioredis drops it from its pool and connects
  // again when a command is next redirected to it.
  log.warn({ nodes: silent.map((node) => `${node.options.host}:${node.options.port}`) }, 'redis cluster node silent; cutting its connection');
  for (const node of silent) node.disconnect();
}

const shared = new Map<string, RedisConnection>();

/** The text that tells `settings` apart; settings come from one resolver, so equal settings give equal text. */
function keyOf(settings: RedisSettings): string {
  return JSON.stringify(settings);
}

/** Whether two `redis:` sections (either absent) name the same Redis the same way: a reload between them keeps every connection. */
export function sameRedisSettings(a: RedisSettings | undefined, b: RedisSettings | undefined): boolean {
  return (a === undefined ? undefined : keyOf(a)) === (b === undefined ? undefined : keyOf(b));
}

/**
 * The connection of this process to `settings`' Redis, made on first use and shared by every
 * caller with equal settings (one connection per process, however many limiters use it). A reload
 * that changes `redis:` opens a new one on first use; `releaseSharedRedis` closes the old one.
 */
export function sharedRedis(settings: RedisSettings): RedisConnection {
  const key = keyOf(settings);
  let connection = shared.get(key);
  if (!connection) {
    connection = createRedisConnection(settings);
    shared.set(key, connection);
  }
  return connection;
}

/** The `redis:` section of the last `releaseSharedRedisAfter` (in force when its release runs), and its timer. */
let releaseFor: { readonly settings: RedisSettings | undefined } | undefined;
let pendingRelease: NodeJS.Timeout | undefined;

/**
 * After a reload is applied: the shared connections to any Redis but `current`'s are closed
 * (`releaseSharedRedis`) once `graceMs` has passed, the drain timeout: requests admitted under the
 * previous configuration finish on its limits, which hold the connection they were built with. A
 * later reload that changes `redis:` restarts the wait with its own settings, so the ones in force
 * then are kept; one that keeps `redis:` changes nothing (every reload restarting the wait would
 * keep the previous Redis open for as long as reloads came within the drain timeout).
 */
export function releaseSharedRedisAfter(current: RedisSettings | undefined, graceMs: number): void {
  if (releaseFor && sameRedisSettings(releaseFor.settings, current)) return;
  const release = { settings: current };
  releaseFor = release;
  clearTimeout(pendingRelease);
  pendingRelease = setTimeout(() => void releaseSharedRedis(release.settings), graceMs);
  pendingRelease.unref();
}

/**
 * Closes every shared connection but the one of `current` (the `redis:` section now in force, if
 * any), each within `timeoutMs`; called once a reload is applied and the previous configuration's
 * requests have had their drain time (`releaseSharedRedisAfter`), when nothing is to use the others
 * any more. Without it a moved Redis kept its old connection open, reconnecting (and
 * logging) for as long as the process lived. Replies still due on a closed connection arrive first.
 */
export async function releaseSharedRedis(current: RedisSettings | undefined, timeoutMs = 1_000): Promise<void> {
  const kept = current === undefined ? undefined : keyOf(current);
  const released: RedisConnection[] = [];
  for (const [key, connection] of shared) {
    if (key === kept) continue;
    shared.delete(key);
    released.push(connection);
  }
  if (released.length > 0) log.info({ connections: released.length }, 'redis settings changed: closing the connections to the previous redis');
  await Promise.all(released.map((connection) => quitWithin(connection, timeoutMs)));
}

/** Closes every shared connection (bounded by `timeoutMs`, then cut); for tests and shutdown. */
export async function closeSharedRedis(timeoutMs = 1_000): Promise<void> {
  clearTimeout(pendingRelease);
  releaseFor = undefined;
  const connections = [...shared.values()];
  shared.clear();
  await Promise.all(connections.map((connection) => quitWithin(connection, timeoutMs)));
}

/** QUIT (Redis answers what was sent before it, then closes), cut after `timeoutMs` or at once when it cannot be sent (a Redis that is away). */
async function quitWithin(connection: RedisConnection, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => connection.disconnect(), timeoutMs);
  try {
    await connection.quit();
  } catch {
    connection.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/** The Redis in words for logs, without the password. */
export function describeTarget(settings: RedisSettings): string {
  const { target } = settings;
  if (target.kind === 'url') return target.url.replace(/\/\/[^@/]*@/, '//***@');
  const nodes = (target.kind === 'sentinel' ? target.sentinels : target.nodes).map((node) => `${node.host}:${node.port}`).join(',');
  return target.kind === 'sentinel' ? `sentinel ${target.name} via ${nodes}` : `cluster ${nodes}`;
}
