import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HarnessError } from './errors.ts';
import { jvmThreads } from './jvm-threads.ts';
import { freePort } from './ports.ts';
import { ManagedProcess, waitUntilReady } from './process.ts';
import { ZOOKEEPER_JAR } from './runtime.ts';
import { waitFor } from './wait.ts';
import { srvrMode, type ZooKeeperMode } from './zookeeper-four-letter-word.ts';
import type { ZooKeeperCluster, ZooKeeperNode, ZooKeeperOptions } from './zookeeper.ts';
import { killLocalNodes, LocalNode, startLocalNode } from './local-node.ts';

const DEFAULT_TICK_TIME_MS = 500;
const STANDALONE_READY_TIMEOUT_MS = 30_000;
const ENSEMBLE_READY_TIMEOUT_MS = 45_000;
const LEADER_TIMEOUT_MS = 20_000;
const HOST = '127.0.0.1';
/** The threads that elect, replicate, commit and expire sessions (not the JVM's or the 4lw workers). */
const SERVER_THREADS = /QuorumPeer|LearnerHandler|LearnerCnxAcceptor|CommitProc|ProcessThread|SyncThread|SessionTracker|RequestThrottler|RequestProcessor/;

// The Debian package puts no SLF4J binding on zookeeper.jar's class path; without these the server logs nothing.
const LOGGING_JARS = ['/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'];

const JVM_FLAGS = [
  '-Xmx256m',
  // Two cores and up to three JVMs: a small heap, the serial collector and C1 only keep start-up near one second.
  '-XX:+UseSerialGC',
  '-XX:TieredStopAtLevel=1',
  '-XX:-UsePerfData',
  '-Djava.net.preferIPv4Stack=true',
  '-Dzookeeper.jmx.log4j.disable=true',
  // Election connections to a frozen peer otherwise hang for the default 5 s.
  '-Dzookeeper.cnxTimeout=1000',
];

const LOG4J_PROPERTIES = `log4j.rootLogger=INFO,CONSOLE
# Tests poll srvr and dump several times a second; at INFO each poll is a line that pushes what the
# server did out of the log's tail (a failure message shows only the tail).
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=WARN
# Sessions added and removed: what a test of session expiry needs to see when it fails.
log4j.logger.org.apache.zookeeper.server.SessionTrackerImpl=DEBUG
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
`;

interface Ports {
  readonly client: number;
  readonly peer: number;
  readonly election: number;
}

class LocalZooKeeperNode extends LocalNode implements ZooKeeperNode {
  readonly id: number;
  readonly clientPort: number;
  readonly connectString: string;
  readonly logFile: string;
  readonly #expectedModes: readonly ZooKeeperMode[];
  readonly #readyTimeoutMs: number;

  constructor(id: number, dir: string, ports: Ports, ensemble: boolean) {
    super();
    this.id = id;
    this.clientPort = ports.client;
    this.connectString = `${HOST}:${ports.client}`;
    this.logFile = join(dir, 'zookeeper.log');
    this.#expectedModes = ensemble ? ['leader', 'follower'] : ['standalone'];
    this.#readyTimeoutMs = ensemble ? ENSEMBLE_READY_TIMEOUT_MS : STANDALONE_READY_TIMEOUT_MS;
    const mainClass = ensemble ? 'org.apache.zookeeper.server.quorum.QuorumPeerMain' : 'org.apache.zookeeper.server.ZooKeeperServerMain';
    const classPath = ['/etc/zookeeper/conf', ZOOKEEPER_JAR, ...LOGGING_JARS.filter((jar) => existsSync(jar))].join(':');
    this.process = new ManagedProcess({
      name: `zookeeper-${id}`,
      command: 'java',
      args: [...JVM_FLAGS, `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`, '-cp', classPath, mainClass, join(dir, 'zoo.cfg')],
      logFile: this.logFile,
      cwd: dir,
    });
  }

  async waitReady(timeoutMs = this.#readyTimeoutMs): Promise<void> {
    await waitUntilReady(this.process, async () => this.#expectedModes.includes(await this.mode()), {
      what: `ZooKeeper node ${this.id} (${this.connectString})`,
      timeoutMs,
      intervalMs: 100,
    });
  }

  async mode(): Promise<ZooKeeperMode> {
    if (!this.process.running || this.process.paused) return 'down';
    return srvrMode(HOST, this.clientPort);
  }

  threads(): Promise<string> {
    return jvmThreads(this.process.running ? this.process.pid : undefined, this.logFile, SERVER_THREADS);
  }

}

