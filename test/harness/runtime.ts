import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { HarnessError } from './errors.ts';

/** Where registries run in tests: local binaries (Debian packages) or Docker containers via testcontainers. */
export type TestRuntime = 'local' | 'docker';

/** Which registry a runtime is chosen for, and whether it needs more than one node. */
export interface RuntimeRequest {
  readonly system: 'zookeeper' | 'etcd';
  readonly multiNode: boolean;
}

/** Environment variable that forces a runtime: `local` or `docker`. */
export const RUNTIME_ENV = 'SWITCHBOARD_TEST_RUNTIME';
/** Debian command that installs the local binaries the harness uses. */
export const INSTALL_HINT = 'apt-get install -y zookeeper etcd-server';
/** Path of the ZooKeeper server jar installed by the Debian package. */
export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';

const DOCKER_CHECK_TIMEOUT_MS = 2_000;

let dockerCheck: Promise<boolean> | undefined;

/**
 * Picks the runtime for one registry: SWITCHBOARD_TEST_RUNTIME forces it; otherwise local binaries for
 * multi-node setups (containers support single nodes only), Docker when an engine answers within 2 s,
 * else local binaries. Throws a HarnessError naming what to install when nothing usable is there.
 */
export async function selectRuntime(request: RuntimeRequest): Promise<TestRuntime> {
  const forced = process.env[RUNTIME_ENV]?.trim();
  if (forced === 'docker') return 'docker';
  if (forced === 'local') {
    assertLocalBinaries(request.system);
    return 'local';
  }
  if (forced) throw new HarnessError(`${RUNTIME_ENV}=${forced} is not one of: local, docker`);
  const missing = missingLocalBinaries(request.system);
  if (request.multiNode && missing.length === 0) return 'local';
  if (await dockerAvailable()) return 'docker';
  assertLocalBinaries(request.system);
  return 'local';
}

/** True when testcontainers finds a working container engine within 2 s; the answer is cached per process. */
export function dockerAvailable(): Promise<boolean> {
  dockerCheck ??= probeDocker();
  return dockerCheck;
}

async function probeDocker(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), DOCKER_CHECK_TIMEOUT_MS);
      timer.unref();
    });
    const found = getContainerRuntimeClient().then(() => true, () => false);
    return await Promise.race([found, timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Throws a HarnessError with the install command when the local binaries for `system` are missing. */
export function assertLocalBinaries(system: RuntimeRequest['system']): void {
  const missing = missingLocalBinaries(system);
  if (missing.length === 0) return;
  throw new HarnessError(
    `${system === 'zookeeper' ? 'ZooKeeper' : 'etcd'} tests need a Docker engine or local binaries; ` +
      `missing ${missing.join(', ')}. Install them with \`${INSTALL_HINT}\` (or start a Docker engine).`,
  );
}

function missingLocalBinaries(system: RuntimeRequest['system']): string[] {
  if (system === 'etcd') return onPath('etcd') ? [] : ['etcd'];
  const missing: string[] = [];
  if (!onPath('java')) missing.push('java');
  if (!existsSync(ZOOKEEPER_JAR)) missing.push(ZOOKEEPER_JAR);
  return missing;
}

/** Absolute path of an executable found on PATH, or undefined. */
export function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}
