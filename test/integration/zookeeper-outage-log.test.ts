import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogLinesFrom, logSize, startGateway, startZooKeeper, waitFor, type GatewayProcess, type JsonLogLine, type ZooKeeperCluster } from '../harness/index.ts';

// Every ZooKeeper session is a `ZooKeeperSessionSupervisor`: the peer list's, whose session timeout and connect
// deadline are the peers' ttl (3 s), shows its log soonest. It gives up on a client at each deadline and tries
// another after a backoff (100 ms doubling): its first failures come well inside the first reminder's 30 s.
const FAILURES = 3;
const COMPONENT = 'gateway';
const FAILED = 'ZooKeeper client failed; retrying';
const WARN = 40;
const DEBUG = 20;

describe('a ZooKeeper outage under a gateway with a ZooKeeper registry, config store and peers', () => {
  let zookeeper: ZooKeeperCluster;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    zookeeper = await startZooKeeper();
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
registries: [zk://${zookeeper.connectString}/services]
configStore: zk://${zookeeper.connectString}/sb
peers: { id: outage-gw, ttl: 3000 }
routes: []
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await zookeeper?.close();
  });

  // The harness runs the gateway at debug: its retries are in the log too.
  const linesFrom = (from: number) => jsonLogLinesFrom(gateway.process, from);
  const failures = (lines: readonly JsonLogLine[], component: string) => lines.filter((line) => line.msg === FAILED && line.component === component);

  it('warns once while ZooKeeper is down, however often the session supervisor gives up on a client, and says when it has a session again', async () => {
    await waitFor(async () => (await linesFrom(0)).some((line) => line.msg === 'registration registered'), { timeoutMs: 20_000, message: 'the gateway to register' });
    const from = await logSize(gateway.process);
    await zookeeper.nodes[0]!.stop();
    // Its first FAILURES failures (retries at debug, or warnings without the fix), however many have come since.
    const first = await waitFor(
      async () => {
        const lines = failures(await linesFrom(from), COMPONENT);
        return lines.length >= FAILURES ? lines.slice(0, FAILURES) : undefined;
      },
      { timeoutMs: 30_000, message: `the session supervisor to fail ${FAILURES} times` },
    );
    expect(first.map((line) => line.level)).toEqual([WARN, ...Array<number>(FAILURES - 1).fill(DEBUG)]);

    const restartedAt = await logSize(gateway.process);
    await zookeeper.nodes[0]!.restart();
    const established = (lines: readonly JsonLogLine[]) => lines.filter((line) => line.msg === 'ZooKeeper session established' && line.component === COMPONENT).length;
    await waitFor(async () => established(await linesFrom(restartedAt)) > 0, { timeoutMs: 30_000, message: 'the session supervisor to have a session again' });
    expect(established(await linesFrom(restartedAt))).toBe(1);
  });
});
