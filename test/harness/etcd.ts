import { startLocalEtcd } from './etcd-local.ts';
import type { RegistryNode } from './registry-node.ts';
import { selectRuntime } from './runtime.ts';

/** One etcd member; `restart()` waits until /health is true. */
export interface EtcdMember extends RegistryNode {
  /** The member name given with `--name` (`etcd-1`, `etcd-2`...). */
  readonly name: string;
  /** `http://127.0.0.1:<port>`; unchanged across restart(). */
  readonly clientUrl: string;
}

/** A single member or a static cluster, owned by one test file. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client URL, for `new Etcd3({ hosts: endpoints })`. */
  readonly endpoints: string[];
  /** Waits (up to 20 s) until the running members agree on one leader and returns it. */
  leader(): Promise<EtcdMember>;
  /** Kills every member and removes the data directories; safe to call twice. */
  close(): Promise<void>;
}

/** Starts a single etcd member on free loopback ports and resolves once /health reports true. */
export async function startEtcd(): Promise<EtcdCluster> {
  const runtime = await selectRuntime({ system: 'etcd', multiNode: false });
  if (runtime === 'docker') {
    const { startEtcdContainer } = await import('./docker.ts');
    return startEtcdContainer();
  }
  return startLocalEtcd(1);
}

/** Starts a static cluster of `size` members (default 3) and resolves once every member reports healthy. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  const runtime = await selectRuntime({ system: 'etcd', multiNode: true });
  if (runtime === 'docker') {
    const { startEtcdClusterContainers } = await import('./docker.ts');
    return startEtcdClusterContainers(size);
  }
  return startLocalEtcd(size);
}
