import type { Etcd3 } from 'etcd3';
import zookeeper from 'node-zookeeper-client';
import { setTimeout as delay } from 'node:timers/promises';
import { parseConfig } from '../../gateway/config/index.ts';
import { registryBalancerSource, ServiceBalancers } from '../../gateway/service-registry.ts';
import { DEFAULT_THROTTLE_MS, DiscoveryAggregator } from '../../src/discovery/discovery-aggregator.ts';
import type { DiscoveryProvider } from '../../src/discovery/provider.ts';
import type { ZooKeeperReader } from '../../src/zookeeper/index.ts';

/** The observers of one registration, in the order a change reaches them. */
export const STAGES = ['raw', 'rawListed', 'rawRead', 'rawRecursiveRead', 'provider', 'conf', 'balancer'] as const;

export type Stage = (typeof STAGES)[number];

/** Per-write latencies in milliseconds from the write call to each observer seeing it. */
export type ConvergenceSamples = Record<Stage, number[]>;

/** Writes `id` (`c<n>`, a distinct address each) to the registry; resolves when the write was acknowledged. */
type Write = (id: string) => Promise<void>;

/**
 * Where a raw watch has got with one new id: notified, its parent re-listed, its data read; or,
 * through a recursive watch (ZooKeeper 3.6+), its data read right after its own creation event.
 */
type RawStage = 'raw' | 'rawListed' | 'rawRead' | 'rawRecursiveRead';

/** A raw watch of the same client library: calls `seen` with the time each new id reached each raw stage. */
export type RawWatch = (seen: (stage: RawStage, ids: readonly string[], at: number) => void) => Promise<() => void>;

/** Runs several raw watches side by side, each reporting its own stages. */
export function rawWatches(...watches: RawWatch[]): RawWatch {
  return async (seen) => {
    const stops = await Promise.all(watches.map((watch) => watch(seen)));
    return () => stops.forEach((stop) => stop());
  };
}

/**
 * Measures, for `count` sequential registrations, the latency from write to the client library's
 * own watch notification, the re-list and data read any consumer of that library must then make
 * (the floor), the provider's snapshot, the service's LoadBalanceConf and the gateway's balancer
 * (through `ServiceBalancers`, as the gateway wires it), all in the same run so they share the noise.
 */
export async function measureConvergence(provider: DiscoveryProvider, service: string, write: Write, rawWatch: RawWatch, count: number): Promise<ConvergenceSamples> {
  const samples = Object.fromEntries(STAGES.map((stage) => [stage, [] as number[]])) as ConvergenceSamples;
  const pending = new Map<string, { started: number; at: Partial<Record<Stage, number>>; done: () => void }>();
  const settle = (id: string, stage: Stage, at: number) => {
    const entry = pending.get(id);
    if (!entry || entry.at[stage] !== undefined) return;
    entry.at[stage] = at - entry.started;
    if (STAGES.every((each) => entry.at[each] !== undefined)) entry.done();
  };
  const aggregator = new DiscoveryAggregator([provider]);
  const balancers = new ServiceBalancers(registryBalancerSource(aggregator), parseConfig('bench.yaml', `services: { ${service}: {} }`));
  const watching = provider.snapshots$.subscribe((snapshot) => {
    const at = performance.now();
    if (snapshot.service === service) for (const instance of snapshot.instances) settle(instance.id, 'provider', at);
  });
  const conf = aggregator.service(service).conf$.subscribe((value) => {
    const at = performance.now();
    for (const instance of value.instances) settle(instance.id, 'conf', at);
  });
  // health$ emits after the balancer has built its new picker from the same change.
  const balanced = balancers.health$.subscribe((snapshot) => {
    const at = performance.now();
    if (snapshot.service === service) for (const endpoint of snapshot.endpoints) settle(endpoint.instance.id, 'balancer', at);
  });
  aggregator.start();
  const stopRaw = await rawWatch((stage, ids, at) => ids.forEach((id) => settle(id, stage, at)));
  try {
    for (let index = 0; index < count; index += 1) {
      const id = `c${index}`;
      const done = new Promise<void>((resolve) => pending.set(id, { started: performance.now(), at: {}, done: resolve }));
      await write(id);
      await done;
      const { at } = pending.get(id)!;
      for (const stage of STAGES) samples[stage].push(at[stage]!);
      // Pacing, not synchronisation: each write is an isolated change, as registrations usually are,
      // rather than part of a burst that the aggregator's throttle window would coalesce.
      await delay(DEFAULT_THROTTLE_MS + 20);
    }
  } finally {
    stopRaw();
    watching.unsubscribe();
    conf.unsubscribe();
    balanced.unsubscribe();
    balancers.close();
    await aggregator.close();
  }
  return samples;
}

/**
 * A node-zookeeper-client children watch on `path`, re-armed after every notification, that then
 * reads each new child's data: the two round trips after a notification that no consumer of this
 * library can skip (a notification names the parent only, and a listing carries no data).
 */
export function zooKeeperRawWatch(client: zookeeper.Client, path: string): RawWatch {
  return async (seen) => {
    let known = new Set<string>();
    let stopped = false;
    const pendingAt: number[] = [];
    const arm = () =>
      new Promise<void>((resolve, reject) => {
        client.getChildren(
          path,
          () => {
            const at = performance.now();
            if (stopped) return;
            void arm().then(() => undefined, () => undefined);
            pendingAt.push(at);
          },
          (error, children) => {
            if (error) return reject(error);
            const listedAt = performance.now();
            const fresh = children.filter((child) => !known.has(child));
            known = new Set(children);
            // A notification carries no payload; the time it arrived is when the change was seen.
            const at = pendingAt.shift();
            if (at !== undefined) {
              seen('raw', fresh, at);
              seen('rawListed', fresh, listedAt);
              for (const child of fresh) client.getData(`${path}/${child}`, (readError) => !readError && seen('rawRead', [child], performance.now()));
            }
            resolve();
          },
        );
      });
    await arm();
    return () => {
      stopped = true;
    };
  };
}

/**
 * A persistent recursive watch on `path` through the gateway's guarded client (the library has
 * none), reading each created child's data on its event: the floor of a consumer that has one.
 */
export function zooKeeperRecursiveRawWatch(reader: ZooKeeperReader, path: string): RawWatch {
  return async (seen) => {
    let stopped = false;
    const unlisten = reader.listen!((event) => {
      const prefix = `${path}/`;
      if (stopped || event.getType() !== zookeeper.Event.NODE_CREATED || !event.getPath().startsWith(prefix)) return;
      const child = event.getPath().slice(prefix.length);
      void reader.getData(event.getPath()).then(
        () => seen('rawRecursiveRead', [child], performance.now()),
        () => undefined,
      );
    });
    await reader.addRecursiveWatch!(path);
    return () => {
      stopped = true;
      unlisten();
    };
  };
}

/** An etcd3 prefix watch: every put is seen, listed and read when its event (which carries the value) arrives. */
export function etcdRawWatch(client: Etcd3, prefix: string): RawWatch {
  return async (seen) => {
    const watcher = await client.watch().prefix(prefix).create();
    watcher.on('put', (kv) => {
      const at = performance.now();
      const ids = [kv.key.toString().slice(prefix.length)];
      for (const stage of ['raw', 'rawListed', 'rawRead', 'rawRecursiveRead'] as const) seen(stage, ids, at);
    });
    return () => void watcher.cancel().catch(() => undefined);
  };
}
