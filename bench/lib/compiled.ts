import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { build } from 'esbuild';
import { NODE_TARGET } from '../../scripts/esbuild-target.mjs';
import { REPO_ROOT } from '../../test/harness/index.ts';

/**
 * Bundles a benchmark's child program (TypeScript) into one JavaScript file under `.cache/bench/`, the
 * way `npm run build` bundles the gateway, and returns its path: a child whose memory or CPU is the
 * figure then runs compiled code, as the gateway does, and not tsx's loader and transpiler (~40 MB
 * of RSS on its own). Packages stay external (resolved from the repository's node_modules).
 */
export async function compiledChild(entry: string): Promise<string> {
  const outdir = join(REPO_ROOT, '.cache', 'bench');
  await mkdir(outdir, { recursive: true });
  const outfile = join(outdir, basename(entry).replace(/\.ts$/, '.mjs'));
  await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: NODE_TARGET,
    packages: 'external',
    logLevel: 'warning',
  });
  return outfile;
}
