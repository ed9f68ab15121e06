import { createConnection } from 'node:net';
import { join } from 'node:path';
import { freePort, retryOnPortClash } from './ports.ts';
import { LocalNode } from './local-node.ts';
import { makeTempDir, ManagedProcess, removeTempDir, waitUntilReady } from './process.ts';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 1_000;

/** One `redis-server` (Debian package) on a free loopback port, with no persistence, and its data dir. */
export class LocalRedis extends LocalNode {
  readonly host = HOST;
  readonly port: number;
  readonly dir: string;
  /** `redis://127.0.0.1:<port>`, the form ioredis and the gateway's config take. */
  readonly url: string;

  constructor(dir: string, port: number, name = 'redis') {
    super();
    this.dir = dir;
    this.port = port;
    this.url = `redis://${HOST}:${port}`;
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

/** Starts a `redis-server` on a free loopback port and waits until it answers PING. */
export function startLocalRedis(name = 'redis'): Promise<LocalRedis> {
  return retryOnPortClash(async () => {
    const dir = await makeTempDir('switchboard-redis-');
    const redis = new LocalRedis(dir, await freePort(), name);
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
