import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { REPO_ROOT } from '../../test/harness/index.ts';

/**
 * The Node flags a bin's shebang passes (`#!/usr/bin/env -S node --flag …`; none for `#!/usr/bin/env
 * node`), so a benchmark that starts the bin with a Node binary of its choice runs it as the
 * `switchboard` command does (a baseline commit's bin with its own shebang's flags).
 */
export function shebangNodeFlags(program: string): string[] {
  const first = readFileSync(resolve(REPO_ROOT, program), 'utf8').split('\n', 1)[0] ?? '';
  const flags = /^#!\S*env -S node\s+(.*)$/.exec(first)?.[1];
  return flags === undefined ? [] : flags.trim().split(/\s+/);
}
