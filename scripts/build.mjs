#!/usr/bin/env node
// `npm run build`: bundles the programs into dist/ with esbuild (`npm ci` runs it through `prepare`).
// Why a bundle and not tsc's file-per-module output: profiling the compiled-per-file gateway showed most
// of its start-up in Node's module loader (resolving, statting and reading ~1,000 files of rxjs, zod,
// pino…); one tree-shaken file per program removes that. Types are checked by `npm run typecheck`.
// The registry clients stay external and load on demand (etcd3 reads .proto files beside itself at
// run time), each in its own chunk: a configuration that names neither registry never loads them.
// bcrypt is a native addon (prebuilt binaries beside its JavaScript), loaded by the first `basicAuth`.
import { cpSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

rmSync(OUT, { recursive: true, force: true });
try {
  await build({
    absWorkingDir: ROOT,
    entryPoints: ENTRIES,
    outdir: OUT,
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
  process.stderr.write(`build: esbuild failed (${error instanceof Error ? error.message.split('\n')[0] : error}); dist/ is not usable\n`);
  process.exit(1);
}
for (const [from, to] of ASSETS) cpSync(join(ROOT, from), join(OUT, to), { recursive: true });
mkdirSync(OUT, { recursive: true });
// Stamped with the time the build began: a source saved while it ran counts as newer than the build.
const stamp = join(OUT, '.build-stamp');
writeFileSync(stamp, `${startedAt.toISOString()}\n`);
utimesSync(stamp, startedAt, startedAt);
