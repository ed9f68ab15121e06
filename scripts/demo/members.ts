import { join } from 'node:path';
import { DemoChild, type ChildSpec } from './child.ts';
import { DEMO_SERVICE } from './gateway-config.ts';

/** Weights of the three demo backends: 1:2:3 makes the weighted balancer's split easy to see. */
export const DEMO_WEIGHTS = [1, 2, 3] as const;

/** How long a stopping agent waits between marking its entry draining and deregistering it (then it stops its backend). */
const DRAIN = '1s';

// Quick probes so a (re)started backend registers within about a second and the demo stays lively.
const PROBE_TIMING = ['--interval', '500ms', '--timeout', '400ms', '--rise', '1', '--fall', '2', '--ttl', '4s'];

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
  return agentMember(context, {
    name,
    label: 'agent and backend',
    service: DEMO_SERVICE,
    port,
    weight,
    flags: ['--weight', String(weight), '--metadata', `demo=${name}`, '--health', 'http:/healthz'],
    program: 'test/fixtures/backend.mjs',
  });
}

/** The registry service the demo's gRPC greeter registers as (protocol grpc). */
export const DEMO_GRPC_SERVICE = 'greeter';

/** Prepares (does not start) the agent of the gRPC greeter (scripts/demo/greeter.mjs) on `port`, probed with the gRPC health check. */
export function demoGreeter(context: MemberContext, port: number): DemoMember {
  return agentMember(context, {
    name: 'greeter-1',
    label: 'agent and gRPC greeter',
    service: DEMO_GRPC_SERVICE,
    port,
    weight: 1,
    flags: ['--protocol', 'grpc', '--health', 'grpc'],
    program: 'scripts/demo/greeter.mjs',
  });
}

/** One demo member as its agent needs it: `flags` are the agent's own (weight, protocol, health), `program` the backend it runs. */
interface MemberSpec {
  readonly name: string;
  /** What the process is, for logs: `<name> (<label>)`. */
  readonly label: string;
  readonly service: string;
  readonly port: number;
  readonly weight: number;
  readonly flags: readonly string[];
  /** The backend program, relative to the repository root; it gets `--port` and `--name`. */
  readonly program: string;
}

/** A `switchboard-agent` that registers `spec.name` in the demo's ZooKeeper, probes it quickly and runs its backend as a child. */
function agentMember(context: MemberContext, spec: MemberSpec): DemoMember {
  const args = [
    join(context.repoRoot, 'bin/switchboard-agent.js'),
    '--registry', `zk://${context.zooKeeper}/services`,
    '--service', spec.service,
    '--id', spec.name,
    '--port', String(spec.port),
    ...spec.flags,
    '--drain', DRAIN,
    ...PROBE_TIMING,
    '--', process.execPath, join(context.repoRoot, spec.program), '--port', String(spec.port), '--name', spec.name,
  ];
  const agent = new DemoChild({
    name: `${spec.name} (${spec.label})`,
    command: process.execPath,
    args,
    logFile: join(context.logDir, `${spec.name}.log`),
    cwd: context.repoRoot,
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
    onUnexpectedExit: context.onUnexpectedExit,
  });
  return { name: spec.name, weight: spec.weight, port: spec.port, agent };
}

/** Grace for an agent to deregister, drain and stop its backend before its group is killed. */
export const AGENT_STOP_GRACE_MS = 10_000;
