// Vitest globalSetup of the integration project. The tests start the programs as they ship (bin/*.js,
// which run the compiled dist/), so dist/ must reflect the sources under test: this runs the same
// incremental build `npm run build` does (about 3 s when nothing changed) once per vitest run.
// Building rather than merely checking freshness means a test run never fails, nor silently runs old
// code, because someone edited a source and forgot to rebuild.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './programs.ts';

/** Builds dist/ from the current sources; throws with the compiler's output when the build fails. */
export function setup(): void {
  const build = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/build.mjs')], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 180_000 });
  if (build.status !== 0) {
    throw new Error(`npm run build failed (${build.error?.message ?? `exit ${build.status ?? build.signal}`}); the integration tests run the compiled programs:\n${build.stdout}${build.stderr}`);
  }
}
