// Discovery benchmark: convergence latency (registry write → balancer) beside the raw watch latency
// of the same client library, the cost of loading 1,000 services × 10 instances, and the CPU share
// of a gateway-side mirror of those 10,000 instances under churn beside a bare-library mirror.
// Run: npm run bench:discovery  (env BENCH_SAMPLES, BENCH_SERVICES, BENCH_INSTANCES to resize;
// BENCH_CHURN_SECONDS (60) and BENCH_CHURN_RATE (100 changes/s) for the churn run; BENCH_PARTS to
// pick among convergence,load,churn; BENCH_CHILD_NODE_ARGS adds node flags to the measured children,
// e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { createProvider } from '../../src/discovery/index.ts';
import { encodeInstance } from '../../src/discovery/instance-codec.ts';
import { rootLogger } from '../../src/logger.ts';
import { createGuardedClient, readerFor } from '../../src/zookeeper/index.ts';
import { startEtcd, startZooKeeper } from '../../test/harness/index.ts';
import { compiledChild } from '../lib/compiled.ts';
import { ms, summarize, table } from '../lib/stats.ts';
import { measureChurn, type ChurnResult } from './churn.ts';
import { etcdRawWatch, measureConvergence, rawWatches, zooKeeperRawWatch, zooKeeperRecursiveRawWatch, type ConvergenceSamples } from './convergence.ts';
import { connectZooKeeper, zkCreate, zkMkdirp } from './zookeeper-writer.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1_000);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 10);
const CHURN_SECONDS = Number(process.env.BENCH_CHURN_SECONDS ?? 60);
const CHURN_RATE = Number(process.env.BENCH_CHURN_RATE ?? 100);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'convergence,load,churn').split(','));
const SERVICE = 'bench';

const payload = (service: string, id: string, port: number) =>
  encodeInstance({ id, service, host: '127.0.0.1', port, weight: 1, protocol: 'http', metadata: { bench: 'yes' } });

const zk = await startZooKeeper();
const etcd = await startEtcd();
const writer = await connectZooKeeper(zk.connectString);
const watcher = await connectZooKeeper(zk.connectString);
// The library has no recursive watches: the gateway's guarded client sends them.
const recursiveWatcher = createGuardedClient(zk.connectString, { sessionTimeoutMs: 10_000 }, rootLogger);
await new Promise<void>((resolve) => {
  recursiveWatcher.client.once('connected', () => resolve());
  recursiveWatcher.connect();
});
const etcdWriter = new Etcd3({ hosts: etcd.endpoints });
const etcdWatcher = new Etcd3({ hosts: etcd.endpoints });

try {
  const convergence: Array<[string, ConvergenceSamples]> = [];
  if (PARTS.has('convergence')) {
    await zkMkdirp(writer, `/services/${SERVICE}`);
    convergence.push([
      'zookeeper',
      await measureConvergence(
        createProvider(`zk://${zk.connectString}/services`),
        SERVICE,
        (id) => zkCreate(writer, `/services/${SERVICE}/${id}`, payload(SERVICE, id, 10_000 + Number(id.slice(1))), zookeeper.CreateMode.EPHEMERAL),
        rawWatches(zooKeeperRawWatch(watcher, `/services/${SERVICE}`), zooKeeperRecursiveRawWatch(readerFor(recursiveWatcher.client), `/services/${SERVICE}`)),
        SAMPLES,
      ),
    ]);
    convergence.push([
      'etcd',
      await measureConvergence(
        createProvider(`etcd://${etcd.endpoints[0]!.replace(/^https?:\/\//, '')}/services`),
        SERVICE,
        async (id) => void (await etcdWriter.put(`/services/${SERVICE}/${id}`).value(payload(SERVICE, id, 10_000 + Number(id.slice(1))))),
        etcdRawWatch(etcdWatcher, `/services/${SERVICE}/`),
        SAMPLES,
      ),
    ]);
  }

  const loads: Array<[string, LoadResult]> = [];
  const churns: ChurnResult[] = [];
  if (PARTS.has('load') || PARTS.has('churn')) {
    await seedZooKeeper(writer);
    await seedEtcd(etcdWriter);
  }
  if (PARTS.has('load')) {
    loads.push(['zookeeper', await loadInChild(`zk://${zk.connectString}/load`)]);
    loads.push(['etcd', await loadInChild(`etcd://${etcd.endpoints[0]!.replace(/^https?:\/\//, '')}/load`)]);
  }
  if (PARTS.has('churn')) {
    const tree = { connectString: zk.connectString, root: '/load', services: SERVICES, perService: INSTANCES, payload };
    // The anchor first, then the gateway side, each over the same tree and the same change sequence.
    churns.push(await measureChurn(writer, tree, 'raw', CHURN_SECONDS, CHURN_RATE));
    churns.push(await measureChurn(writer, tree, 'gateway', CHURN_SECONDS, CHURN_RATE));
  }

  if (convergence.length > 0) {
    process.stdout.write(`\nConvergence: registry write → each observer, ${SAMPLES} sequential registrations, one run\n\n`);
    process.stdout.write(`${table(['registry', 'observer', 'n', 'p50 ms', 'p99 ms', 'max ms', 'p99 − raw p99'], convergence.flatMap(([registry, samples]) => latencyRows(registry, samples)))}\n`);
  }
  if (loads.length > 0) {
    process.stdout.write(`\nLoad ${SERVICES} services × ${INSTANCES} instances into a new provider (separate process)\n\n`);
    process.stdout.write(
      `${table(
        ['registry', 'time ms', 'RSS before MB', 'RSS after MB', 'peak RSS MB', 'heap after MB'],
        loads.map(([registry, load]) => [registry, ms(load.ms), load.rssBeforeMb.toFixed(1), load.rssMb.toFixed(1), load.peakRssMb.toFixed(1), load.heapMb.toFixed(1)]),
      )}\n`,
    );
  }
  if (churns.length > 0) {
    process.stdout.write(`\nChurn: ${SERVICES * INSTANCES} ZooKeeper instances, ${CHURN_RATE} changes/s for ${CHURN_SECONDS} s, CPU of the mirroring process (separate process)\n\n`);
    const anchor = churns.find((churn) => churn.mode === 'raw');
    process.stdout.write(
      `${table(
        ['mirror', 'changes', 'CPU s', 'wall s', 'CPU share', '× bare library', 'converged after ms', 'RSS MB'],
        churns.map((churn) => [
          churn.mode === 'raw' ? 'bare node-zookeeper-client' : 'gateway (provider → aggregator → balancers)',
          String(churn.changes),
          churn.cpuSeconds.toFixed(2),
          churn.wallSeconds.toFixed(1),
          `${((100 * churn.cpuSeconds) / churn.wallSeconds).toFixed(1)} %`,
          anchor ? (churn.cpuSeconds / anchor.cpuSeconds).toFixed(2) : '-',
          ms(churn.convergeMs),
          churn.rssMb.toFixed(1),
        ]),
      )}\n`,
    );
  }
} finally {
  writer.close();
  watcher.close();
  await recursiveWatcher.retire(1_000);
  etcdWriter.close();
  etcdWatcher.close();
  await zk.close();
  await etcd.close();
}

