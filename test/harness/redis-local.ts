import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';
import { LocalNode, startLocalNode } from './local-node.ts';
import { ManagedProcess, removeTempDir, waitUntilReady } from './process.ts';
import { waitFor } from './wait.ts';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 1_000;
/** Slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16_384;
/** Cluster nodes never mark each other failed within a test: a paused node stays a member that does not answer. */
const CLUSTER_NODE_TIMEOUT_MS = 600_000;

/** A `redis-server` process (a server or a Sentinel) in a folder of its own, which `close` removes. */
abstract class LocalRedisProcess extends LocalNode {
  readonly host = HOST;
  readonly dir: string;

  constructor(dir: string) {
    super();
    this.dir = dir;
  }

  /** Stops the process (if it runs) and removes its folder. */
  async close(): Promise<void> {
    if (this.process.paused) this.process.resume();
    await this.process.stop();
    await removeTempDir(this.dir);
  }
}

/** One `redis-server` (Debian package) on a free loopback port, with no persistence, and its data dir. */
export class LocalRedis extends LocalRedisProcess {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, the form ioredis and the gateway's config take. */
  readonly url: string;

  /** The port of its Cluster bus, for a Cluster node. */
  readonly clusterPort: number | undefined;

  /** The port of its TLS listener, when started with `tls`. */
  readonly tlsPort: number | undefined;

  /** With `tls.only`: the options its own readiness ping connects with (its certificate as the client's). */
  readonly #pingTls: ConnectionOptions | undefined;

  /**
   * With `clusterPort`, a Cluster node without slots (its bus there: port + 10000 may be past 65535);
   * with `tls`, a TLS listener on `tls.port` too (beside the plain one, or alone with `tls.only`:
   * `port` is then not listened on), its clients required to present a certificate `tls.caFile`
   * signed; `extraArgs` are appended (`--user …` ACL lines).
   */
  constructor(dir: string, port: number, name = 'redis', clusterPort?: number, options: { tls?: RedisTlsListener; extraArgs?: readonly string[] } = {}) {
    super(dir);
    this.tlsPort = options.tls?.port;
    this.#pingTls = options.tls?.only ? tlsClientOptions(options.tls) : undefined;
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
    this.clusterPort = clusterPort;
    const cluster = clusterPort === undefined ? [] : ['--cluster-enabled', 'yes', '--cluster-port', String(clusterPort), '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS)];
    this.process = new ManagedProcess({
      name,
      command: 'redis-server',
      args: [
        '--port', options.tls?.only ? '0' : String(port),
        '--bind', HOST,
        '--dir', dir,
        // No snapshots or append-only file: a test's Redis starts empty and writes nothing to disk.
        '--save', '',
        '--appendonly', 'no',
        '--protected-mode', 'no',
        '--daemonize', 'no',
        '--loglevel', 'warning',
        ...cluster,
        ...(options.tls ? ['--tls-port', String(options.tls.port), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile, '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', 'yes', ...(options.tls.only ? ['--tls-replication', 'yes'] : [])] : []),
        ...(options.extraArgs ?? []),
      ],
      logFile: join(dir, 'redis.log'),
      cwd: dir,
    });
  }

  /** Resolves once the server answers PING with PONG. */
  async waitReady(): Promise<void> {
    const [port, tls] = this.#pingTls ? [this.tlsPort!, this.#pingTls] : [this.port, undefined];
    await waitUntilReady(this.process, () => redisPing(HOST, port, undefined, tls), { what: `redis-server on ${HOST}:${port}`, timeoutMs: READY_TIMEOUT_MS });
  }

  /** Process id of the current run (for `kill -STOP` style tests beyond pause/resume). */
  get pid(): number | undefined {
    return this.process.pid;
  }

}

/**
 * A TLS listener of a test Redis: its port, its server certificate and the CA its clients'
 * certificates chain to; with `only`, the server listens on no plain port and its certificate must
 * be good for a client too (`clientAuth`): its readiness ping (and a Sentinel's connections) present it.
 */
export interface RedisTlsListener {
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  readonly only?: boolean;
}

/** node:tls options that present `tls`' certificate and trust its CA, the name unchecked (test certificates name test hosts). */
function tlsClientOptions(tls: Omit<RedisTlsListener, 'port'>): ConnectionOptions {
  return { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), checkServerIdentity: () => undefined };
}

