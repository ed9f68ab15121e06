import type { ManagedProcess } from './process.ts';

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
