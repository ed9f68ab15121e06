import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { HarnessError } from './errors.ts';
import { onTestProcessEnd } from './process-end.ts';
import { descendantsOf, killStillRunning } from './process-tree.ts';
import { removeTempDirsNow } from './temp-dirs.ts';
import { waitFor } from './wait.ts';

// The harness's processes log into temporary directories: their helpers stay importable from here.
export { makeTempDir, makeTempDirSync, removeTempDir } from './temp-dirs.ts';

/** How a child process ended: its exit code, or the signal that ended it, or the error that kept it from starting. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
}

/** What to run and where its stdout and stderr go (appended, so restarts keep the earlier runs' log). */
export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

const STOP_GRACE_MS = 5_000;
const KILL_WAIT_MS = 5_000;
const LOG_TAIL_BYTES = 16_384;

const liveChildren = new Set<ChildProcess>();

/**
 * One child process that can be started again after it ended, with signals for the failure modes tests simulate:
 * SIGSTOP/SIGCONT (a frozen, partitioned node), SIGKILL (a crash) and SIGTERM (a clean stop).
 */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly #spec: ProcessSpec;
  #child: ChildProcess | undefined;
  #exit: ExitInfo | undefined;
  #exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  #paused = false;

  constructor(spec: ProcessSpec) {
    this.#spec = spec;
    this.name = spec.name;
    this.logFile = spec.logFile;
  }

  /** Process id of the current run, undefined before the first start. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** True from start until the process has exited (a paused process is still running). */
  get running(): boolean {
    return this.#child !== undefined && this.#exit === undefined;
  }

  /** True between pause() and resume() of the current run. */
  get paused(): boolean {
    return this.running && this.#paused;
  }

  /** How the last run ended, undefined while it runs or before the first start. */
  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** Spawns the process with output appended to `logFile`; throws if it is already running. */
  start(): void {
    if (this.running) throw new HarnessError(`${this.name} is already running (pid ${this.pid})`);
    onTestProcessEnd(killLeftovers);
    const fd = openSync(this.logFile, 'a');
    try {
      writeSync(fd, `\n=== ${new Date().toISOString()} harness start: ${this.#spec.command} ${this.#spec.args.join(' ')}\n`);
      const child = spawn(this.#spec.command, [...this.#spec.args], {
        cwd: this.#spec.cwd,
        env: this.#spec.env ?? process.env,
        stdio: ['ignore', fd, fd],
      });
      this.#child = child;
      this.#exit = undefined;
      this.#paused = false;
      liveChildren.add(child);
      this.#exited = new Promise<ExitInfo>((resolve) => {
        const finish = (info: ExitInfo): void => {
          liveChildren.delete(child);
          if (this.#child === child) this.#exit ??= info;
          resolve(info);
        };
        child.once('exit', (code, signal) => finish({ code, signal }));
        // 'error' without 'exit' happens when the binary cannot be spawned at all (ENOENT, EACCES).
        child.once('error', (error) => {
          if (child.pid === undefined) finish({ code: null, signal: null, error });
        });
      });
    } finally {
      closeSync(fd);
    }
  }

  /** Freezes the process (SIGSTOP): its sockets stay open but it answers nothing, like a partitioned node. */
  pause(): void {
    this.#signal('SIGSTOP');
    this.#paused = true;
    // kill() returns before every thread has stopped; a request sent right after could still be answered.
    waitUntilStopped(this.#child!.pid!);
  }

  /** Thaws a paused process (SIGCONT). */
  resume(): void {
    this.#signal('SIGCONT');
    this.#paused = false;
  }

  /**
   * SIGTERM and wait for exit; SIGKILL if it is still alive after `graceMs` (default 5 s), and then
   * whatever it started too (an agent's backend would otherwise outlive the test run). No-op when
   * not running.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<ExitInfo | undefined> {
    if (!this.running) return this.#exit;
    this.#signal('SIGTERM');
    // A stopped process only acts on SIGTERM once it is continued.
    if (this.#paused) this.resume();
    const exited = await this.waitForExit(graceMs).catch(() => undefined);
    if (exited) return exited;
    const descendants = descendantsOf(this.#child!.pid!);
    const killed = await this.kill();
    killStillRunning(descendants);
    return killed;
  }

  /** SIGKILL and wait for exit, like a crash or a power cut. No-op when not running. */
  async kill(): Promise<ExitInfo | undefined> {
    if (!this.running) return this.#exit;
    this.#signal('SIGKILL');
    this.#paused = false;
    return this.waitForExit(KILL_WAIT_MS);
  }

  /** Resolves when the current run has exited; rejects after `timeoutMs` if it has not. */
  async waitForExit(timeoutMs?: number): Promise<ExitInfo> {
    const exited = this.#exited;
    if (timeoutMs === undefined) return exited;
    let exit: ExitInfo | undefined;
    void exited.then((info) => (exit = info));
    return waitFor(() => exit, { timeoutMs, intervalMs: 20, message: `${this.name} (pid ${this.pid}) to exit` });
  }

  /** The last `maxBytes` of the log file, for error messages; never throws. */
  async logTail(maxBytes = LOG_TAIL_BYTES): Promise<string> {
    return readTail(this.logFile, maxBytes);
  }

  #signal(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (!child || !this.running || child.pid === undefined) throw new HarnessError(`${this.name} is not running`);
    try {
      process.kill(child.pid, signal);
    } catch (error) {
      // ESRCH: it died an instant ago and its 'exit' event is still queued; waitForExit will see it.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
}

const STOP_WAIT_MS = 2_000;

/**
 * Blocks until every thread of `pid` is in the stopped state (Linux /proc), so that a paused
 * process answers nothing from the moment `pause()` returns. Gives up silently after 2 s, or at
 * once where /proc cannot be read.
 */
function waitUntilStopped(pid: number): void {
  const deadline = Date.now() + STOP_WAIT_MS;
  while (Date.now() < deadline) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    const stopped = tasks.every((task) => {
      try {
        // The state follows the parenthesised command name: "pid (comm) S …".
        const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        return state === 'T' || state === 't';
      } catch {
        return true;
      }
    });
    if (stopped) return;
  }
}

