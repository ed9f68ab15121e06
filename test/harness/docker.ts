import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { StartedTestContainer } from 'testcontainers';
import type { EtcdCluster, EtcdMember } from './etcd.ts';
import { etcdHealthy } from './etcd-http.ts';
import { HarnessError } from './errors.ts';
import { freePort } from './ports.ts';
import { makeTempDir, readTail, removeTempDir } from './process.ts';
import { waitFor } from './wait.ts';
import { srvrMode, type ZooKeeperMode } from './zookeeper-four-letter-word.ts';
import type { ZooKeeperCluster, ZooKeeperNode, ZooKeeperOptions } from './zookeeper.ts';
import type { RegistryNode } from './registry-node.ts';

/** Image used for ZooKeeper on the Docker path. */
export const ZOOKEEPER_IMAGE = 'zookeeper:3.8';
/** Image used for etcd on the Docker path. */
export const ETCD_IMAGE = 'gcr.io/etcd-development/etcd:v3.5.17';

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_S = 5;

function unsupported(what: string): HarnessError {
  return new HarnessError(`${what} is not supported with containers yet; run with SWITCHBOARD_TEST_RUNTIME=local (needs \`apt-get install -y zookeeper etcd-server\`)`);
}

interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  readonly containerPort: number;
  readonly environment?: Record<string, string>;
  readonly command?: (host: string, hostPort: number) => string[];
  readonly ready: (host: string, hostPort: number) => Promise<boolean>;
}

/** One container bound to a fixed host port, so its address survives restarts like a local process's does. */
class ContainerProcess {
  readonly logFile: string;
  readonly hostPort: number;
  readonly #spec: ContainerSpec;
  #started: StartedTestContainer | undefined;
  #running = false;

  constructor(spec: ContainerSpec, hostPort: number, logDir: string) {
    this.#spec = spec;
    this.hostPort = hostPort;
    this.logFile = join(logDir, `${spec.name}.log`);
  }

  get host(): string {
    return this.#started?.getHost() ?? '127.0.0.1';
  }

  get running(): boolean {
    return this.#running;
  }

