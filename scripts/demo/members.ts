import { join } from 'node:path';
import { DemoChild, type ChildSpec } from './child.ts';
import { DEMO_SERVICE } from './gateway-config.ts';

/** Weights of the three demo backends: 1:2:3 makes the weighted balancer's split easy to see. */
export const DEMO_WEIGHTS = [1, 2, 3] as const;

/** How long a stopping agent waits between marking its entry draining and deregistering it (then it stops its backend). */
const DRAIN = '1s';

// Quick probes so a (re)started backend registers within about a second and the demo stays lively.
const PROBE_FLAGS = ['--health', 'http:/healthz', '--interval', '500ms', '--timeout', '400ms', '--rise', '1', '--fall', '2', '--ttl', '4s'];

/** One demo backend (test/fixtures/backend.mjs) started by its own `switchboard-agent`. */
export interface DemoMember {
  readonly name: string;
  readonly weight: number;
  readonly port: number;
  /** The agent process; the backend is its child, in the same process group. */
  readonly agent: DemoChild;
}

/** What every member needs to know about the demo around it. */
export interface MemberContext {
  readonly repoRoot: string;
  readonly logDir: string;
  readonly zooKeeper: string;
  readonly onUnexpectedExit: ChildSpec['onUnexpectedExit'];
}

/** Prepares (does not start) the agent of backend `backend-<index>` on `port` with `weight`. */
export function demoMember(context: MemberContext, index: number, weight: number, port: number): DemoMember {
  const name = `backend-${index}`;
  const args = [
    join(context.repoRoot, 'bin/switchboard-agent.js'),
    '--registry', `zk://${context.zooKeeper}/services`,
    '--service', DEMO_SERVICE,
    '--id', name,
    '--port', String(port),
    '--weight', String(weight),
    '--metadata', `demo=${name}`,
    '--drain', DRAIN,
    ...PROBE_FLAGS,
    '--', process.execPath, join(context.repoRoot, 'test/fixtures/backend.mjs'), '--port', String(port), '--name', name,
  ];
  const agent = new DemoChild({
    name: `${name} (agent and backend)`,
    command: process.execPath,
    args,
    logFile: join(context.logDir, `${name}.log`),
    cwd: context.repoRoot,
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
    onUnexpectedExit: context.onUnexpectedExit,
  });
  return { name, weight, port, agent };
}

/** The registry service the demo's gRPC greeter registers as (protocol grpc). */
export const DEMO_GRPC_SERVICE = 'greeter';

/** Prepares (does not start) the agent of the gRPC greeter (scripts/demo/greeter.mjs) on `port`, probed with the gRPC health check. */
export function demoGreeter(context: MemberContext, port: number): DemoMember {
  const name = 'greeter-1';
  const args = [
    join(context.repoRoot, 'bin/switchboard-agent.js'),
    '--registry', `zk://${context.zooKeeper}/services`,
    '--service', DEMO_GRPC_SERVICE,
    '--id', name,
    '--port', String(port),
    '--protocol', 'grpc',
    '--drain', DRAIN,
    ...PROBE_FLAGS.slice(2),
    '--health', 'grpc',
    '--', process.execPath, join(context.repoRoot, 'scripts/demo/greeter.mjs'), '--port', String(port), '--name', name,
  ];
  const agent = new DemoChild({
    name: `${name} (agent and gRPC greeter)`,
    command: process.execPath,
    args,
    logFile: join(context.logDir, `${name}.log`),
    cwd: context.repoRoot,
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
    onUnexpectedExit: context.onUnexpectedExit,
  });
  return { name, weight: 1, port, agent };
}

/** Grace for an agent to deregister, drain and stop its backend before its group is killed. */
export const AGENT_STOP_GRACE_MS = 10_000;
