import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HarnessError } from './errors.ts';
import { onTestProcessEnd } from './process-end.ts';

/** What the suite's own temporary directories are called (`sb-file-…`, `switchboard-etcd-tls-…`); other programs' are not checked. */
const SUITE_PREFIX = /^(sb|switchboard)-/;

/** The current test file's private os.tmpdir(), and TMPDIR as it was before. */
interface FileFolder {
  readonly path: string;
  readonly previousTmpdir: string | undefined;
}

const tempDirs = new Set<string>();
let fileFolder: FileFolder | undefined;

/** Creates a fresh directory under os.tmpdir(), removed at the end of the test file (see `endFileTempFolder`) if `removeTempDir` never ran. */
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
 * Removes at once every directory that makeTempDir made and nothing removed yet, and the current
 * file's temporary folder: for exit and signal hooks, which cannot wait (the test process may be
 * going away mid-file, when no `endFileTempFolder` will run).
 */
export function removeTempDirsNow(): void {
  for (const dir of [...tempDirs, ...(fileFolder ? [fileFolder.path] : [])]) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort: the process is going away, and an error here would keep it from dying of its signal.
    }
  }
  tempDirs.clear();
}

/**
 * Gives the test file about to run a private os.tmpdir(): a fresh folder under the real one, set as
 * TMPDIR for this process and every program it starts from now on. Whatever the file makes there,
 * by any means, `endFileTempFolder` removes, and what it left can be told from what the other
 * worker, another checkout's run or the programs of an earlier file make meanwhile. A folder that an
 * earlier file never ended (its import failed, so its hooks never ran) is removed first.
 */
export function beginFileTempFolder(): void {
  if (fileFolder) {
    const stale = leaveFileFolder(fileFolder);
    rmSync(stale, { recursive: true, force: true, maxRetries: 3 });
  }
  const previousTmpdir = process.env.TMPDIR;
  fileFolder = { path: mkdtempSync(join(tmpdir(), 'sb-test-file-')), previousTmpdir };
  process.env.TMPDIR = fileFolder.path;
  // A file whose import failed never runs its last hook, and a run stopped mid-file never gets there.
  onTestProcessEnd(removeTempDirsNow);
}

/**
 * For the last hook of `file`, once what it started has stopped: removes the directories that
 * makeTempDir made (a file may leave those to this), then the file's folder with everything still
 * in it, and puts TMPDIR back. Returns, for the caller to throw, a HarnessError naming the suite's
 * own directories that were still there although no makeTempDir made them: a bare mkdtemp that
 * nothing removes, which the folder hides here but which fills /tmp wherever the same code runs
 * without it (a helper reused by a benchmark or script, another test runner).
 */
export async function endFileTempFolder(file: string): Promise<HarnessError | undefined> {
  for (const dir of tempDirs) await removeTempDir(dir);
  if (!fileFolder) return undefined;
  const folder = leaveFileFolder(fileFolder);
  const leftBehind = existsSync(folder) ? readdirSync(folder).filter((name) => SUITE_PREFIX.test(name)) : [];
  await rm(folder, { recursive: true, force: true, maxRetries: 3 });
  if (leftBehind.length === 0) return undefined;
  const list = leftBehind.map((name) => `  ${name}`).join('\n');
  return new HarnessError(
    `${file} left ${leftBehind.length} temporary director${leftBehind.length === 1 ? 'y' : 'ies'} behind (removed now); make them with makeTempDir (test/harness/temp-dirs.ts), which removes them at the end of the file, or remove them in the test:\n${list}`,
  );
}

/** Ends the file's folder as os.tmpdir() (TMPDIR as it was before) and returns its path, to remove. */
function leaveFileFolder(folder: FileFolder): string {
  fileFolder = undefined;
  if (folder.previousTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = folder.previousTmpdir;
  return folder.path;
}

function remember(dir: string): void {
  tempDirs.add(dir);
  onTestProcessEnd(removeTempDirsNow);
}
