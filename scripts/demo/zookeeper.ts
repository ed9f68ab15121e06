import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '../../test/harness/wait.ts';
import { srvrMode } from '../../test/harness/zookeeper-four-letter-word.ts';
import { DemoChild, type ChildSpec } from './child.ts';

/** Where the Debian package installs the server jar; `scripts/demo.mjs` installs it when missing. */
export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';

const READY_TIMEOUT_MS = 45_000;
const TICK_TIME_MS = 1_000;

// The Debian package puts no SLF4J binding on zookeeper.jar's class path; without these the server logs nothing.
const LOGGING_JARS = ['/usr/share/java/slf4j-log4j12.jar', '/usr/share/java/log4j-1.2.jar'];

// A small heap, the serial collector and C1 only: the demo shares two cores with five Node processes.
const JVM_FLAGS = ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Djava.net.preferIPv4Stack=true', '-Dzookeeper.jmx.log4j.disable=true'];

const LOG4J_PROPERTIES = `log4j.rootLogger=INFO,CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
`;

/** A standalone ZooKeeper the demo runs, and the address agents and the gateway use. */
export interface DemoZooKeeper {
  readonly process: DemoChild;
  readonly connectString: string;
}

/**
 * Writes a zoo.cfg under `dir` (data there too), starts ZooKeeper standalone on 127.0.0.1:`port`
 * and resolves once `srvr` reports it serving (`ruok` answers before it does).
 */
export async function startZooKeeper(dir: string, port: number, onUnexpectedExit: ChildSpec['onUnexpectedExit']): Promise<DemoZooKeeper> {
  const dataDir = join(dir, 'zookeeper-data');
  await mkdir(dataDir, { recursive: true });
  const config = [
    `tickTime=${TICK_TIME_MS}`,
    `dataDir=${dataDir}`,
    `clientPort=${port}`,
    'clientPortAddress=127.0.0.1',
    // Agents ask for 4 s sessions; the default floor (2 × tickTime) allows it.
    `minSessionTimeout=${2 * TICK_TIME_MS}`,
    `maxSessionTimeout=${20 * TICK_TIME_MS}`,
    '4lw.commands.whitelist=srvr,ruok',
    // The AdminServer's default port is 8080, the gateway's.
    'admin.enableServer=false',
    // Demo data is disposable: skip fsync and the 64 MB log preallocation.
    'forceSync=no',
    'preAllocSize=1024',
  ];
  await writeFile(join(dir, 'zoo.cfg'), `${config.join('\n')}\n`);
  await writeFile(join(dir, 'log4j.properties'), LOG4J_PROPERTIES);
  const classPath = ['/etc/zookeeper/conf', ZOOKEEPER_JAR, ...LOGGING_JARS.filter((jar) => existsSync(jar))].join(':');
  const child = new DemoChild({
    name: 'ZooKeeper',
    command: 'java',
    args: [...JVM_FLAGS, `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`, '-cp', classPath, 'org.apache.zookeeper.server.ZooKeeperServerMain', join(dir, 'zoo.cfg')],
    logFile: join(dir, 'logs', 'zookeeper.log'),
    cwd: dir,
    onUnexpectedExit,
  });
  child.start();
  await waitFor(async () => !child.running || (await srvrMode('127.0.0.1', port)) === 'standalone', {
    timeoutMs: READY_TIMEOUT_MS,
    intervalMs: 100,
    message: `ZooKeeper on 127.0.0.1:${port} to serve (log: ${child.logFile})`,
  });
  return { process: child, connectString: `127.0.0.1:${port}` };
}
