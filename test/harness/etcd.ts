import { startLocalEtcd } from './etcd-local.ts';
import { selectRuntime } from './runtime.ts';

/** One etcd member process (or container) that a test can stop, crash, freeze and bring back. */
export interface EtcdMember {
  /** The member name given with `--name` (`etcd-1`, `etcd-2`...). */
  readonly name: string;
  /** `http://127.0.0.1:<port>`; unchanged across restart(). */
  readonly clientUrl: string;
  /** The file that collects this member's log across restarts. */
  readonly logFile: string;
  /** True from start until the process exits (a paused member is still running). */
  readonly running: boolean;
  /** SIGTERM, then waits for exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** SIGKILL and waits for exit: a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: the member keeps its sockets but answers nothing, like a partitioned host. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stops the member if it runs, starts it on the same data dir and ports, and waits until /health is true. */
  restart(): Promise<void>;
  /** The end of the log file, for assertion messages. */
  logTail(): Promise<string>;
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
