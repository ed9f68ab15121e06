/** One registry server process (or container) that a test can stop, crash, freeze and bring back. */
export interface RegistryNode {
  /** The file that collects this node's log across restarts. */
  readonly logFile: string;
  /** True from start until the process exits (a paused node is still running). */
  readonly running: boolean;
  /** SIGTERM, then waits for exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** SIGKILL and waits for exit: a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: the node keeps its sockets but answers nothing, like a partitioned host. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Stops the node if it runs, starts it on the same data dir and ports, and waits until it serves. */
  restart(): Promise<void>;
  /** The end of the log file, for assertion messages. */
  logTail(): Promise<string>;
}
