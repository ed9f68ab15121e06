import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './programs.ts';
import { makeTempDir } from './temp-dirs.ts';
import { waitFor } from './wait.ts';

/** A program held from loading one of its dist/ bundles (test/fixtures/hold-bundle.mjs), to signal it at a moment a test chooses. */
export interface HeldBundle {
  /** The environment to start the program with. */
  readonly env: NodeJS.ProcessEnv;
  /** Resolves with the program's pid once its bin is about to load the bundle (its own handlers not yet in place); rejects after 30 s. */
  held(): Promise<number>;
  /** Lets the program load the bundle and go on. */
  release(): Promise<void>;
}

/** Holds the import of `bundle` (a file name in dist/ such as `switchboard-agent.js`) in the program started with `env`. */
export async function holdBundle(bundle: string): Promise<HeldBundle> {
  const dir = await makeTempDir('sb-hold-');
  const heldFile = join(dir, 'held');
  const releaseFile = join(dir, 'release');
  return {
    env: {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${join(REPO_ROOT, 'test/fixtures/hold-bundle.mjs')}`.trim(),
      HOLD_BUNDLE: bundle,
      HOLD_HELD: heldFile,
      HOLD_RELEASE: releaseFile,
    },
    held: async () => Number(await waitFor(() => readFile(heldFile, 'utf8').catch(() => undefined), { timeoutMs: 30_000, message: `the program to start loading ${bundle}` })),
    release: () => writeFile(releaseFile, ''),
  };
}