async function seedZooKeeper(client: zookeeper.Client): Promise<void> {
  await zkMkdirp(client, '/load');
  const writes: Promise<void>[] = [];
  for (let s = 0; s < SERVICES; s += 1) {
    writes.push(zkCreate(client, `/load/svc-${s}`, '', zookeeper.CreateMode.PERSISTENT));
    for (let i = 0; i < INSTANCES; i += 1) {
      writes.push(zkCreate(client, `/load/svc-${s}/i-${i}`, payload(`svc-${s}`, `i-${i}`, 20_000 + i), zookeeper.CreateMode.PERSISTENT));
    }
  }
  await Promise.all(writes);
}

async function seedEtcd(client: Etcd3): Promise<void> {
  const keys: Array<[string, string]> = [];
  for (let s = 0; s < SERVICES; s += 1) {
    for (let i = 0; i < INSTANCES; i += 1) keys.push([`/load/svc-${s}/i-${i}`, payload(`svc-${s}`, `i-${i}`, 20_000 + i)]);
  }
  for (let start = 0; start < keys.length; start += 100) {
    await Promise.all(keys.slice(start, start + 100).map(([key, value]) => client.put(key).value(value)));
  }
}

interface LoadResult {
  ms: number;
  rssMb: number;
  heapMb: number;
  peakRssMb: number;
  rssBeforeMb: number;
}

/** Table rows of one registry's stages, each beside the raw watch notification's p99. */
function latencyRows(registry: string, samples: ConvergenceSamples): string[][] {
  const raw = summarize(samples.raw);
  const stages = [
    ['raw', 'raw watch notification (client library)'],
    ['rawListed', 'raw watch + re-list'],
    ['rawRead', 'raw watch + re-list + read (one-shot floor)'],
    ['rawRecursiveRead', 'raw recursive watch + read (floor)'],
    ['provider', 'provider snapshot'],
    ['conf', 'LoadBalanceConf'],
    ['balancer', 'balancer picker (ServiceBalancers)'],
  ] as const;
  return stages.map(([stage, label]) => {
    const summary = summarize(samples[stage]);
    return [registry, label, String(summary.count), ms(summary.p50), ms(summary.p99), ms(summary.max), stage === 'raw' ? '' : signed(summary.p99 - raw.p99)];
  });
}

function signed(value: number): string {
  return `${value >= 0 ? '+' : '−'}${ms(Math.abs(value))}`;
}

async function loadInChild(url: string): Promise<LoadResult> {
  // Compiled, as the gateway runs: under tsx the child would also hold tsx's loader and transpiler.
  const program = await compiledChild('bench/discovery/load-child.ts');
  const child = spawn(process.execPath, ['--expose-gc', ...childNodeArgs(), program, url, String(SERVICES), String(INSTANCES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`load-child for ${url} exited with ${code}`);
  return JSON.parse(output.trim().split('\n').at(-1)!);
}

/** Extra node flags for the measured children (profiling). */
function childNodeArgs(): string[] {
  return (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
}
