import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogLinesFrom, logSize, startGateway, startZooKeeper, waitFor, type GatewayProcess, type JsonLogLine, type ZooKeeperCluster } from '../harness/index.ts';

// Each ZooKeeper session supervisor gives up on a client at its connect deadline (3-10 s) and tries
// another after a backoff: this many failures of the faster ones come well inside the first reminder's 30 s.
const FAILURES = 3;
/** The supervisors with the shorter connect deadlines: the config store's and the peer list's. */
const COMPONENTS = ['config-store', 'gateway'] as const;
const FAILED = 'ZooKeeper client failed; retrying';
const WARN = 40;

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

  it('warns once per session supervisor while ZooKeeper is down, however often each gives up on a client, and says when each has a session again', async () => {
    await waitFor(async () => (await linesFrom(0)).some((line) => line.msg === 'registration registered'), { timeoutMs: 20_000, message: 'the gateway to register' });
    const from = await logSize(gateway.process);
    await zookeeper.nodes[0]!.stop();
    // The window ends once each supervisor has failed FAILURES times (its retries are at debug, or warnings without the fix).
    const during = await waitFor(
      async () => {
        const lines = await linesFrom(from);
        return COMPONENTS.every((component) => failures(lines, component).length >= FAILURES) ? lines : undefined;
      },
      { timeoutMs: 60_000, message: `each session supervisor to fail ${FAILURES} times` },
    );
    expect(Object.fromEntries(COMPONENTS.map((component) => [component, failures(during, component).filter((line) => line.level === WARN).length]))).toEqual({ 'config-store': 1, gateway: 1 });

    const restartedAt = await logSize(gateway.process);
    await zookeeper.nodes[0]!.restart();
    const established = (lines: readonly JsonLogLine[], component: string) => lines.filter((line) => line.msg === 'ZooKeeper session established' && line.component === component).length;
    const after = await waitFor(
      async () => {
        const lines = await linesFrom(restartedAt);
        return COMPONENTS.every((component) => established(lines, component) > 0) ? lines : undefined;
      },
      { timeoutMs: 30_000, message: 'each session supervisor to have a session again' },
    );
    expect(Object.fromEntries(COMPONENTS.map((component) => [component, established(after, component)]))).toEqual({ 'config-store': 1, gateway: 1 });
  });
});
