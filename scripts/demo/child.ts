import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { readTail } from '../../test/harness/process.ts';

/** How a child ended: its exit code or the signal that ended it. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** What to run, where its output goes, and whom to tell when it dies on its own. */
export interface ChildSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Called when the process exits without `stop()` or `kill()` having been asked. */
  readonly onUnexpectedExit: (child: DemoChild, exit: ChildExit) => void;
}

const running = new Set<DemoChild>();

/** A line of a Java stack trace below its exception's own line. */
const STACK_FRAME = /^\s+at |^\s+\.\.\. \d+ more$/;

/**
 * One process the demo started, in its own process group: Ctrl-C in the terminal reaches only the
 * demo, which then stops its children in order (agents deregister before ZooKeeper goes away).
 * Output is appended to `logFile` so the terminal stays readable and restarts keep earlier runs.
 */
export class DemoChild {
  readonly name: string;
  readonly logFile: string;
  readonly #spec: ChildSpec;
  #process: ChildProcess | undefined;
  #exited: Promise<ChildExit> = Promise.resolve({ code: null, signal: null });
  #expectingExit = false;

  constructor(spec: ChildSpec) {
    this.#spec = spec;
    this.name = spec.name;
    this.logFile = spec.logFile;
  }

  /** True from `start()` until the process has exited. */
  get running(): boolean {
    return this.#process !== undefined && this.#process.exitCode === null && this.#process.signalCode === null;
  }

  /** Process id of the current run. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Spawns the process (again, after an exit); output is appended to the log file. */
  start(): void {
    if (this.running) return;
    const fd = openSync(this.logFile, 'a');
    try {
      writeSync(fd, `\n=== ${new Date().toISOString()} demo starts: ${this.#spec.command} ${this.#spec.args.join(' ')}\n`);
      const child = spawn(this.#spec.command, [...this.#spec.args], {
        cwd: this.#spec.cwd,
        env: this.#spec.env ?? process.env,
        stdio: ['ignore', fd, fd],
        detached: true,
      });
      this.#process = child;
      this.#expectingExit = false;
      running.add(this);
      this.#exited = new Promise<ChildExit>((resolve) => {
        const finish = (exit: ChildExit): void => {
          running.delete(this);
          resolve(exit);
          if (!this.#expectingExit) this.#spec.onUnexpectedExit(this, exit);
        };
        child.once('exit', (code, signal) => finish({ code, signal }));
        // Without a pid the command could not be spawned at all, and no 'exit' follows.
        child.once('error', () => {
          if (child.pid === undefined) finish({ code: 127, signal: null });
        });
      });
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Sends `signal` to the process itself (not its group: an agent must deregister before its
   * backend stops) and waits for it to exit; after `graceMs` the whole group is killed.
   */
  async stop(graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<ChildExit> {
    const exited = this.#exited;
    if (!this.running) return exited;
    this.#expectingExit = true;
    this.#signal(signal, false);
    const timer = setTimeout(() => this.#signal('SIGKILL', true), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
      // The group may still hold a grandchild (an agent's backend) if its parent was killed.
      this.#signal('SIGKILL', true);
    }
  }

  /** Kills the whole process group at once, for a second Ctrl-C or the demo's own exit. */
  killGroup(): void {
    this.#expectingExit = true;
    this.#signal('SIGKILL', true);
  }

  /**
   * The last `lines` lines of the log file, to show why a child died; reaching back over a stack trace
   * they begin in to the exception it belongs to (ZooKeeper's last lines are the frames under
   * "java.net.BindException: Address already in use" when its port is taken).
   */
  async logTail(lines = 8): Promise<string> {
    const all = (await readTail(this.logFile, 8_192)).trimEnd().split('\n');
    let start = Math.max(0, all.length - lines);
    while (start > 0 && STACK_FRAME.test(all[start]!)) start -= 1;
    return all.slice(start).join('\n');
  }

  #signal(signal: NodeJS.Signals, group: boolean): void {
    const pid = this.#process?.pid;
    if (pid === undefined) return;
    try {
      process.kill(group ? -pid : pid, signal);
    } catch {
      // Already gone: its 'exit' event is on its way.
    }
  }
}

/** Kills every child still running, synchronously: the demo's last act if it exits any other way. */
export function killAllChildren(): void {
  for (const child of running) child.killGroup();
}
