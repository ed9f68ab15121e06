#!/usr/bin/env node
// `npm run build`: bundles the programs into dist/ with esbuild (`npm ci` runs it through `prepare`).
// Why a bundle and not tsc's file-per-module output: profiling the compiled-per-file gateway showed most
// of its start-up in Node's module loader (resolving, statting and reading ~1,000 files of rxjs, zod,
// pino…); one tree-shaken file per program removes that. Types are checked by `npm run typecheck`.
// The registry clients stay external and load on demand (etcd3 reads .proto files beside itself at
// run time), each in its own chunk: a configuration that names neither registry never loads them.
// bcrypt is a native addon (prebuilt binaries beside its JavaScript), loaded by the first `basicAuth`.
import { cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { NODE_TARGET } from './esbuild-target.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'dist');
const startedAt = new Date();

/** dist/<name>.js ← source; the bins import these (help and flag parsing alone load nothing else). */
const ENTRIES = {
  'switchboard': 'gateway/main.ts',
  'switchboard-help': 'gateway/help.ts',
  // `switchboard check` and `switchboard explain`: one-shot commands that load no listener code.
  'switchboard-tools': 'gateway/tools/main.ts',
  'switchboard-agent': 'registry-agent/main.ts',
  'switchboard-agent-cli': 'registry-agent/cli.ts',
  'switchboard-agent-help': 'registry-agent/help.ts',
  // The docker-compose `traffic` container runs this; the image has no tsx.
  'demo-traffic': 'scripts/demo/traffic-cli.ts',
};
/** Files read through `import.meta.url` at run time, copied beside the chunks that read them. */
const ASSETS = [['gateway/admin/dashboard', 'dashboard']];

// esbuild writes into a staging directory beside dist/ (the same depth, so the source maps' relative
// paths hold), whose files then replace dist/'s one by one: a program started from dist/ while a build
// runs (the demo builds while a test suite or a gateway runs) finds a whole build, the old or the new,
// never an empty or half-written dist/.
const STAGING = join(ROOT, `.dist-staging-${process.pid}`);
rmSync(STAGING, { recursive: true, force: true });
try {
  await build({
    absWorkingDir: ROOT,
    entryPoints: ENTRIES,
    outdir: STAGING,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: NODE_TARGET,
    external: ['etcd3', 'node-zookeeper-client', '@grpc/*', 'bcrypt'],
    // Bundled CommonJS packages call require() for Node built-ins; ESM output has none of its own.
    banner: { js: "import { createRequire as __sbCreateRequire } from 'node:module'; const require = __sbCreateRequire(import.meta.url);" },
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
  });
} catch (error) {
  rmSync(STAGING, { recursive: true, force: true });
  process.stderr.write(`build: esbuild failed (${error instanceof Error ? error.message.split('\n')[0] : error}); dist/ is left as it was\n`);
  process.exit(1);
}
for (const [from, to] of ASSETS) cpSync(join(ROOT, from), join(STAGING, to), { recursive: true });
// Stamped with the time the build began: a source saved while it ran counts as newer than the build.
const STAMP = '.build-stamp';
/** The list of a build's files, kept in dist/ so that the next build knows which files were the last build's. */
const MANIFEST = '.build-files';
writeFileSync(join(STAGING, STAMP), `${startedAt.toISOString()}\n`);
utimesSync(join(STAGING, STAMP), startedAt, startedAt);
publish(STAGING, OUT);
rmSync(STAGING, { recursive: true, force: true });

/**
 * Moves every file of `staging` into `out` (a rename replaces a file atomically), then removes what
 * neither the new build nor the one before it has. Chunks go first, the entry files that import them
 * after, the list and the stamp last: a program that starts meanwhile loads either the old entry with
 * the old chunks, still there, or the new entry with the new ones. The last build's files stay until
 * the next build: a program still running it imports some chunks only when first needed (a registry
 * client, the tracing SDK, a config store writer), and a build of changed sources renames them
 * (chunk names are content hashes). A dist/ without a list keeps all its files one build more.
 */
function publish(staging, out) {
  const fresh = filesUnder(staging);
  fresh.add(MANIFEST);
  writeFileSync(join(staging, MANIFEST), `${JSON.stringify([...fresh].sort(), null, 1)}\n`);
  const previous = lastBuildFiles(out);
  const entries = new Set(Object.keys(ENTRIES).map((name) => `${name}.js`));
  const rank = (path) => (path === STAMP || path === MANIFEST ? 2 : entries.has(path) ? 1 : 0);
  for (const path of [...fresh].sort((a, b) => rank(a) - rank(b))) {
    mkdirSync(dirname(join(out, path)), { recursive: true });
    renameSync(join(staging, path), join(out, path));
  }
  for (const path of filesUnder(out)) if (!fresh.has(path) && !previous.has(path)) rmSync(join(out, path), { force: true });
}

/** The files the last build published into `out`, by its list; every file there when it has none. */
function lastBuildFiles(out) {
  try {
    return new Set(JSON.parse(readFileSync(join(out, MANIFEST), 'utf8')));
  } catch {
    return filesUnder(out);
  }
}

/** Paths of the files under `dir`, relative to it; none when it does not exist. */
function filesUnder(dir) {
  try {
    return new Set(readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1)));
  } catch (error) {
    if (error.code === 'ENOENT') return new Set();
    throw error;
  }
}