function zooCfg(dataDir: string, ports: Ports, all: readonly Ports[], ensemble: boolean, options: ZooKeeperOptions): string {
  const tick = options.tickTimeMs ?? DEFAULT_TICK_TIME_MS;
  const lines = [
    `tickTime=${tick}`,
    // In ticks: followers get 5 s to sync at start-up and are dropped 2 s after they stop answering.
    `initLimit=${Math.max(2, Math.ceil(5_000 / tick))}`,
    `syncLimit=${Math.max(2, Math.ceil(2_000 / tick))}`,
    `dataDir=${dataDir}`,
    `clientPort=${ports.client}`,
    `clientPortAddress=${HOST}`,
    `minSessionTimeout=${options.minSessionTimeoutMs ?? 2 * tick}`,
    `maxSessionTimeout=${options.maxSessionTimeoutMs ?? 20 * tick}`,
    '4lw.commands.whitelist=*',
    'admin.enableServer=false',
    `standaloneEnabled=${ensemble ? 'false' : 'true'}`,
    // Test data is disposable: skip fsync and the 64 MB log preallocation.
    'forceSync=no',
    'preAllocSize=1024',
    'maxClientCnxns=0',
  ];
  if (ensemble) {
    all.forEach((peer, index) => lines.push(`server.${index + 1}=${HOST}:${peer.peer}:${peer.election}`));
  }
  return `${lines.join('\n')}\n`;
}

/** Starts `size` local ZooKeeper servers from the Debian package (standalone unless `ensemble`) and waits until they serve. */
export function startLocalZooKeeper(size: number, options: ZooKeeperOptions, { ensemble = false } = {}): Promise<ZooKeeperCluster> {
  return startLocalNode(
    'switchboard-zk-',
    (root) => new LocalZooKeeperCluster([], root, ensemble),
    async (cluster, root) => {
      const ports: Ports[] = [];
      for (let i = 0; i < size; i += 1) ports.push({ client: await freePort(), peer: await freePort(), election: await freePort() });
      for (const [index, nodePorts] of ports.entries()) {
        const id = index + 1;
        const dir = join(root, `node-${id}`);
        const dataDir = join(dir, 'data');
        await mkdir(dataDir, { recursive: true });
        await writeFile(join(dataDir, 'myid'), `${id}\n`);
        await writeFile(join(dir, 'zoo.cfg'), zooCfg(dataDir, nodePorts, ports, ensemble, options));
        await writeFile(join(dir, 'log4j.properties'), LOG4J_PROPERTIES);
        cluster.nodes.push(new LocalZooKeeperNode(id, dir, nodePorts, ensemble));
      }
      return cluster.nodes;
    },
  );
}

class LocalZooKeeperCluster implements ZooKeeperCluster {
  /** Filled in while it starts. */
  readonly nodes: LocalZooKeeperNode[];
  readonly #root: string;
  readonly #ensemble: boolean;
  #closed = false;

  constructor(nodes: LocalZooKeeperNode[], root: string, ensemble: boolean) {
    this.nodes = nodes;
    this.#root = root;
    this.#ensemble = ensemble;
  }

  get connectString(): string {
    return this.nodes.map((node) => node.connectString).join(',');
  }

  async leader(): Promise<ZooKeeperNode> {
    const wanted: ZooKeeperMode = this.#ensemble ? 'leader' : 'standalone';
    let modes: ZooKeeperMode[] = [];
    try {
      return await waitFor(
        async () => {
          modes = await Promise.all(this.nodes.map((node) => node.mode()));
          const leaders = this.nodes.filter((_, index) => modes[index] === wanted);
          return leaders.length === 1 ? leaders[0] : undefined;
        },
        { timeoutMs: LEADER_TIMEOUT_MS, intervalMs: 100, message: `exactly one ZooKeeper node in mode ${wanted}` },
      );
    } catch (error) {
      const seen = this.nodes.map((node, index) => `node ${node.id}: ${modes[index] ?? '?'}`).join(', ');
      throw new HarnessError(`${(error as Error).message} (last seen ${seen}; logs: ${this.nodes.map((n) => n.logFile).join(', ')})`, { cause: error });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await killLocalNodes(this.nodes, this.#root);
  }
}
