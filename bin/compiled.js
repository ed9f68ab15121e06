// Shared by the program bins: they run the JavaScript that `npm run build` compiles into dist/
// (`npm ci` runs it through the `prepare` script), so nothing is compiled at start and tsx is not needed.
import { existsSync, readdirSync, statSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Node 22.1+ keeps V8's compiled code of the bundle on disk (in the OS temporary directory) for the
// next start; parsing the bundle is the largest cost left at start-up. Node 20 has no such cache.
module.enableCompileCache?.();

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STAMP = join(ROOT, 'dist/.build-stamp');
const SOURCE_DIRS = ['src', 'gateway', 'registry-agent'];

/**
 * The URL of `path` inside dist/ for `program`. Exits with status 1 and says how to build when dist/
 * lacks it; warns on stderr (once per start) when a TypeScript source is newer than the last build.
 */
export function compiled(path, program) {
  const file = join(ROOT, 'dist', path);
  if (!existsSync(file)) {
    process.stderr.write(
      `${program}: ${file} is missing. The program runs the JavaScript compiled from its TypeScript sources: ` +
        `run \`npm run build\` in ${ROOT} (npm ci does it).\n`,
    );
    process.exit(1);
  }
  warnWhenStale(program);
  return new URL(`file://${file}`).href;
}

let checked = false;

/** In a source checkout, a build older than a source file runs old code: say so rather than stay silent. */
function warnWhenStale(program) {
  if (checked || !existsSync(STAMP)) return;
  checked = true;
  const built = statSync(STAMP).mtimeMs;
  const newer = SOURCE_DIRS.map((dir) => newestSource(join(ROOT, dir), built)).find((file) => file !== undefined);
  if (newer) process.stderr.write(`${program}: warning: ${newer} changed after the last build; this runs the old code until \`npm run build\`\n`);
}

function newestSource(dir, after) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true, recursive: true });
  } catch {
    return undefined; // No sources beside the build (a Docker image): nothing can be stale.
  }
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) continue;
    const file = join(entry.parentPath ?? entry.path, entry.name);
    if (statSync(file).mtimeMs > after) return file;
  }
  return undefined;
}