  async start(): Promise<void> {
    const { GenericContainer } = await import('testcontainers');
    let container = new GenericContainer(this.#spec.image)
      .withExposedPorts({ container: this.#spec.containerPort, host: this.hostPort })
      .withEnvironment(this.#spec.environment ?? {})
      .withStartupTimeout(READY_TIMEOUT_MS)
      .withLogConsumer((stream) => this.#appendLogs(stream));
    // The advertised client URL must name the host-side address, which exists only once the host is known.
    if (this.#spec.command) container = container.withCommand(this.#spec.command('127.0.0.1', this.hostPort));
    this.#started = await container.start();
    this.#running = true;
    await this.waitReady();
  }

  async waitReady(): Promise<void> {
    try {
      await waitFor(() => this.#spec.ready(this.host, this.hostPort), { timeoutMs: READY_TIMEOUT_MS, intervalMs: 200, message: `${this.#spec.name} container to become ready` });
    } catch (error) {
      throw new HarnessError(`${(error as Error).message}\n--- ${this.logFile} (tail) ---\n${await readTail(this.logFile)}`, { cause: error });
    }
  }

  async stop(timeoutS = STOP_GRACE_S): Promise<void> {
    if (!this.#running) return;
    const { client, container } = await this.#raw();
    await client.container.stop(container, { timeout: timeoutS });
    this.#running = false;
  }

  async kill(): Promise<void> {
    if (!this.#running) return;
    const { container } = await this.#raw();
    await container.kill({ signal: 'SIGKILL' });
    await waitFor(async () => !(await container.inspect()).State.Running, { timeoutMs: 10_000, message: `${this.#spec.name} container to exit` });
    this.#running = false;
  }

  async restart(): Promise<void> {
    await this.stop();
    const { client, container } = await this.#raw();
    await client.container.start(container);
    this.#running = true;
    this.#appendLogs(await client.container.logs(container, { follow: true, since: Math.floor(Date.now() / 1000) }));
    await this.waitReady();
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#started?.stop({ timeout: 0, remove: true });
  }

  async #raw() {
    const started = this.#started;
    if (!started) throw new HarnessError(`${this.#spec.name} container was never started`);
    const { getContainerRuntimeClient } = await import('testcontainers');
    const client = await getContainerRuntimeClient();
    return { client, container: client.container.getById(started.getId()) };
  }

  #appendLogs(stream: Readable): void {
    stream.pipe(createWriteStream(this.logFile, { flags: 'a' }));
  }
}

/** The process controls every single-node container shares; pause() and resume() are not supported with containers yet. */
abstract class ContainerNode implements RegistryNode {
  constructor(protected readonly container: ContainerProcess) {}

  get logFile(): string { return this.container.logFile; }
  get running(): boolean { return this.container.running; }
  stop(): Promise<void> { return this.container.stop(); }
  kill(): Promise<void> { return this.container.kill(); }
  pause(): void { throw unsupported('pause()'); }
  resume(): void { throw unsupported('resume()'); }
  restart(): Promise<void> { return this.container.restart(); }
  logTail(): Promise<string> { return readTail(this.logFile); }
}

class ContainerZooKeeperNode extends ContainerNode implements ZooKeeperNode {
  readonly id = 1;

  get clientPort(): number { return this.container.hostPort; }
  get connectString(): string { return `${this.container.host}:${this.container.hostPort}`; }

  async mode(): Promise<ZooKeeperMode> {
    return this.running ? srvrMode(this.container.host, this.container.hostPort) : 'down';
  }
}

class ContainerEtcdMember extends ContainerNode implements EtcdMember {
  readonly name = 'etcd-1';

  get clientUrl(): string { return `http://${this.container.host}:${this.container.hostPort}`; }
}

async function startContainer(spec: ContainerSpec, prefix: string): Promise<{ container: ContainerProcess; close: () => Promise<void> }> {
  const logDir = await makeTempDir(prefix);
  const container = new ContainerProcess(spec, await freePort(), logDir);
  const close = async (): Promise<void> => {
    await container.close();
    await removeTempDir(logDir);
  };
  try {
    await container.start();
  } catch (error) {
    await close().catch(() => undefined);
    if (error instanceof HarnessError) throw error;
    throw new HarnessError(`could not start the ${spec.image} container (is a Docker engine running?): ${(error as Error).message}`, { cause: error });
  }
  return { container, close };
}

/** Starts ZooKeeper 3.8 in a container (standalone) with the same tuning as the local path. */
export async function startZooKeeperContainer(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const tick = options.tickTimeMs ?? 500;
  const { container, close } = await startContainer(
    {
      name: 'zookeeper-1',
      image: ZOOKEEPER_IMAGE,
      containerPort: 2181,
      environment: {
        ZOO_TICK_TIME: String(tick),
        ZOO_4LW_COMMANDS_WHITELIST: '*',
        ZOO_ADMINSERVER_ENABLED: 'false',
        ZOO_STANDALONE_ENABLED: 'true',
        ZOO_CFG_EXTRA: `minSessionTimeout=${options.minSessionTimeoutMs ?? 2 * tick} maxSessionTimeout=${options.maxSessionTimeoutMs ?? 20 * tick}`,
        JVMFLAGS: '-Xmx256m',
      },
      ready: async (host, port) => (await srvrMode(host, port)) === 'standalone',
    },
    'switchboard-zk-docker-',
  );
  const node = new ContainerZooKeeperNode(container);
  return {
    nodes: [node],
    get connectString() { return node.connectString; },
    leader: async () => waitFor(async () => ((await node.mode()) === 'standalone' ? node : undefined), { timeoutMs: 20_000, message: 'the ZooKeeper container to serve' }),
    close,
  };
}

/** Starts one etcd 3.5 member in a container with sub-second elections. */
export async function startEtcdContainer(): Promise<EtcdCluster> {
  const { container, close } = await startContainer(
    {
      name: 'etcd-1',
      image: ETCD_IMAGE,
      containerPort: 2379,
      command: (host, port) => [
        '/usr/local/bin/etcd', '--name', 'etcd-1', '--data-dir', '/etcd-data',
        '--listen-client-urls', 'http://0.0.0.0:2379', '--advertise-client-urls', `http://${host}:${port}`,
        '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
        '--initial-cluster', 'etcd-1=http://127.0.0.1:2380', '--election-timeout', '100', '--heartbeat-interval', '10',
      ],
      ready: (host, port) => etcdHealthy(`http://${host}:${port}`),
    },
    'switchboard-etcd-docker-',
  );
  const member = new ContainerEtcdMember(container);
  return {
    members: [member],
    get endpoints() { return [member.clientUrl]; },
    leader: async () => waitFor(() => etcdHealthy(member.clientUrl).then((ok) => (ok ? member : undefined)), { timeoutMs: 20_000, message: 'the etcd container to have a leader' }),
    close,
  };
}

/** Ensembles need container networking the harness does not set up yet; always throws. */
export async function startZooKeeperEnsembleContainers(_size: number, _options: ZooKeeperOptions): Promise<ZooKeeperCluster> {
  throw unsupported('a ZooKeeper ensemble');
}

/** Multi-member clusters need container networking the harness does not set up yet; always throws. */
export async function startEtcdClusterContainers(_size: number): Promise<EtcdCluster> {
  throw unsupported('an etcd cluster');
}
