// Discovery benchmark: convergence latency (registry write → stream emission) beside the raw watch
// latency of the same client library, and the cost of loading 1,000 services × 10 instances.
// Run: npm run bench:discovery  (env BENCH_SAMPLES, BENCH_SERVICES, BENCH_INSTANCES to resize)
import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { createProvider } from '../../src/discovery/index.ts';
import { encodeInstance } from '../../src/discovery/instance-codec.ts';
import { startEtcd, startZooKeeper } from '../../test/harness/index.ts';
import { ms, summarize, table } from '../lib/stats.ts';
import { etcdRawWatch, measureConvergence, zooKeeperRawWatch, type ConvergenceSamples } from './convergence.ts';
import { connectZooKeeper, zkCreate, zkMkdirp } from './zookeeper-writer.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 1_000);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 10);
const SERVICE = 'bench';

const payload = (service: string, id: string, port: number) =>
  encodeInstance({ id, service, host: '127.0.0.1', port, weight: 1, protocol: 'http', metadata: { bench: 'yes' } });

const zk = await startZooKeeper();
const etcd = await startEtcd();
const writer = await connectZooKeeper(zk.connectString);
const watcher = await connectZooKeeper(zk.connectString);
const etcdWriter = new Etcd3({ hosts: etcd.endpoints });
const etcdWatcher = new Etcd3({ hosts: etcd.endpoints });

try {
  const convergence: Array<[string, ConvergenceSamples]> = [];

  await zkMkdirp(writer, `/services/${SERVICE}`);
  convergence.push([
    'zookeeper',
    await measureConvergence(
      createProvider(`zk://${zk.connectString}/services`),
      SERVICE,
      (id) => zkCreate(writer, `/services/${SERVICE}/${id}`, payload(SERVICE, id, 10_000 + Number(id.slice(1))), zookeeper.CreateMode.EPHEMERAL),
      zooKeeperRawWatch(watcher, `/services/${SERVICE}`),
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

  const latencyRows = convergence.flatMap(([registry, samples]) =>
    (
      [
        ['raw watch notification (client library)', samples.raw],
        ['provider snapshot', samples.provider],
        ['LoadBalanceConf (what balancers see)', samples.conf],
      ] as const
    ).map(([stage, values]) => {
      const summary = summarize(values);
      return [registry, stage, String(summary.count), ms(summary.p50), ms(summary.p99), ms(summary.max)];
    }),
  );

  await seedZooKeeper(writer);
  await seedEtcd(etcdWriter);
  const loads = [
    ['zookeeper', await loadInChild(`zk://${zk.connectString}/load`)],
    ['etcd', await loadInChild(`etcd://${etcd.endpoints[0]!.replace(/^https?:\/\//, '')}/load`)],
  ] as const;

  process.stdout.write(`\nConvergence: registry write → emission, ${SAMPLES} sequential registrations, one run\n\n`);
  process.stdout.write(`${table(['registry', 'observer', 'n', 'p50 ms', 'p99 ms', 'max ms'], latencyRows)}\n`);
  process.stdout.write(`\nLoad ${SERVICES} services × ${INSTANCES} instances into a new provider (separate process)\n\n`);
  process.stdout.write(
    `${table(
      ['registry', 'time ms', 'RSS before MB', 'RSS after MB', 'heap after MB'],
      loads.map(([registry, load]) => [registry, ms(load.ms), load.rssBeforeMb.toFixed(1), load.rssMb.toFixed(1), load.heapMb.toFixed(1)]),
    )}\n`,
  );
} finally {
  writer.close();
  watcher.close();
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

async function loadInChild(url: string): Promise<{ ms: number; rssMb: number; heapMb: number; rssBeforeMb: number }> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/discovery/load-child.ts', url, String(SERVICES), String(INSTANCES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`load-child for ${url} exited with ${code}`);
  return JSON.parse(output.trim().split('\n').at(-1)!);
}