/** Reads the last `maxBytes` of a file as text; an unreadable file yields a note instead of an error. */
export async function readTail(path: string, maxBytes = LOG_TAIL_BYTES): Promise<string> {
  try {
    return await readFrom(path, 0, maxBytes);
  } catch (error) {
    return `(log ${path} unreadable: ${String(error)})`;
  }
}

/** Reads what a file holds past byte `offset` as text, the last `maxBytes` of it when there is more; rejects when it cannot. */
export async function readFrom(path: string, offset: number, maxBytes = Number.POSITIVE_INFINITY): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.max(0, Math.min(size - offset, maxBytes));
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Options for `waitUntilReady`: `what` names the process in errors. */
export interface ReadyOptions {
  readonly what: string;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
}

/**
 * Polls `isReady` until it resolves true; fails fast if the process exits first, and on either failure
 * throws a HarnessError whose message ends with the tail of the process's log.
 */
export async function waitUntilReady(proc: ManagedProcess, isReady: () => Promise<boolean>, options: ReadyOptions): Promise<void> {
  let outcome: 'ready' | 'exited';
  try {
    outcome = await waitFor(async () => (!proc.running ? 'exited' : (await isReady()) ? 'ready' : undefined), {
      timeoutMs: options.timeoutMs,
      intervalMs: options.intervalMs ?? 50,
      message: `${options.what} to become ready`,
    });
  } catch (error) {
    throw new HarnessError(`${(error as Error).message}\n--- ${proc.logFile} (tail) ---\n${await proc.logTail()}`, { cause: error });
  }
  if (outcome === 'exited') {
    const exit = proc.exitInfo;
    const how = exit?.error ? `could not start (${exit.error.message})` : `exited (code ${exit?.code}, signal ${exit?.signal})`;
    throw new HarnessError(`${options.what} ${how} before it was ready\n--- ${proc.logFile} (tail) ---\n${await proc.logTail()}`);
  }
}

// The last line of defence against leaked JVMs: whatever a failed test left running dies with this process.
function killLeftovers(): void {
  for (const child of liveChildren) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  liveChildren.clear();
  // The temporary directories too, once the processes that write into them are gone (temp-dirs.ts's own
  // cleanup, registered first, may have run before this one).
  removeTempDirsNow();
}
