import { retryOnPortClash } from './ports.ts';
import { makeTempDir, removeTempDir, type ManagedProcess } from './process.ts';

/**
 * A registry server run from a local binary: the process controls every such node shares
 * (stop, crash, freeze, thaw, restart on the same data) over one `ManagedProcess`; subclasses say
 * how to tell that the node serves.
 */
export abstract class LocalNode {
  /** Set by the subclass constructor before any method runs. */
  protected process!: ManagedProcess;

  /** True from start until the process exits (a paused node is still running). */
  get running(): boolean {
    return this.process.running;
  }

  /** Spawns the process; `waitReady()` tells when it serves. */
  start(): void {
    this.process.start();
  }

  /** Resolves once the node serves; rejects with the log's end when it does not in time. */
  abstract waitReady(): Promise<void>;

  /** SIGTERM, then waits for exit (SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.process.stop();
  }

  /** SIGKILL and waits for exit: a crash. */
  async kill(): Promise<void> {
    await this.process.kill();
  }

  /** SIGSTOP: sockets stay open but nothing answers, like a partitioned host. */
  pause(): void {
    this.process.pause();
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.process.resume();
  }

  /** Stops the node if it runs, starts it on the same data dir and ports, and waits until it serves. */
  async restart(): Promise<void> {
    await this.process.stop();
    this.process.start();
    await this.waitReady();
  }

  /** The end of the log file, for assertion messages. */
  logTail(): Promise<string> {
    return this.process.logTail();
  }
}

/** What `startLocalNode` starts: one node, or a cluster of them. */
export interface LocalNodeHandle {
  /** Stops its nodes and removes the folder `startLocalNode` made for it; also when they never started. */
  close(): Promise<void>;
}

/**
 * Makes a temporary folder (`tempPrefix`), lets `create` make in it what is started (taking its
 * ports then), starts every node `nodesOf` lists (writing their files first, if it needs to) and
 * waits until each serves. When a step fails, what `create` made is closed (or, before it exists,
 * the folder removed) and the error rethrown; a port clash starts it all over on fresh ports
 * (`retryOnPortClash`).
 */
export function startLocalNode<Handle extends LocalNodeHandle>(
  tempPrefix: string,
  create: (dir: string) => Promise<Handle> | Handle,
  nodesOf: (handle: Handle, dir: string) => Promise<readonly LocalNode[]> | readonly LocalNode[],
): Promise<Handle> {
  return retryOnPortClash(async () => {
    const dir = await makeTempDir(tempPrefix);
    let handle: Handle;
    try {
      handle = await create(dir);
    } catch (error) {
      await removeTempDir(dir);
      throw error;
    }
    try {
      const nodes = await nodesOf(handle, dir);
      for (const node of nodes) node.start();
      await Promise.all(nodes.map((node) => node.waitReady()));
      return handle;
    } catch (error) {
      await handle.close();
      throw error;
    }
  });
}

/** Kills every node of a cluster (a test's data is disposable) and removes the cluster's folder. */
export async function killLocalNodes(nodes: readonly LocalNode[], dir: string): Promise<void> {
  await Promise.all(nodes.map((node) => node.kill()));
  await removeTempDir(dir);
}
