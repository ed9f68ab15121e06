import { stat } from 'node:fs/promises';
import { readFrom } from './process.ts';
import { waitFor } from './wait.ts';

const DUMP_TIMEOUT_MS = 3_000;
/** HotSpot ends the thread part of a SIGQUIT dump with this line. */
const DUMP_END = /^JNI global refs/m;
const FRAMES_PER_THREAD = 14;

/**
 * The stacks of a running JVM's threads whose names match `names`, from the thread dump that
 * SIGQUIT makes it print to its standard output (`logFile`, where the harness sends it). For a
 * failure message: a server that stopped doing something it should (expire a session, commit a
 * proposal) shows where its threads wait. Never throws; says what went wrong instead.
 */
export async function jvmThreads(pid: number | undefined, logFile: string, names: RegExp): Promise<string> {
  if (pid === undefined) return '(not running)';
  try {
    const offset = (await stat(logFile)).size;
    process.kill(pid, 'SIGQUIT');
    const dump = await waitFor(
      async () => {
        const text = await readFrom(logFile, offset);
        return DUMP_END.test(text) ? text : undefined;
      },
      { timeoutMs: DUMP_TIMEOUT_MS, intervalMs: 50, message: `a thread dump from pid ${pid}` },
    );
    const threads = dump
      .slice(0, dump.search(DUMP_END))
      .split(/\n\s*\n/)
      .filter((block) => block.startsWith('"') && names.test(block.slice(0, block.indexOf('"', 1))))
      .map((block) => block.split('\n').slice(0, FRAMES_PER_THREAD).join('\n'));
    return threads.length > 0 ? threads.join('\n\n') : `(no thread named ${names})`;
  } catch (error) {
    return `(no thread dump: ${(error as Error).message})`;
  }
}
