import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../src/errors.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { killAllChildren, type ChildExit, type DemoChild } from './child.ts';
import { startChurn, type StopChurn } from './churn.ts';
import { DemoCluster } from './cluster.ts';
import { DEMO_ROUTE_PREFIX } from './gateway-config.ts';
import { demoOptionsFrom, type DemoOptions } from './options.ts';
import { freePort, portOrFree, reservePorts } from './ports.ts';
import { tcpHello } from './tcp-service.ts';
import { startTraffic, type StopTraffic } from './traffic.ts';

/** Backends get this long to pass their first probe and show up behind the gateway. */
const MEMBERS_READY_TIMEOUT_MS = 60_000;

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * Runs the demo cluster until Ctrl-C, SIGTERM, `DEMO_DURATION_SECONDS` or a child's unexpected
 * death; then stops everything it started in order, removes its files and exits (0, or 1 after a death).
 */
export async function runDemo(repoRoot: string): Promise<void> {
  let options: DemoOptions;
  try {
    options = demoOptionsFrom(process.env);
  } catch (error) {
    process.stderr.write(`demo: ${errorMessage(error)}\n`);
    process.exit(2);
  }
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-demo-'));
  // The ports asked for are not bound before the cluster starts: a free port picked meanwhile (for
  // ZooKeeper, the backends) must not be one of them, as the kernel may well offer it.
  reservePorts(options.port, options.adminPort, options.zooKeeperPort, options.tcpPort);
  const proxy = await portOrFree(options.port);
  const admin = await portOrFree(options.adminPort);
  const zooKeeperPort = options.zooKeeperPort || (await freePort());
  const tcp = await portOrFree(options.tcpPort);
  const cluster = new DemoCluster({ repoRoot, dir, port: proxy.port, adminPort: admin.port, zooKeeperPort, tcpPort: tcp.port }, (child, exit) => onUnexpectedExit(child, exit));
  // Filled in once the cluster is up; shutdown stops whatever is there.
  const loops: { stopTraffic?: StopTraffic; stopChurn?: StopChurn } = {};
  let durationTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;

  const onUnexpectedExit = (child: DemoChild, exit: ChildExit): void => {
    if (stopping) return;
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    void child.logTail().then((tail) => {
      say(`\ndemo: ${child.name} exited unexpectedly (${how}). The end of ${child.logFile}:\n${indent(tail)}`);
      void shutdown(1, `${child.name} died`);
    });
  };
  const shutdown = (status: number, reason: string): Promise<void> => {
    stopping ??= (async () => {
      clearTimeout(durationTimer);
      say(`\ndemo: stopping (${reason}): agents first, then the gateway, then ZooKeeper…`);
      loops.stopTraffic?.();
      await loops.stopChurn?.();
      await cluster.stop();
      if (options.keepFiles) say(`demo: files kept in ${dir}`);
      else await rm(dir, { recursive: true, force: true });
      say('demo: stopped; every process it started has exited.');
      process.exit(status);
    })();
    return stopping;
  };

  // A second Ctrl-C does not wait for deregistration and draining.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (!stopping) return void shutdown(0, signal);
      say(`demo: ${signal} again: killing everything now`);
      process.exit(130);
    });
  }
  // The last line of defence (a bug, a forced exit): nothing the demo started outlives it.
  process.on('exit', () => {
    killAllChildren();
    if (!options.keepFiles) rmSync(dir, { recursive: true, force: true });
  });
  process.on('uncaughtException', (error) => {
    say(`demo: internal error: ${error.stack ?? error.message}`);
    void shutdown(1, 'internal error');
  });

  say('Switchboard demo: ZooKeeper, the gateway, and three backends (weights 1, 2, 3) each beside a switchboard-agent.');
  say(`demo: logs of every process go to ${cluster.logDir}/`);
  for (const [what, chosen] of [['proxy', proxy], ['admin', admin], ['tcp', tcp]] as const) {
    if (chosen.fallback) say(`demo: port ${chosen.wanted} is taken; the ${what} listener uses ${chosen.port} instead`);
  }
  const steps: [string, () => Promise<unknown>][] = [
    [`starting ZooKeeper on 127.0.0.1:${zooKeeperPort} (standalone, data in ${dir})…`, () => cluster.startZooKeeper()],
    [`starting the gateway on 127.0.0.1:${proxy.port} (admin on 127.0.0.1:${admin.port})…`, () => cluster.startGateway()],
    ['starting three backends, each started and registered by its agent once /healthz answers, and a gRPC greeter registered once its health service answers SERVING…', () => cluster.startMembers()],
  ];
  for (const [what, step] of steps) {
    // A child that died during the previous step has already begun the shutdown.
    if (stopping) return;
    say(`demo: ${what}`);
    try {
      await step();
    } catch (error) {
      say(`demo: start-up failed: ${errorMessage(error)}`);
      return shutdown(1, 'start-up failed');
    }
  }
  const url = `http://127.0.0.1:${proxy.port}${DEMO_ROUTE_PREFIX}/hello`;
  const names = cluster.members.map((member) => member.name);
  await waitFor(async () => cluster.stopping || (await answeringBackends(url)).size === names.length, {
    timeoutMs: MEMBERS_READY_TIMEOUT_MS,
    intervalMs: 250,
  }).catch(() => say(`demo: not every backend answers yet after ${MEMBERS_READY_TIMEOUT_MS / 1_000} s; see the logs`));
  if (stopping) return;

  say('');
  say(`demo: proxy      ${url}   (also http://127.0.0.1:${proxy.port}/demo/hello, the namespace route)`);
  say(`demo: gRPC       127.0.0.1:${proxy.port} helloworld.Greeter/SayHello (h2c; the greeter is registered with protocol grpc)`);
  say(`demo: dashboard  http://127.0.0.1:${admin.port}/   (admin API: http://127.0.0.1:${admin.port}/api/services)`);
  const tcpAnswer = await waitFor<string | boolean | undefined>(() => cluster.stopping || tcpHello(tcp.port), { timeoutMs: MEMBERS_READY_TIMEOUT_MS, intervalMs: 250 }).catch(() => undefined);
  say(`demo: tcp        127.0.0.1:${tcp.port}   (a tcp entry point; \`nc 127.0.0.1 ${tcp.port}\` and type lines: "${typeof tcpAnswer === 'string' ? tcpAnswer : 'not answering yet'}")`);
  say(`demo: every ${options.churnMs / 1_000} s a backend's agent is stopped, then restarted. Ctrl-C stops everything.`);
  say(`demo: ${options.requestsPerSecond} requests/s through the gateway; which backend answered, each second:`);
  loops.stopTraffic = startTraffic(url, options.requestsPerSecond, names, say);
  loops.stopChurn = startChurn(cluster.members, options.churnMs, say);
  if (options.durationMs !== undefined) {
    durationTimer = setTimeout(() => void shutdown(0, `DEMO_DURATION_SECONDS=${options.durationMs! / 1_000} elapsed`), options.durationMs);
  }
}

/** The backend names that answered a dozen requests through the gateway. */
async function answeringBackends(url: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (let request = 0; request < 12; request += 1) {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    if (response?.status === 200) names.add(((await response.json()) as { name: string }).name);
    else await response?.body?.cancel();
  }
  return names;
}

function indent(text: string): string {
  return text.trimEnd().split('\n').map((line) => `    ${line}`).join('\n');
}
