import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A checkout of an earlier commit of this repository, to run its gateway beside the current one. */
export interface Baseline {
  /** The commit checked out (short hash). */
  readonly commit: string;
  /** Its `bin/switchboard.js`. */
  readonly program: string;
  remove(): Promise<void>;
}

/**
 * Checks `ref` out into `dir` as a detached git worktree sharing this checkout's node_modules, so
 * the same run can measure the gateway before and after a change (same machine, same minute).
 */
export async function checkoutBaseline(repoRoot: string, ref: string, dir: string): Promise<Baseline> {
  const { stdout } = await run('git', ['-C', repoRoot, 'rev-parse', '--short', `${ref}^{commit}`]);
  const commit = stdout.trim();
  await run('git', ['-C', repoRoot, 'worktree', 'add', '--detach', '--force', dir, commit]);
  await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // The programs run the bundle in dist/, which a fresh checkout lacks (git ignores it).
  if (existsSync(join(dir, 'scripts', 'build.mjs'))) await run(process.execPath, [join(dir, 'scripts', 'build.mjs')], { cwd: dir });
  return {
    commit,
    program: join(dir, 'bin', 'switchboard.js'),
    remove: async () => {
      await run('git', ['-C', repoRoot, 'worktree', 'remove', '--force', dir]).catch(() => undefined);
    },
  };
}
