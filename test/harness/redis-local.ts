import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, retryOnPortClash } from './ports.ts';
import { LocalNode } from './local-node.ts';
import { makeTempDir, ManagedProcess, removeTempDir, waitUntilReady } from './process.ts';
import { waitFor } from './wait.ts';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 1_000;
/** Slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16_384;
/** Cluster nodes never mark each other failed within a test: a paused node stays a member that does not answer. */
const CLUSTER_NODE_TIMEOUT_MS = 600_000;

/** One `redis-server` (Debian package) on a free loopback port, with no persistence, and its data dir. */
export class LocalRedis extends LocalNode {
  readonly host = HOST;
  readonly port: number;
  readonly dir: string;
  /** `redis://127.0.0.1:<port>`, the form ioredis and the gateway's config take. */
  readonly url: string;

  /** The port of its Cluster bus, for a Cluster node. */
  readonly clusterPort: number | undefined;

  /** With `clusterPort`, a Cluster node without slots (its bus there: port + 10000 may be past 65535). */
  constructor(dir: string, port: number, name = 'redis', clusterPort?: number) {
    super();
    this.dir = dir;
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
    this.clusterPort = clusterPort;
    const cluster = clusterPort === undefined ? [] : ['--cluster-enabled', 'yes', '--cluster-port', String(clusterPort), '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS)];
    this.process = new ManagedProcess({
      name,
      command: 'redis-server',
      args: [
        '--port', String(port),
        '--bind', HOST,
        '--dir', dir,
        // No snapshots or append-only file: a test's Redis starts empty and writes nothing to disk.
        '--save', '',
        '--appendonly', 'no',
        '--protected-mode', 'no',
        '--daemonize', 'no',
        '--loglevel', 'warning',
        ...cluster,
      ],
      logFile: join(dir, 'redis.log'),
      cwd: dir,
    });
  }

  /** Resolves once the server answers PING with PONG. */
  async waitReady(): Promise<void> {
    await waitUntilReady(this.process, () => redisPing(HOST, this.port), { what: `redis-server on ${this.url}`, timeoutMs: READY_TIMEOUT_MS });
  }

  /** Process id of the current run (for `kill -STOP` style tests beyond pause/resume). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** Stops the server (if it runs) and removes its directory. */
  async close(): Promise<void> {
    if (this.process.paused) this.process.resume();
    await this.process.stop();
    await removeTempDir(this.dir);
  }
}

/**
 * Starts a `redis-server` on a free loopback port and waits until it answers PING; with `cluster`,
 * as a Cluster node without slots, its bus on a free port too.
 */
export function startLocalRedis(name = 'redis', options: { cluster?: boolean } = {}): Promise<LocalRedis> {
  return retryOnPortClash(async () => {
    const dir = await makeTempDir('switchboard-redis-');
    const redis = new LocalRedis(dir, await freePort(), name, options.cluster ? await freePort() : undefined);
    redis.start();
    try {
      await redis.waitReady();
    } catch (error) {
      await redis.close();
      throw error;
    }
    return redis;
  });
}

/**
 * True when a RESP `PING` on a fresh connection answers `+PONG` within a second; false when the
 * connection fails, closes before a whole reply line (even with a plain FIN and no error) or stays silent.
 */
export function redisPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let answer = '';
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      resolve(ok);
    };
    // A deadline of its own: socket.setTimeout is an idle timer, which a close without an error
    // clears, and then nothing would settle this (waitUntilReady would lose its whole budget on it).
    const deadline = setTimeout(() => done(false), PING_TIMEOUT_MS);
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

/**
 * Starts a Redis Cluster of `size` masters without replicas, each holding an equal share of the
 * slots, and waits until every node reports it ok.
 */
export async function startLocalRedisCluster(size = 3): Promise<LocalRedis[]> {
  const nodes: LocalRedis[] = [];
  try {
    const started = await Promise.allSettled(Array.from({ length: size }, (_, index) => startLocalRedis(`redis-cluster-${index}`, { cluster: true })));
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const admins = nodes.map((node) => new Redis({ host: node.host, port: node.port, lazyConnect: true }));
    try {
      await Promise.all(
        admins.map(async (admin, index) => {
          const first = Math.floor((CLUSTER_SLOTS * index) / size);
          const last = Math.floor((CLUSTER_SLOTS * (index + 1)) / size) - 1;
          await admin.call('CLUSTER', 'ADDSLOTSRANGE', first, last);
          if (index > 0) await admin.call('CLUSTER', 'MEET', HOST, nodes[0]!.port, nodes[0]!.clusterPort!);
        }),
      );
      await waitFor(async () => (await Promise.all(admins.map(async (admin) => String(await admin.call('CLUSTER', 'INFO'))))).every((info) => info.includes('cluster_state:ok')) || undefined, {
        timeoutMs: READY_TIMEOUT_MS,
        message: 'the redis cluster reports cluster_state:ok on every node',
      });
    } finally {
      for (const admin of admins) admin.disconnect();
    }
    return nodes;
  } catch (error) {
    await Promise.all(nodes.map((node) => node.close()));
    throw error;
  }
}
