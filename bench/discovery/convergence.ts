import type { Etcd3 } from 'etcd3';
import type zookeeper from 'node-zookeeper-client';
import { setTimeout as delay } from 'node:timers/promises';
import { DEFAULT_THROTTLE_MS, DiscoveryAggregator } from '../../src/discovery/discovery-aggregator.ts';
import type { DiscoveryProvider } from '../../src/discovery/provider.ts';

/** Per-write latencies in milliseconds from the write call to each observer seeing it. */
export interface ConvergenceSamples {
  raw: number[];
  provider: number[];
  conf: number[];
}

/** Writes `id` (`c<n>`, a distinct address each) to the registry; resolves when the write was acknowledged. */
type Write = (id: string) => Promise<void>;

/** A raw watch of the same client library: calls `seen` with the time each new id was first noticed. */
type RawWatch = (seen: (ids: readonly string[], at: number) => void) => Promise<() => void>;

/**
 * Measures, for `count` sequential registrations, the latency from write to (1) the client
 * library's own watch notification, (2) the provider's snapshot and (3) the service's
 * LoadBalanceConf, all observed in the same run so that they share the machine's noise.
 */
export async function measureConvergence(
  provider: DiscoveryProvider,
  service: string,
  write: Write,
  rawWatch: RawWatch,
  count: number,
): Promise<ConvergenceSamples> {
  const samples: ConvergenceSamples = { raw: [], provider: [], conf: [] };
  const pending = new Map<string, { started: number; raw?: number; provider?: number; conf?: number; done: () => void }>();
  const settle = (id: string, stage: 'raw' | 'provider' | 'conf', at: number) => {
    const entry = pending.get(id);
    if (!entry || entry[stage] !== undefined) return;
    entry[stage] = at - entry.started;
    if (entry.raw !== undefined && entry.provider !== undefined && entry.conf !== undefined) entry.done();
  };
  const aggregator = new DiscoveryAggregator([provider]);
  const watching = provider.snapshots$.subscribe((snapshot) => {
    const at = performance.now();
    if (snapshot.service === service) for (const instance of snapshot.instances) settle(instance.id, 'provider', at);
  });
  const conf = aggregator.service(service).conf$.subscribe((value) => {
    const at = performance.now();
    for (const instance of value.instances) settle(instance.id, 'conf', at);
  });
  aggregator.start();
  const stopRaw = await rawWatch((ids, at) => ids.forEach((id) => settle(id, 'raw', at)));
  try {
    for (let index = 0; index < count; index += 1) {
      const id = `c${index}`;
      const done = new Promise<void>((resolve) => pending.set(id, { started: performance.now(), done: resolve }));
      await write(id);
      await done;
      const entry = pending.get(id)!;
      samples.raw.push(entry.raw!);
      samples.provider.push(entry.provider!);
      samples.conf.push(entry.conf!);
      // Pacing, not synchronisation: each write is an isolated change, as registrations usually are,
      // rather than part of a burst that the aggregator's throttle window would coalesce.
      await delay(DEFAULT_THROTTLE_MS + 20);
    }
  } finally {
    stopRaw();
    watching.unsubscribe();
    conf.unsubscribe();
    await aggregator.close();
  }
  return samples;
}

/** A node-zookeeper-client children watch on `path`, re-armed after every notification. */
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
            const fresh = children.filter((child) => !known.has(child));
            known = new Set(children);
            // A notification carries no payload; the time it arrived is when the change was seen.
            const at = pendingAt.shift();
            if (at !== undefined) seen(fresh, at);
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

/** An etcd3 prefix watch: every put is seen when its event arrives. */
export function etcdRawWatch(client: Etcd3, prefix: string): RawWatch {
  return async (seen) => {
    const watcher = await client.watch().prefix(prefix).create();
    watcher.on('put', (kv) => seen([kv.key.toString().slice(prefix.length)], performance.now()));
    return () => void watcher.cancel().catch(() => undefined);
  };
}
