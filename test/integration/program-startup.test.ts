// The published bins as they ship: compiled JavaScript from dist/, registry clients loaded only for
// the registries a configuration names (and connected while the gateway already listens), and a
// clear word when dist/ is missing or older than the sources.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { delimiter, dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, ManagedProcess, readTail, refusingPort, REPO_ROOT, startBackend, startGateway, waitFor, waitForGatewayListening, type GatewayProcess } from '../harness/index.ts';

let gateway: GatewayProcess | undefined;
afterEach(async () => {
  await gateway?.process.stop();
  gateway = undefined;
});

/**
 * Starts the gateway with a preload that writes, at exit, the npm packages Node's CommonJS loader
 * loaded (etcd3 and node-zookeeper-client are CommonJS), and returns them after a SIGTERM stop.
 */
async function packagesLoadedBy(config: string): Promise<string[]> {
  const dir = await makeTempDir('sb-loaded-');
  const report = join(dir, 'loaded.json');
  const preload = join(dir, 'report-loaded.cjs');
  writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache))));\n`);
  gateway = await startGateway(config, { NODE_OPTIONS: `--require=${preload}` });
  await gateway.process.stop();
  gateway = undefined;
  const files = JSON.parse(readFileSync(report, 'utf8')) as string[];
  return [...new Set(files.map((file) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1]).filter((name): name is string => name !== undefined))];
}

/** A gateway on `{{port}}` with one static instance at `port`, which the tests never reach: a refusing port. */
const STATIC = (port: number) => `listen: 127.0.0.1:{{port}}\nservices:\n  demo:\n    instances: ["127.0.0.1:${port}"]\nroutes:\n  - { path: /api, service: demo }\n`;

describe('the compiled programs at start-up', () => {
  it('load neither registry client for a configuration without registries', async () => {
    const loaded = await packagesLoadedBy(STATIC(await refusingPort()));
    expect(loaded).not.toContain('etcd3');
    expect(loaded).not.toContain('node-zookeeper-client');
    expect(loaded).not.toContain('tsx');
  });

  it('listen while an unreachable ZooKeeper is still connecting, having loaded only its client, and tell a request that it is not connected yet', async () => {
    const deadPort = await refusingPort();
    // A second route, to a service only ZooKeeper could list.
    const config = `${STATIC(deadPort)}  - { path: /orders, service: orders }\nadmin: 127.0.0.1:{{adminPort}}\nregistries: [zk://127.0.0.1:${deadPort}/services]\n`;
    const dir = await makeTempDir('sb-loaded-');
    const report = join(dir, 'loaded.json');
    const clientLoaded = join(dir, 'zookeeper-client-loaded');
    const preload = join(dir, 'report-loaded.cjs');
    // The ZooKeeper client is imported on the provider's start, after the gateway may have said it
    // listens: the preload marks when it is loaded. Waiting instead for the provider's first log line
    // waited out its 10 s connect deadline.
    writeFileSync(preload, [
      `const fs = require('node:fs');`,
      `process.on('exit', () => fs.writeFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache))));`,
      `const poll = setInterval(() => { if (Object.keys(require.cache).some((path) => path.includes('node_modules/node-zookeeper-client/'))) { fs.writeFileSync(${JSON.stringify(clientLoaded)}, ''); clearInterval(poll); } }, 20);`,
      'poll.unref();',
      '',
    ].join('\n'));
    // startGateway resolves once the port accepts connections: nothing answers on deadPort, so the registry cannot have connected.
    gateway = await startGateway(config, { NODE_OPTIONS: `--require=${preload}` });
    await waitFor(() => existsSync(clientLoaded), { timeoutMs: 20_000, message: 'the gateway to load the ZooKeeper client' });
    // Not "no registered instances", which would send an operator looking for missing agents.
    const answer = await fetch(`${gateway.url}/orders`);
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ error: 'no-instances', message: 'registry zookeeper not yet connected: no instance set loaded yet' });
    const explained = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/api/explain?path=/orders`)).json()) as { outcome: string; notes: string[] };
    expect(explained.outcome).toBe('no-instances');
    expect(explained.notes).toContain(`no instance set loaded yet for service "orders": registry zk:127.0.0.1:${deadPort}/services not yet connected`);
    await gateway.process.stop();
    gateway = undefined;
    const loaded = (JSON.parse(readFileSync(report, 'utf8')) as string[]).join('\n');
    expect(loaded).toContain('node_modules/node-zookeeper-client/');
    expect(loaded).not.toContain('node_modules/etcd3/');
  });
});

describe('the gateway command (the bin run as an executable, as npm links it and the image runs it)', () => {
  let command: ManagedProcess | undefined;
  afterEach(async () => {
    await command?.stop();
    command = undefined;
  });

  /** Starts bin/switchboard.js through its shebang, with this Node first on PATH, and waits until it listens. */
  async function startCommand(env: NodeJS.ProcessEnv): Promise<ManagedProcess> {
    const dir = await makeTempDir('sb-command-');
    // Port 0, told in the log: a port chosen ahead could be taken by a program of the other test worker first.
    // No admin listener: the default one is a fixed port, which a gateway of another file may hold.
    writeFileSync(join(dir, 'gateway.yaml'), `${STATIC(await refusingPort()).replace('{{port}}', '0')}admin: false\n`);
    command = new ManagedProcess({
      name: 'switchboard-command',
      command: join(REPO_ROOT, 'bin/switchboard.js'),
      args: ['--config', join(dir, 'gateway.yaml')],
      logFile: join(dir, 'gateway.log'),
      env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, SWITCHBOARD_LOG_LEVEL: 'info', ...env },
      cwd: REPO_ROOT,
    });
    command.start();
    const started = command;
    await waitForGatewayListening(() => readFile(started.logFile, 'utf8'), () => started.exitInfo !== undefined);
    return started;
  }

  const nodeFlagsOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg.startsWith('--'));

  it("runs Node with 32 MB semi-spaces, and says so when that overrides NODE_OPTIONS's size", async () => {
    const plain = await startCommand({});
    expect(nodeFlagsOf(plain.pid!)).toContain('--max-semi-space-size=32');
    expect(await readTail(plain.logFile)).not.toContain('NODE_OPTIONS');
    await plain.stop();

    const overridden = await startCommand({ NODE_OPTIONS: '--max-semi-space-size=8' });
    expect(nodeFlagsOf(overridden.pid!)).toContain('--max-semi-space-size=32');
    expect(await readTail(overridden.logFile)).toContain("NODE_OPTIONS sets --max-semi-space-size, but the command line's --max-semi-space-size=32 wins");
  });
});

describe('the bins without a usable build', () => {
  /** A copy of bin/ in a scratch root, with a copy of the real dist/ when `withBuild`. */
  async function scratchRoot(withBuild: boolean): Promise<string> {
    const root = await makeTempDir('sb-bin-');
    cpSync(join(REPO_ROOT, 'bin'), join(root, 'bin'), { recursive: true });
    if (withBuild) cpSync(join(REPO_ROOT, 'dist'), join(root, 'dist'), { recursive: true });
    return root;
  }

  it('refuses to start without dist/ and says how to build it', async () => {
    const root = await scratchRoot(false);
    for (const bin of ['switchboard.js', 'switchboard-agent.js']) {
      const run = spawnSync(process.execPath, [join(root, 'bin', bin), '--help'], { encoding: 'utf8', timeout: 30_000 });
      expect(run.status, run.stderr).toBe(1);
      expect(run.stderr).toContain('is missing');
      expect(run.stderr).toContain('npm run build');
      expect(run.stdout).toBe('');
    }
  });

  it('warns when a source is newer than the build, and still runs', async () => {
    const root = await scratchRoot(true);
    const stamp = join(root, 'dist/.build-stamp');
    const past = new Date(Date.now() - 60_000);
    utimesSync(stamp, past, past);
    mkdirSync(join(root, 'gateway'));
    writeFileSync(join(root, 'gateway/edited.ts'), 'export {};\n');
    const run = spawnSync(process.execPath, [join(root, 'bin/switchboard.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('Usage: switchboard --config <file>');
    expect(run.stderr).toContain(`${join(root, 'gateway/edited.ts')} changed after the last build`);
    // Built after the edit: no warning.
    utimesSync(stamp, new Date(), new Date(Date.now() + 60_000));
    const fresh = spawnSync(process.execPath, [join(root, 'bin/switchboard.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(fresh.stderr).toBe('');
  });
});

describe('npm run build while the programs start from dist/', () => {
  it('leaves them a whole build throughout, and removes what the new build no longer has', async () => {
    const dir = await makeTempDir('sb-rebuild-');
    const config = join(dir, 'gateway.yaml');
    writeFileSync(config, STATIC(await refusingPort()).replace('{{port}}', '0'));
    const stale = join(REPO_ROOT, 'dist/chunk-STALE0.js');
    writeFileSync(stale, 'export {};\n');
    const stampBefore = readFileSync(join(REPO_ROOT, 'dist/.build-stamp'), 'utf8');
    const build = spawn(process.execPath, [join(REPO_ROOT, 'scripts/build.mjs')], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let buildErrors = '';
    build.stderr.on('data', (chunk: Buffer) => (buildErrors += chunk.toString()));
    const built = new Promise<number | null>((resolve) => build.on('exit', resolve));
    let finished = false;
    void built.then(() => (finished = true));
    // `switchboard check` imports its entry and chunks from dist/; an old build emptied dist/ first.
    const failures: string[] = [];
    let runs = 0;
    do {
      const run = await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), 'check', '--config', config], { encoding: 'utf8', timeout: 30_000 }).catch(
        (error: { stdout?: string; message: string }) => ({ stdout: '', stderr: `${error.message}${error.stdout ?? ''}` }),
      );
      runs += 1;
      if (run.stdout !== `${config}: ok\n`) failures.push(run.stderr.split('\n').slice(0, 3).join(' | '));
    } while (!finished);
    expect(await built, buildErrors).toBe(0);
    expect(failures).toEqual([]);
    expect(runs).toBeGreaterThan(1);
    expect(existsSync(stale)).toBe(false);
    expect(readFileSync(join(REPO_ROOT, 'dist/.build-stamp'), 'utf8')).not.toBe(stampBefore);
    // Its own staging directory only: another build may be running meanwhile (demo.test.ts builds too,
    // in the other worker), and its staging directory is there until it has published.
    expect(readdirSync(REPO_ROOT)).not.toContain(`.dist-staging-${build.pid}`);
  });

  it("keeps the last build's files one build more, for programs still running it that import a chunk when first needed", async () => {
    // A scratch root of its own: builds of the real repo by other files (the demo's) would move its generations on.
    const root = await makeTempDir('sb-generations-');
    for (const entry of ['gateway', 'src', 'registry-agent', 'node_modules', 'package.json', 'tsconfig.json']) symlinkSync(join(REPO_ROOT, entry), join(root, entry));
    mkdirSync(join(root, 'scripts'));
    for (const entry of readdirSync(join(REPO_ROOT, 'scripts'))) symlinkSync(join(REPO_ROOT, 'scripts', entry), join(root, 'scripts', entry));
    // Symlinked, build.mjs would find the real repo from its own real path: a copy finds the scratch root.
    rmSync(join(root, 'scripts/build.mjs'));
    cpSync(join(REPO_ROOT, 'scripts/build.mjs'), join(root, 'scripts/build.mjs'));
    const build = () => {
      const run = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
      expect(run.status, run.stderr).toBe(0);
    };
    build();
    // As if the last build had a chunk the next one no longer makes (a source changed, so its hash did).
    const list = join(root, 'dist/.build-files');
    writeFileSync(join(root, 'dist/chunk-LASTGEN.js'), 'export {};\n');
    writeFileSync(list, JSON.stringify([...(JSON.parse(readFileSync(list, 'utf8')) as string[]), 'chunk-LASTGEN.js']));
    writeFileSync(join(root, 'dist/chunk-NOBUILD.js'), 'export {};\n');
    build();
    expect(existsSync(join(root, 'dist/chunk-LASTGEN.js'))).toBe(true);
    expect(existsSync(join(root, 'dist/chunk-NOBUILD.js'))).toBe(false);
    expect(JSON.parse(readFileSync(list, 'utf8'))).not.toContain('chunk-LASTGEN.js');
    build();
    expect(existsSync(join(root, 'dist/chunk-LASTGEN.js'))).toBe(false);
    expect(existsSync(join(root, 'dist/switchboard.js'))).toBe(true);
  });
});

describe('the npm package', () => {
  it('holds the compiled programs, their assets and the license, not the sources or tests, and runs from them', async () => {
    const dir = await makeTempDir('sb-pack-');
    // As `npm publish` packs (its `prepare` build is the one this checkout already has).
    const packed = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(packed.status, packed.stderr).toBe(0);
    const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = report!.files.map((file) => file.path);
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'bin/switchboard.js', 'bin/switchboard-agent.js', 'dist/switchboard.js', 'dist/switchboard-agent.js']));
    expect(files.filter((file) => /^(test|gateway|src|registry-agent|bench|scripts)\//.test(file) || file.endsWith('.ts'))).toEqual([]);

    const untarred = spawnSync('tar', ['-xzf', join(dir, report!.filename), '-C', dir], { encoding: 'utf8' });
    expect(untarred.status, untarred.stderr).toBe(0);
    const root = join(dir, 'package');
    // Where npm would have installed its dependencies.
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
    const agentHelp = spawnSync(process.execPath, [join(root, 'bin/switchboard-agent.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(agentHelp.status, agentHelp.stderr).toBe(0);
    expect(agentHelp.stderr).toBe('');

    const backend = await startBackend({ name: 'packed' });
    try {
      gateway = await startGateway(`${STATIC(backend.port)}admin: 127.0.0.1:{{adminPort}}\n`, {}, { bin: join(root, 'bin/switchboard.js') });
      expect(await readFile(`/proc/${gateway.process.pid!}/cmdline`, 'utf8')).toContain(join(root, 'bin/switchboard.js'));
      const proxied = await fetch(`${gateway.url}/api`);
      expect([proxied.status, await proxied.text()]).toEqual([200, expect.stringContaining('packed')]);
      // The dashboard's page and script are files of dist/ read at run time.
      const page = await fetch(`http://127.0.0.1:${gateway.adminPort}/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const script = /<script[^>]+src="([^"]+)"/.exec(html)?.[1];
      expect(script, html.slice(0, 500)).toBeDefined();
      const asset = await fetch(new URL(script!, `http://127.0.0.1:${gateway.adminPort}/`));
      expect(asset.status).toBe(200);
    } finally {
      await backend.process.stop();
    }
  });
});
