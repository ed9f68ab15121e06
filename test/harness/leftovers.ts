import { readdirSync, readFileSync } from 'node:fs';
import { HarnessError } from './errors.ts';
import { killStillRunning, type ProcessRecord, stillRunning } from './process-tree.ts';
import { waitFor } from './wait.ts';

/**
 * Environment variable that every process a test starts inherits (set in the test process itself):
 * its value is the test process's pid, so a process is recognised as ours even after its parent died
 * and it was re-parented to init (an agent's backend when the agent was SIGKILLed). A process given
 * an environment that does not extend process.env escapes the check: the harness always extends it.
 */
export const TEST_OWNER_ENV = 'SWITCHBOARD_TEST_OWNER_PID';

const EXIT_GRACE_MS = 3_000;
const KILL_WAIT_MS = 5_000;

/** Marks this process as the owner of whatever it starts from now on (see TEST_OWNER_ENV). */
export function markOwnedProcesses(): void {
  process.env[TEST_OWNER_ENV] = String(process.pid);
}

/**
 * Every running process, other than this one, whose environment carries this process's owner mark:
 * children, grandchildren, and orphans whose parent is gone. Zombies count as gone.
 */
export function ownedProcesses(): ProcessRecord[] {
  const mark = `${TEST_OWNER_ENV}=${process.pid}`;
  const found: ProcessRecord[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let environ: string;
    let command: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue; // Gone meanwhile, or not ours to read.
    }
    if (environ.split('\0').includes(mark)) found.push({ pid: Number(entry), command });
  }
  return stillRunning(found);
}

/**
 * End-of-file check for the integration project, whose files share one test process: waits up to
 * `graceMs` (default 3 s) for the processes this one started to finish exiting (a stopped agent's backend may exit a
 * moment after the agent), then SIGKILLs those still running and throws a HarnessError naming
 * `file` and each leftover, so a leak fails the file that caused it instead of disturbing the next.
 */
export async function killLeftoverProcesses(file: string, graceMs = EXIT_GRACE_MS): Promise<void> {
  let leftovers: ProcessRecord[] = [];
  const gone = await waitFor(() => (leftovers = ownedProcesses()).length === 0 || undefined, { timeoutMs: graceMs, intervalMs: 50 }).catch(() => false);
  if (gone) return;
  killStillRunning(leftovers);
  await waitFor(() => stillRunning(leftovers).length === 0 || undefined, { timeoutMs: KILL_WAIT_MS, intervalMs: 20, message: `${file}'s leftover processes to die of SIGKILL` });
  const list = leftovers.map(({ pid, command }) => `  pid ${pid}: ${command.slice(0, 200)}`).join('\n');
  throw new HarnessError(`${file} left ${leftovers.length} process(es) running after its last test; they were killed now, but the file must stop what it starts:\n${list}`);
}
