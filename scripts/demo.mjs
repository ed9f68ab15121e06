#!/usr/bin/env node
// `npm run demo`: ZooKeeper, the gateway, three backends beside agents, a TCP service, light traffic and churn.
// Plain JavaScript so that it runs on a fresh clone: it installs what is missing, builds the programs
// (dist/, which the bins it starts run) from the current sources, then loads the TypeScript demo
// driver (scripts/demo/) through tsx, a dev tool that npm ci installed.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';
const APT_COMMAND = 'apt-get install -y zookeeper';

const HELP = `npm run demo: a local Switchboard cluster to watch the balancer follow service discovery

Starts ZooKeeper, the gateway, three demo backends (weights 1, 2, 3) each beside a
switchboard-agent, a TCP line server behind a tcp entry point, and a few requests per second through the gateway; every few seconds it stops
one backend's agent and later restarts it. Ctrl-C stops everything it started.

Needs: Node 20, npm dependencies (installed with npm ci when missing), Java and ZooKeeper from
Debian's zookeeper package (installed when missing if you are root).

Environment:
  DEMO_PORT              proxy port on 127.0.0.1 (8080; a free port if taken)
  DEMO_ADMIN_PORT        admin API and dashboard port on 127.0.0.1 (9180; a free port if taken)
  DEMO_ZK_PORT           ZooKeeper client port (a free port)
  DEMO_TCP_PORT          tcp entry point port on 127.0.0.1, in front of a TCP line server (9000; a free port if taken)
  DEMO_RPS               demo requests per second (6)
  DEMO_CHURN_SECONDS     seconds between stopping and restarting a backend (8)
  DEMO_DURATION_SECONDS  stop by itself after this many seconds (runs until Ctrl-C)
  DEMO_KEEP_FILES        1 keeps the temporary directory with the logs on exit
`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}

ensureDependencies();
ensureZooKeeper();
say('demo: building the programs (npm run build)');
run(process.execPath, [join(ROOT, 'scripts/build.mjs')]);
const { register } = await import('tsx/esm/api');
register();
const { runDemo } = await import('./demo/main.ts');
await runDemo(ROOT);

/** Runs `npm ci` when node_modules lacks tsx, the one package every step after this needs. */
function ensureDependencies() {
  if (existsSync(join(ROOT, 'node_modules/tsx/package.json'))) return;
  say('demo: npm dependencies are missing; running npm ci');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

/** Installs Debian's zookeeper package (it brings Java) when root; otherwise says how and exits 1. */
function ensureZooKeeper() {
  if (existsSync(ZOOKEEPER_JAR) && onPath('java')) return;
  const root = process.getuid?.() === 0;
  if (!root || !onPath('apt-get')) {
    say(`demo: ZooKeeper is not installed (${ZOOKEEPER_JAR} or java is missing). Install it with:\n\n    sudo ${APT_COMMAND}\n\nthen run npm run demo again.`);
    if (!onPath('apt-get')) say('demo: (no apt-get here: on a system other than Debian or Ubuntu, install Java 17 and place ZooKeeper 3.8\'s server jar at that path.)');
    process.exit(1);
  }
  say(`demo: ZooKeeper is not installed; installing Debian's zookeeper package: apt-get update && ${APT_COMMAND}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], env);
  run('apt-get', ['install', '-y', 'zookeeper'], env);
  if (!existsSync(ZOOKEEPER_JAR) || !onPath('java')) {
    say(`demo: ${APT_COMMAND} finished but ${ZOOKEEPER_JAR} or java is still missing`);
    process.exit(1);
  }
}

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', env });
  if (result.status === 0) return;
  say(`demo: \`${command} ${args.join(' ')}\` failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`);
  process.exit(1);
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return dir !== '';
    } catch {
      return false;
    }
  });
}

function say(line) {
  process.stdout.write(`${line}\n`);
}
