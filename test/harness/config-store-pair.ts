// An etcd and a ZooKeeper holding config stores, written around the admin API (etcdctl, a ZooKeeper client), and gateways reading them.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Client } from 'node-zookeeper-client';
import { afterAll, beforeAll } from 'vitest';
import { adminClient, type AdminClient } from './admin-client.ts';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { startGateway, type GatewayProcess } from './programs.ts';
import { startZooKeeper, type ZooKeeperCluster } from './zookeeper.ts';
import { connectZooKeeperClient } from './zookeeper-client.ts';

const run = promisify(execFile);

/** Both stores, with a writer for each; `close()` stops the gateways started here, then the stores. */
export interface StorePair {
  readonly etcd: EtcdCluster;
  readonly zk: ZooKeeperCluster;
  /** The config store URL of `root` in the etcd or the ZooKeeper. */
  url(kind: 'etcd' | 'zookeeper', root: string): string;
  /** Runs `etcdctl` (v3) against the etcd. */
  etcdctl(...args: string[]): Promise<void>;
  /** One call of the ZooKeeper client, as a promise. */
  zookeeper(work: (client: Client, done: (error: unknown) => void) => void): Promise<void>;
  /** A gateway reading `configStore` (with an `echo` service, and `services` its own entries beside it), its admin listener taking `token`. */
  gateway(configStore: string, services?: string): Promise<{ gateway: GatewayProcess; admin: AdminClient }>;
  close(): Promise<void>;
}

/** Starts an etcd and a ZooKeeper for config store tests whose admin writes need `token`. */
export async function startStorePair(token: string): Promise<StorePair> {
  const [etcd, zk] = await Promise.all([startEtcd(), startZooKeeper()]);
  const client = await connectZooKeeperClient(zk.connectString);
  const gateways: GatewayProcess[] = [];
  return {
    etcd,
    zk,
    url: (kind, root) => (kind === 'etcd' ? `etcd://${etcd.endpoints[0]!.replace(/^http:\/\//, '')}${root}` : `zk://${zk.connectString}${root}`),
    async etcdctl(...args) {
      await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--dial-timeout', '5s', ...args], { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });
    },
    zookeeper: (work) => new Promise<void>((resolve, reject) => work(client, (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()))),
    async gateway(configStore, services = '') {
      const gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: { listen: 127.0.0.1:{{adminPort}}, token: ${token} }
accessLog: false
configStore: { url: "${configStore}", timeout: 5s }
services:
  echo: { instances: ["127.0.0.1:1"] }
${services}`);
      gateways.push(gateway);
      return { gateway, admin: adminClient(`http://127.0.0.1:${gateway.adminPort}`, token) };
    },
    async close() {
      await Promise.all(gateways.map((gateway) => gateway.process.stop()));
      client.close();
      await Promise.all([etcd.close(), zk.close()]);
    },
  };
}

/**
 * Starts the store pair (`startStorePair`) before all tests of the file or describe block it is
 * called in, and closes it after all; the returned function reads it from a test.
 */
export function storePairFixture(token: string): () => StorePair {
  let stores: StorePair | undefined;
  beforeAll(async () => {
    stores = await startStorePair(token);
  }, 60_000);
  afterAll(async () => {
    await stores?.close();
  }, 60_000);
  return () => stores!;
}
