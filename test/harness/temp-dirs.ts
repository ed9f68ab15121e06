import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tempDirs = new Set<string>();
let exitHookInstalled = false;

/** Creates a fresh directory under os.tmpdir(), removed at the end of the test file (see `removeFileTempDirs`) if `removeTempDir` never ran. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  remember(dir);
  return dir;
}

/** Synchronous twin of makeTempDir, for callers that cannot await. */
export function makeTempDirSync(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  remember(dir);
  return dir;
}

/** Removes a directory made by makeTempDir, recursively and without failing if it is already gone. */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * For the last hook of a test file, once what it started has stopped: removes every directory that
 * makeTempDir made and nothing removed yet. The files of a worker run one after another, so these
 * are the current file's.
 */
export async function removeFileTempDirs(): Promise<void> {
  for (const dir of tempDirs) await removeTempDir(dir);
}

/**
 * Removes at once every directory that makeTempDir made and nothing removed yet: for exit and
 * signal hooks, which cannot wait (the test process may be going away mid-file, when no
 * `removeFileTempDirs` will run).
 */
export function removeTempDirsNow(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function remember(dir: string): void {
  tempDirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // When the test process ends mid-file (Ctrl-C, a worker torn down), the file's last hook never runs.
  process.once('exit', removeTempDirsNow);
}
