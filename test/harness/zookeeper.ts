import type { ZooKeeperMode } from './zookeeper-four-letter-word.ts';
import type { RegistryNode } from './registry-node.ts';
import { selectRuntime } from './runtime.ts';
import { startLocalZooKeeper } from './zookeeper-local.ts';

export type { ZooKeeperMode } from './zookeeper-four-letter-word.ts';

/** One ZooKeeper server; `restart()` waits until `srvr` reports a mode. */
export interface ZooKeeperNode extends RegistryNode {
  /** The server id (`myid`); 1 for a standalone server. */
  readonly id: number;
  /** Loopback port clients connect to; unchanged across restart(). */
  readonly clientPort: number;
  /** `127.0.0.1:<clientPort>`, for a client that must reach only this node. */
  readonly connectString: string;
  /** The mode `srvr` reports; `down` when the node is stopped, paused, unreachable or not serving. */
  mode(): Promise<ZooKeeperMode>;
  /** The server threads' stacks (a JVM thread dump), for a failure message; only local nodes have it. */
  threads?(): Promise<string>;
}

/** A standalone server or an ensemble, owned by one test file. */
export interface ZooKeeperCluster {
  readonly nodes: readonly ZooKeeperNode[];
  /** Every node's `127.0.0.1:port`, comma-separated. */
  readonly connectString: string;
  /** Waits (up to 20 s) until exactly one running node reports `leader` (`standalone` for one node) and returns it. */
  leader(): Promise<ZooKeeperNode>;
  /** Kills every node and removes the data directories; safe to call twice. */
  close(): Promise<void>;
}

/** Server tuning; defaults suit fast failure tests (tick 500 ms, sessions 1-10 s). */
export interface ZooKeeperOptions {
  /** ZooKeeper tickTime; default 500. Session timeouts are clamped by the server to [2, 20] ticks by default. */
  tickTimeMs?: number;
  /** Lowest session timeout the server grants; default 2 × tickTime. */
  minSessionTimeoutMs?: number;
  /** Highest session timeout the server grants; default 20 × tickTime. */
  maxSessionTimeoutMs?: number;
}

/** Starts one standalone ZooKeeper server on a free loopback port and resolves once it serves (`srvr` has a Mode). */
export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const runtime = await selectRuntime({ system: 'zookeeper', multiNode: false });
  if (runtime === 'docker') {
    const { startZooKeeperContainer } = await import('./docker.ts');
    return startZooKeeperContainer(options);
  }
  return startLocalZooKeeper(1, options);
}

/** Starts an ensemble of `size` servers (default 3) and resolves once every node is a leader or follower. */
export async function startZooKeeperEnsemble(size = 3, options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`ensemble size must be a positive integer, got ${size}`);
  const runtime = await selectRuntime({ system: 'zookeeper', multiNode: true });
  if (runtime === 'docker') {
    const { startZooKeeperEnsembleContainers } = await import('./docker.ts');
    return startZooKeeperEnsembleContainers(size, options);
  }
  return startLocalZooKeeper(size, options, { ensemble: true });
}
