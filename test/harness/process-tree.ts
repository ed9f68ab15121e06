import { readdirSync, readFileSync } from 'node:fs';

/** One process seen in /proc: its id and its command line, to recognise it later despite pid reuse. */
export interface ProcessRecord {
  readonly pid: number;
  readonly command: string;
}

/**
 * Every process below `pid` right now (children, grandchildren…), read from /proc, so a test can
 * check later that none outlived their parent: children in their own process groups are found too.
 */
export function descendantsOf(pid: number): ProcessRecord[] {
  const childrenOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentOf(Number(entry));
    if (parent !== undefined) childrenOf.set(parent, [...(childrenOf.get(parent) ?? []), Number(entry)]);
  }
  const found: ProcessRecord[] = [];
  const queue = [...(childrenOf.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    const command = commandOf(next);
    if (command !== undefined) found.push({ pid: next, command });
    queue.push(...(childrenOf.get(next) ?? []));
  }
  return found;
}

/** Whether a process `pid` exists (signal 0: a stopped or zombie one counts), for a cleanup that signals only those still there. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The records whose process still runs with the same command line (zombies count as gone). */
export function stillRunning(records: readonly ProcessRecord[]): ProcessRecord[] {
  return records.filter((record) => commandOf(record.pid) === record.command && stateOf(record.pid) !== 'Z');
}

/** SIGKILLs those of `records` that still run (a test's cleanup: one that exits meanwhile is fine). */
export function killStillRunning(records: readonly ProcessRecord[]): void {
  for (const { pid } of stillRunning(records)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone between the check and the signal.
    }
  }
}

// /proc/<pid>/stat is "pid (comm) state ppid …"; comm may hold spaces and parentheses, so split after the last ")".
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  const parent = statFields(pid)?.[1];
  return parent === undefined ? undefined : Number(parent);
}

function stateOf(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}
