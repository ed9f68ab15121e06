import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acceptsConnections } from '../../test/harness/programs.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { DemoChild, type ChildSpec } from './child.ts';
import { demoGatewayConfig } from './gateway-config.ts';
import { AGENT_STOP_GRACE_MS, DEMO_WEIGHTS, demoGreeter, demoMember, type DemoMember } from './members.ts';
import { freePort } from './ports.ts';
import { demoTcpMember } from './tcp-service.ts';
import { startZooKeeper, type DemoZooKeeper } from './zookeeper.ts';

const GATEWAY_READY_TIMEOUT_MS = 30_000;
const GATEWAY_STOP_GRACE_MS = 10_000;
const ZOOKEEPER_STOP_GRACE_MS = 5_000;

/** Where the demo's processes listen and keep their files. */
export interface ClusterPlan {
  readonly repoRoot: string;
  readonly dir: string;
  readonly port: number;
  readonly adminPort: number;
  readonly zooKeeperPort: number;
  /** The gateway's tcp entry point (the line server behind it). */
  readonly tcpPort: number;
}

/**
 * The processes of one demo run. `start*` steps run in order and each does nothing once `stop()`
 * has begun, so a failure or Ctrl-C during start-up never leaves a process started after the stop.
 */
export class DemoCluster {
  readonly logDir: string;
  readonly members: DemoMember[] = [];
  /** The gRPC greeter beside its agent; not part of the HTTP churn and traffic. */
  greeter: DemoMember | undefined;
  /** The TCP line server and its agent; outside `members`, so churn and HTTP traffic leave it alone. */
  tcpMember: DemoMember | undefined;
  zooKeeper: DemoZooKeeper | undefined;
  gateway: DemoChild | undefined;
  readonly #plan: ClusterPlan;
  readonly #onUnexpectedExit: ChildSpec['onUnexpectedExit'];
  #stopping = false;

  constructor(plan: ClusterPlan, onUnexpectedExit: ChildSpec['onUnexpectedExit']) {
    this.#plan = plan;
    this.logDir = join(plan.dir, 'logs');
    this.#onUnexpectedExit = onUnexpectedExit;
  }

  /** True once `stop()` has been called. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Starts ZooKeeper and waits until it serves. */
  async startZooKeeper(): Promise<DemoZooKeeper | undefined> {
    await mkdir(this.logDir, { recursive: true });
    if (this.#stopping) return undefined;
    this.zooKeeper = await startZooKeeper(this.#plan.dir, this.#plan.zooKeeperPort, this.#onUnexpectedExit);
    return this.zooKeeper;
  }

  /** Writes the gateway configuration, starts `bin/switchboard.js` and waits until it accepts connections. */
  async startGateway(): Promise<void> {
    if (this.#stopping || !this.zooKeeper) return;
    const configPath = join(this.#plan.dir, 'gateway.yaml');
    await writeFile(configPath, demoGatewayConfig({ port: this.#plan.port, adminPort: this.#plan.adminPort, zooKeeper: this.zooKeeper.connectString, tcpPort: this.#plan.tcpPort }));
    const gateway = new DemoChild({
      name: 'the gateway',
      command: process.execPath,
      args: [join(this.#plan.repoRoot, 'bin/switchboard.js'), '--config', configPath],
      logFile: join(this.logDir, 'gateway.log'),
      cwd: this.#plan.repoRoot,
      env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
      onUnexpectedExit: this.#onUnexpectedExit,
    });
    this.gateway = gateway;
    gateway.start();
    await waitFor(async () => !gateway.running || (await acceptsConnections(this.#plan.port)), {
      timeoutMs: GATEWAY_READY_TIMEOUT_MS,
      message: `the gateway to listen on 127.0.0.1:${this.#plan.port} (log: ${gateway.logFile})`,
    });
  }

  /** Starts the three backends, each as the child of its own agent, with weights 1, 2 and 3. */
  async startMembers(): Promise<void> {
    if (this.#stopping || !this.zooKeeper) return;
    const context = { repoRoot: this.#plan.repoRoot, logDir: this.logDir, zooKeeper: this.zooKeeper.connectString, onUnexpectedExit: this.#onUnexpectedExit };
    for (const [index, weight] of DEMO_WEIGHTS.entries()) {
      this.members.push(demoMember(context, index + 1, weight, await freePort()));
    }
    this.greeter = demoGreeter(context, await freePort());
    this.tcpMember = demoTcpMember(context, await freePort());
    if (this.#stopping) return;
    for (const member of [...this.members, this.greeter, this.tcpMember]) member.agent.start();
  }

  /** Stops agents first (each deregisters, then stops its backend), then the gateway, then ZooKeeper. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const extras = [this.greeter, this.tcpMember].filter((member): member is DemoMember => member !== undefined);
    await Promise.all([...this.members, ...extras].map((member) => member.agent.stop(AGENT_STOP_GRACE_MS)));
    await this.gateway?.stop(GATEWAY_STOP_GRACE_MS);
    await this.zooKeeper?.process.stop(ZOOKEEPER_STOP_GRACE_MS);
  }
}
