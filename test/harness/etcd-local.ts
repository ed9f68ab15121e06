import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { EtcdCluster, EtcdMember } from './etcd.ts';
import { etcdHealthy, etcdStatus, type EtcdStatus } from './etcd-http.ts';
import { HarnessError } from './errors.ts';
import { freePort } from './ports.ts';
import { ManagedProcess, waitUntilReady } from './process.ts';
import { waitFor } from './wait.ts';
import { killLocalNodes, LocalNode, startLocalNode } from './local-node.ts';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 20_000;
const LEADER_TIMEOUT_MS = 20_000;

interface MemberPorts {
  readonly client: number;
  readonly peer: number;
}

class LocalEtcdMember extends LocalNode implements EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly logFile: string;

  constructor(name: string, dir: string, ports: MemberPorts, initialCluster: string, token: string) {
    super();
    this.name = name;
    this.clientUrl = `http://${HOST}:${ports.client}`;
    this.logFile = join(dir, 'etcd.log');
    const peerUrl = `http://${HOST}:${ports.peer}`;
    this.process = new ManagedProcess({
      name,
      command: 'etcd',
      args: [
        '--name', name,
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', this.clientUrl,
        '--advertise-client-urls', this.clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        // Sub-second elections keep leader-loss tests fast; loopback round trips are far below 10 ms.
        '--election-timeout', '100',
        '--heartbeat-interval', '10',
        '--logger', 'zap',
        '--log-outputs', 'stderr',
      ],
      logFile: this.logFile,
      cwd: dir,
      env: environmentWithoutEtcdFlags(),
    });
  }

  get reachable(): boolean {
    return this.process.running && !this.process.paused;
  }

  async waitReady(): Promise<void> {
    await waitUntilReady(this.process, () => etcdHealthy(this.clientUrl), {
      what: `etcd member ${this.name} (${this.clientUrl})`,
      timeoutMs: READY_TIMEOUT_MS,
    });
  }

}

// etcd reads every ETCD_* variable as a flag and refuses flags given twice; the caller's shell must not leak in.
function environmentWithoutEtcdFlags(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_')));
}

/** Starts `size` local etcd members as one static cluster on loopback and waits until every member is healthy. */
export function startLocalEtcd(size: number): Promise<EtcdCluster> {
  return startLocalNode(
    'switchboard-etcd-',
    (root) => new LocalEtcdCluster([], root),
    async (cluster, root) => {
      const ports: MemberPorts[] = [];
      for (let i = 0; i < size; i += 1) ports.push({ client: await freePort(), peer: await freePort() });
      const names = ports.map((_, index) => `etcd-${index + 1}`);
      const initialCluster = ports.map((p, index) => `${names[index]}=http://${HOST}:${p.peer}`).join(',');
      for (const [index, memberPorts] of ports.entries()) {
        const dir = join(root, `member-${index + 1}`);
        await mkdir(dir, { recursive: true });
        cluster.members.push(new LocalEtcdMember(names[index] ?? `etcd-${index + 1}`, dir, memberPorts, initialCluster, basename(root)));
      }
      return cluster.members;
    },
  );
}

class LocalEtcdCluster implements EtcdCluster {
  /** Filled in while it starts. */
  readonly members: LocalEtcdMember[];
  readonly #root: string;
  #closed = false;

  constructor(members: LocalEtcdMember[], root: string) {
    this.members = members;
    this.#root = root;
  }

  get endpoints(): string[] {
    return this.members.map((member) => member.clientUrl);
  }

  async leader(): Promise<EtcdMember> {
    let seen: (EtcdStatus | undefined)[] = [];
    try {
      return await waitFor(
        async () => {
          const reachable = this.members.filter((member) => member.reachable);
          seen = await Promise.all(reachable.map((member) => etcdStatus(member.clientUrl)));
          const leaderIds = new Set(seen.map((status) => status?.leaderId));
          if (seen.length === 0 || leaderIds.size !== 1 || leaderIds.has(undefined)) return undefined;
          const index = seen.findIndex((status) => status !== undefined && status.memberId === status.leaderId);
          return reachable[index];
        },
        { timeoutMs: LEADER_TIMEOUT_MS, intervalMs: 50, message: 'the running etcd members to agree on one leader' },
      );
    } catch (error) {
      const detail = JSON.stringify(seen);
      throw new HarnessError(`${(error as Error).message} (last statuses ${detail}; logs: ${this.members.map((m) => m.logFile).join(', ')})`, { cause: error });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await killLocalNodes(this.members, this.#root);
  }
}
