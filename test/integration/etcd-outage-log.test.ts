import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogLinesFrom, logOf, logSize, startEtcd, startGateway, waitFor, type EtcdCluster, type GatewayProcess, type JsonLogLine } from '../harness/index.ts';

// Each component retries its etcd session with backoff (100 ms doubling to 5 s, jittered): this many
// failures come within a few seconds of the stop, well inside the first reminder's 30 s.
const FAILURES = 4;

/** What each component says when its session ends, and when it has its listing again. */
const COMPONENTS = [
  { name: 'registry', failed: 'etcd session ended, retrying', recovered: 'registry connected' },
  { name: 'config store', failed: 'config store session ended; keeping the last listing and retrying', recovered: 'config store listed again: its outage is over' },
  { name: 'peer watch', failed: 'peer watch ended; the peer list stays as it was, re-listing', recovered: 'peer list read again: its outage is over' },
] as const;

const WARN = 40;

describe('an etcd outage under a gateway with an etcd registry, config store and peers', () => {
  let etcd: EtcdCluster;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    etcd = await startEtcd();
    const hostPort = etcd.endpoints[0]!.replace('http://', '');
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
registries: [etcd://${hostPort}/services]
configStore: etcd://${hostPort}/sb
peers: { id: outage-gw, ttl: 3000 }
routes: []
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await etcd?.close();
  });

  // The harness runs the gateway at debug: its retries are in the log too.
  const linesFrom = (from: number) => jsonLogLinesFrom(gateway.process, from);
  const registryState = async () => ((await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/registries`)).json()) as { registries: Array<{ state: string }> }).registries[0]?.state;

  it('warns once per component while etcd is down, however often each retries, and logs one recovery line per component', async () => {
    await waitFor(async () => (await logOf(gateway.process)).includes('"msg":"registration registered"') && (await registryState()) === 'connected', { timeoutMs: 20_000, message: 'the gateway to register and list' });
    const from = await logSize(gateway.process);
    await etcd.members[0]!.stop();
    // The window ends once every component has failed FAILURES times (its retries are at debug, or warnings without the fix).
    const during = await waitFor(
      async () => {
        const lines = await linesFrom(from);
        return COMPONENTS.every(({ failed }) => lines.filter((line) => line.msg === failed).length >= FAILURES) ? lines : undefined;
      },
      { timeoutMs: 30_000, message: `each component to fail ${FAILURES} times` },
    );
    const warnings = (message: string, lines: readonly JsonLogLine[]) => lines.filter((line) => line.level === WARN && line.msg === message).length;
    expect(Object.fromEntries(COMPONENTS.map(({ name, failed }) => [name, warnings(failed, during)]))).toEqual({ registry: 1, 'config store': 1, 'peer watch': 1 });
    // The admin API still shows the outage.
    expect(await registryState()).toBe('stale');

    const restartedAt = await logSize(gateway.process);
    await etcd.members[0]!.restart();
    const after = await waitFor(
      async () => {
        const lines = await linesFrom(restartedAt);
        return COMPONENTS.every(({ recovered }) => lines.some((line) => line.msg === recovered)) ? lines : undefined;
      },
      { timeoutMs: 30_000, message: 'each component to say it has recovered' },
    );
    expect(Object.fromEntries(COMPONENTS.map(({ name, recovered }) => [name, after.filter((line) => line.msg === recovered).length]))).toEqual({ registry: 1, 'config store': 1, 'peer watch': 1 });
    expect(await registryState()).toBe('connected');
  });
});