/**
 * Starts a `redis-server` on a free loopback port and waits until it answers PING; with `cluster`,
 * as a Cluster node without slots, its bus on a free port too; with `tls`, a TLS listener on a
 * free port beside the plain one; `extraArgs` appended to its command line.
 */
export function startLocalRedis(name = 'redis', options: { cluster?: boolean; tls?: Omit<RedisTlsListener, 'port'>; extraArgs?: readonly string[] } = {}): Promise<LocalRedis> {
  return startLocalNode(
    'switchboard-redis-',
    async (dir) => {
      const tls = options.tls && { ...options.tls, port: await freePort() };
      return new LocalRedis(dir, await freePort(), name, options.cluster ? await freePort() : undefined, { ...(tls ? { tls } : {}), ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}) });
    },
    (redis) => [redis],
  );
}

/**
 * A Redis Sentinel (`redis-server --sentinel`, Debian's package) on a free loopback port watching
 * `master` under the name `name` (quorum 1), its clients required to AUTH with `password`; with
 * `tls`, `port` is a TLS port and the only one (clients and the master reached over TLS, the
 * Sentinel presenting `tls.certFile`, which must then be good for a client too).
 */
export class LocalRedisSentinel extends LocalRedisProcess {
  readonly port: number;
  readonly #password: string;
  readonly #pingTls: ConnectionOptions | undefined;

  constructor(dir: string, port: number, master: { host: string; port: number }, name: string, password: string, tls?: Omit<RedisTlsListener, 'port' | 'only'>) {
    super(dir);
    this.port = port;
    this.#password = password;
    this.#pingTls = tls && tlsClientOptions(tls);
    const configFile = join(dir, 'sentinel.conf');
    const listen = tls
      ? ['port 0', `tls-port ${port}`, `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, `tls-ca-cert-file ${tls.caFile}`, 'tls-auth-clients yes', 'tls-replication yes']
      : [`port ${port}`];
    // Sentinel rewrites its file (it records what it learns), so each one gets a file of its own.
    writeFileSync(configFile, [...listen, `bind ${HOST}`, 'daemonize no', 'protected-mode no', `dir ${dir}`, `requirepass ${password}`, `sentinel monitor ${name} ${master.host} ${master.port} 1`, ''].join('\n'));
    this.process = new ManagedProcess({ name: 'redis-sentinel', command: 'redis-server', args: [configFile, '--sentinel', '--loglevel', 'warning'], logFile: join(dir, 'sentinel.log'), cwd: dir });
  }

  /** Resolves once the Sentinel answers PING after AUTH. */
  async waitReady(): Promise<void> {
    await waitUntilReady(this.process, () => redisPing(HOST, this.port, this.#password, this.#pingTls), { what: `redis sentinel on ${HOST}:${this.port}`, timeoutMs: READY_TIMEOUT_MS });
  }

}

/** Starts a `LocalRedisSentinel` watching `master` as `name`, with `password` (with `tls`, on a TLS port only), and waits until it answers. */
export function startLocalRedisSentinel(master: { host: string; port: number }, name: string, password: string, tls?: Omit<RedisTlsListener, 'port' | 'only'>): Promise<LocalRedisSentinel> {
  return startLocalNode('switchboard-sentinel-', async (dir) => new LocalRedisSentinel(dir, await freePort(), master, name, password, tls), (sentinel) => [sentinel]);
}

/**
 * True when a RESP `PING` on a fresh connection (over TLS with `tls`; after `AUTH password`, when
 * given) answers `+PONG` within a second; false when the connection fails, closes before the reply
 * line (even with a plain FIN and no error) or stays silent.
 */
export function redisPing(host: string, port: number, password?: string, tls?: ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls ? tlsConnect({ ...tls, host, port }) : createConnection({ host, port });
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
    socket.on(tls ? 'secureConnect' : 'connect', () => socket.write(password === undefined ? 'PING\r\n' : `AUTH ${password}\r\nPING\r\n`));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      const lines = answer.split('\r\n');
      const expected = password === undefined ? 1 : 2;
      if (lines.length > expected) done(lines[expected - 1]!.startsWith('+PONG'));
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
