import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './programs.ts';

/** Debian's interpreter, which has python3-kazoo; the `python3` on PATH may be another one without it. */
const SYSTEM_PYTHON = '/usr/bin/python3';
const WRITER_SCRIPT = join(REPO_ROOT, 'test/fixtures/kazoo-writer.py');
/** Bound on each command, and on connecting: kazoo's own connect timeout is 15 s. */
const COMMAND_TIMEOUT_MS = 20_000;

/** A kazoo client in its own process: one ZooKeeper session that tests drive command by command. */
export interface KazooWriter {
  /** Sends one command of test/fixtures/kazoo-writer.py; rejects with kazoo's reason or after a deadline. */
  run(command: string): Promise<void>;
  /** Closes the session (its ephemeral nodes go at once) and waits for the process to exit. */
  close(): Promise<void>;
}

/** Starts a kazoo writer connected to `connectString` and resolves once its session is up. */
export async function startKazooWriter(connectString: string): Promise<KazooWriter> {
  const child: ChildProcessWithoutNullStreams = spawn(SYSTEM_PYTHON, [WRITER_SCRIPT, connectString], { stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  const lines = createInterface({ input: child.stdout });
  const pending: Array<(line: string) => void> = [];
  lines.on('line', (line) => pending.shift()?.(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = (what: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`kazoo writer: no answer to "${what}" within ${COMMAND_TIMEOUT_MS} ms\n${stderr}`)), COMMAND_TIMEOUT_MS);
      pending.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      void exited.then(() => reject(new Error(`kazoo writer exited during "${what}"\n${stderr}`)));
    });
  const ready = await next('connect');
  if (ready !== 'ready') throw new Error(`kazoo writer did not connect: ${ready}\n${stderr}`);
  let closed: Promise<void> | undefined;
  return {
    async run(command) {
      child.stdin.write(`${command}\n`);
      const answer = await next(command);
      if (answer !== 'ok') throw new Error(`kazoo writer: "${command}" failed: ${answer}`);
    },
    close() {
      closed ??= (async () => {
        if (child.exitCode === null) {
          child.stdin.write('close\n');
          await Promise.race([next('close').catch(() => undefined), exited]);
          child.stdin.end();
          const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
      })();
      return closed;
    },
  };
}
