import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLogLinesFrom, logOf, logSize, startEtcd, startGateway, startTcpProxy, waitFor, type EtcdCluster, type GatewayProcess, type JsonLogLine, type TcpProxy } from '../harness/index.ts';

const run = promisify(execFile);

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

describe('an etcd that refuses the gateway once it is back from an outage', () => {
  let etcd: EtcdCluster;
  let proxy: TcpProxy;
  let gateway: GatewayProcess;
  const FAILED = COMPONENTS[0].failed;

  beforeAll(async () => {
    etcd = await startEtcd();
    const { hostname, port } = new URL(etcd.endpoints[0]!);
    // The gateway reaches etcd through a relay, so that its outage leaves etcd running for etcdctl.
    proxy = await startTcpProxy({ host: hostname, port: Number(port) });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
registries: [etcd://${proxy.address}/services]
routes: []
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await proxy?.close();
    await etcd?.close();
  });

  const ctl = (args: readonly string[]) => run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
  const failures = async (from: number) => (await jsonLogLinesFrom(gateway.process, from)).filter((line) => line.msg === FAILED);

  it('warns of the refusal at once: a new problem, not one more retry of the outage at debug', async () => {
    await waitFor(async () => (await logOf(gateway.process)).includes('"msg":"registry connected"'), { timeoutMs: 20_000, message: 'the registry to list' });
    const from = await logSize(gateway.process);
    proxy.cut();
    // The outage's first failure is warned of, its retries are at debug.
    await waitFor(async () => (await failures(from)).length >= 2, { timeoutMs: 20_000, message: 'the registry to retry' });
    // etcd takes authentication on while the gateway cannot reach it: the gateway, without auth, is refused once it can.
    await ctl(['user', 'add', 'root:outage-root-6a1f']);
    await ctl(['auth', 'enable']);
    proxy.restore();
    const refused = await waitFor(async () => (await failures(from)).find((line) => String(line.err).includes('user name is empty')), { timeoutMs: 20_000, message: 'the registry to be refused' });
    expect(refused).toMatchObject({ level: WARN, reason: 'broken' });
    expect((await failures(from)).filter((line) => line.level === WARN && !String(line.err).includes('user name is empty'))).toHaveLength(1);
  });
});
