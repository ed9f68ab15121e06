// No Docker engine runs here, so the image and the compose cluster cannot be started in CI: these
// checks catch what can break without one (paths, the configs the containers read, versions).
// `.ci/run` validates docker-compose.yml itself with `docker-compose config -q`.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../gateway/config/index.ts';
import { parseDurationMs } from '../../src/duration.ts';
import { PEER_LEAVE_TIMEOUT_MS } from '../../gateway/control-plane.ts';
import { parseAgentArgs } from '../../registry-agent/cli.ts';
import { HAPROXY_BIN, REPO_ROOT } from '../harness/index.ts';

interface ComposeService {
  image?: string;
  build?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');
const dockerfile = read('Dockerfile');
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;
const agents = Object.entries(services).filter(([, service]) => service.entrypoint?.[0] === 'switchboard-agent');

/** Sources of the Dockerfile's `COPY` lines that come from the build context (not `--from=` a stage). */
function contextCopySources(): string[] {
  return dockerfile
    .split('\n')
    .filter((line) => /^COPY\s/.test(line) && !line.includes('--from='))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
}

describe('the Dockerfile and docker-compose.yml', () => {
  it('copies into the image only paths that exist and that .dockerignore lets through', () => {
    const sources = contextCopySources();
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'bin', 'gateway', 'registry-agent', 'src', 'test/fixtures']));
    const allowed = read('.dockerignore').split('\n').filter((line) => line.startsWith('!')).map((line) => line.slice(1));
    for (const source of sources) {
      expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
      expect(allowed, `.dockerignore lets ${source} into the build context`).toContain(source);
    }
  });

  it('installs the same ws version for the demo backend as package-lock.json pins', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version: string }> };
    expect(dockerfile).toContain(`ws@${lock.packages['node_modules/ws']!.version}`);
  });

  it('builds dist/ in a build stage from sources it copies, and ships it without tsx', () => {
    const buildStage = dockerfile.slice(dockerfile.indexOf(' AS build'), dockerfile.indexOf(' AS fixture-deps'));
    expect(buildStage).toContain('RUN npm run build');
    const buildCopies = buildStage.split('\n').filter((line) => /^COPY\s/.test(line)).flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
    const entrySources = [...read('scripts/build.mjs').matchAll(/'([\w/-]+\.ts)'/g)].map((match) => match[1]!);
    expect(entrySources).toEqual(expect.arrayContaining(['gateway/main.ts', 'registry-agent/main.ts']));
    // The modules build.mjs imports from beside itself (its esbuild target) run in that stage too.
    const buildImports = [...read('scripts/build.mjs').matchAll(/from '\.\/([\w.-]+)'/g)].map((match) => `scripts/${match[1]!}`);
    expect(buildImports).toContain('scripts/esbuild-target.mjs');
    for (const source of [...entrySources, 'scripts/build.mjs', ...buildImports]) {
      expect(buildCopies.some((copied) => source === copied || source.startsWith(`${copied}/`)), `the build stage copies ${source}`).toBe(true);
    }
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(dockerfile).toContain('npm ci --omit=dev --ignore-scripts');
    const manifest = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies), 'tsx is a dev tool, not a runtime dependency').not.toContain('tsx');
  });

  it('runs from the image only files that the image contains', () => {
    const copied = contextCopySources();
    // dist/ comes from the build stage: the same bundle the integration tests' build just made here.
    const fromBuild = (path: string): boolean => path.startsWith('dist/') && dockerfile.includes('COPY --from=build /app/dist ./dist');
    const inImage = (path: string): boolean =>
      existsSync(join(REPO_ROOT, path)) && (fromBuild(path) || copied.some((source) => path === source || path.startsWith(`${source}/`)));
    expect(inImage('bin/switchboard.js') && inImage('bin/switchboard-agent.js') && inImage('bin/compiled.js')).toBe(true);
    expect(inImage('dist/switchboard.js') && inImage('dist/switchboard-agent.js')).toBe(true);
    for (const [name, service] of Object.entries(services)) {
      const scripts = [...(service.entrypoint ?? []), ...(service.command ?? [])].filter((word) => /\.(m?js|ts)$/.test(word));
      for (const script of scripts) expect(inImage(script), `${name} runs ${script}`).toBe(true);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('./')) expect(existsSync(join(REPO_ROOT, source)), `${name} mounts ${source}`).toBe(true);
      }
    }
  });

  it('gives the gateway a configuration that its own loader accepts, with both registries', () => {
    const mount = services.gateway!.volumes!.find((volume) => volume.includes('/etc/switchboard/gateway.yaml'))!;
    const path = mount.split(':')[0]!;
    const config = parseConfig(path, read(path));
    expect(config.registries.map((registry) => registry.location.kind).sort()).toEqual(['etcd', 'zookeeper']);
    expect(services.gateway!.command).toEqual(['switchboard', '--config', '/etc/switchboard/gateway.yaml']);
    expect(services.gateway!.ports).toEqual(expect.arrayContaining(['8080:8080', '127.0.0.1:9180:9180']));
    // Healthy means ready: the admin listener's /ready, on the port the configuration gives it, for both gateways.
    for (const name of ['gateway', 'gateway-2']) expect(services[name]!.healthcheck!.test.join(' ')).toContain(`http://127.0.0.1:${config.admin!.listen.port}/ready`);
  });

  it('gives the gateway\'s snapshot files a folder that the image\'s user owns, not the read-only configuration\'s', () => {
    const user = /^USER\s+(\S+)$/m.exec(dockerfile)![1]!;
    expect(dockerfile).toMatch(new RegExp(`mkdir -p /var/lib/switchboard && chown ${user}:${user} /var/lib/switchboard`));
    const path = services.gateway!.volumes!.find((volume) => volume.endsWith(':/etc/switchboard/gateway.yaml:ro'))!.split(':')[0]!;
    const config = parseConfig(path, read(path));
    const snapshots = [...config.registries.map((registry) => registry.snapshotPath), config.configStore?.snapshotPath];
    expect(snapshots).toHaveLength(3);
    for (const snapshot of snapshots) expect(snapshot).toMatch(/^\/var\/lib\/switchboard\/[^/]+\.json$/);
  });

  it('runs two gateways on one configuration and config store behind an HAProxy that checks both', () => {
    expect(services['gateway-2']!.command).toEqual(services.gateway!.command);
    expect(services['gateway-2']!.volumes).toEqual(services.gateway!.volumes);
    const path = services.gateway!.volumes![0]!.split(':')[0]!;
    expect(parseConfig(path, read(path)).configStore).toMatchObject({ kind: 'etcd', endpoints: ['http://etcd:2379'] });
    const mount = services.haproxy!.volumes!.find((volume) => volume.endsWith(':/usr/local/etc/haproxy/haproxy.cfg:ro'))!;
    const cfg = read(mount.split(':')[0]!);
    // Every gateway of the compose file is a checked server of the HAProxy backend, on its listen port.
    expect([...cfg.matchAll(/^\s*server \S+ ([\w-]+):8080$/gm)].map((match) => match[1]).sort()).toEqual(['gateway', 'gateway-2']);
    expect(cfg).toMatch(/default-server .*\bcheck\b/);
    expect(cfg).toMatch(/option redispatch/);
    // Debian's haproxy parses it as the container's would (compose names do not resolve here: init-addr none).
    const checked = spawnSync(HAPROXY_BIN, ['-c', '-f', join(REPO_ROOT, mount.split(':')[0]!)], { encoding: 'utf8' });
    expect(checked.status, checked.stderr).toBe(0);
  });

  it('starts three agents whose SWITCHBOARD_* settings the agent accepts, one of them registered in etcd', () => {
    expect(agents).toHaveLength(3);
    const parsed = agents.map(([, service]) => parseAgentArgs(service.command ?? [], service.environment ?? {}));
    expect(parsed.map((options) => options.registry.kind).sort()).toEqual(['etcd', 'zookeeper', 'zookeeper']);
    expect(new Set(parsed.map((options) => options.service))).toEqual(new Set(['demo']));
    expect(parsed.map((options) => options.weight)).toEqual([1, 2, 3]);
    for (const options of parsed) {
      expect(options.command).toEqual(expect.arrayContaining(['test/fixtures/backend.mjs', '--host', '0.0.0.0', '--port', String(options.port)]));
      expect(services[options.host], `${options.id} registers a host name that compose resolves`).toBeDefined();
    }
  });

  it('gives every gateway and agent container a stop grace period that covers its own shutdown bound, so docker compose stop never cuts a drain', () => {
    const graceMs = (name: string) => parseDurationMs(services[name]!.stop_grace_period ?? '10s')!;
    const path = services.gateway!.volumes![0]!.split(':')[0]!;
    const config = parseConfig(path, read(path));
    // Leaving the peer list, the drain, then the margin a primary gives its workers to close their pools and logs (3 s).
    for (const name of ['gateway', 'gateway-2']) expect(graceMs(name), name).toBeGreaterThanOrEqual(PEER_LEAVE_TIMEOUT_MS + config.shutdown.drainTimeoutMs + 3_000);
    // The agent's bound with its backend as a child, the registry not answering (README, registry agent).
    for (const [name, service] of agents) {
      const options = parseAgentArgs(service.command ?? [], service.environment ?? {});
      expect(graceMs(name), name).toBeGreaterThanOrEqual(options.ttlMs + options.drainMs + 10_000 + 1_000);
    }
  });
});

