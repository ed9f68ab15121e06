import zookeeper from 'node-zookeeper-client';
import { firstValueFrom, timeout, type Subscription } from 'rxjs';
import { encodeInstance } from '../src/discovery/instance-codec.ts';
import type { Instance } from '../src/discovery/instance.ts';
import { componentLogger } from '../src/logger.ts';
import { exists, isZooKeeperError, ZooKeeperSessionSupervisor, type ZooKeeperSession } from '../src/zookeeper/index.ts';
import { create, ephemeralOwnerOf, mkdirp, remove, setData } from '../src/zookeeper/zookeeper-writes.ts';
import { Registration } from './registration.ts';

/** Options of a ZooKeeper registration. */
export interface ZooKeeperRegistrationOptions {
  connectString: string;
  root: string;
  /** Requested session timeout: the node goes at most about this long after the agent dies. */
  sessionTimeoutMs: number;
}

/**
 * Registers an instance as the ephemeral znode `<root>/<service>/<id>`. On every new session
 * (after expiry, including "disconnected longer than the session timeout") the node is written
 * again; a node under the same id left by an older session is replaced.
 */
export class ZooKeeperRegistration extends Registration {
  private readonly supervisor: ZooKeeperSessionSupervisor;
  private readonly sessions: Subscription;
  /** Session that wrote the current node, so that deregistration never deletes another owner's node. */
  private writtenBy: string | undefined;
  /** Path of the instance last asked for, so that deregistration knows what to delete. */
  private lastPath: string | undefined;

  constructor(private readonly options: ZooKeeperRegistrationOptions) {
    super(componentLogger('agent-registration', { registry: 'zookeeper', connectString: options.connectString }));
    this.supervisor = new ZooKeeperSessionSupervisor({
      connectString: options.connectString,
      sessionTimeoutMs: options.sessionTimeoutMs,
      name: `agent:${options.connectString}`,
    });
    // Every new session starts without our ephemeral node: converge again (the first emission included).
    this.sessions = this.supervisor.session$.subscribe(() => {
      if (this.desired) this.reconcile();
    });
    this.supervisor.start();
  }

  /** The znode path this registration writes for `instance`. */
  pathOf(instance: Pick<Instance, 'service' | 'id'>): string {
    return `${this.options.root}/${instance.service}/${instance.id}`;
  }

  /** The current session, for tests that expire it. */
  currentSession(): ZooKeeperSession | undefined {
    return this.supervisor.currentSession();
  }

  protected async ensure(instance: Instance): Promise<void> {
    const { client, id } = await this.liveSession();
    const path = this.pathOf(instance);
    const data = Buffer.from(encodeInstance(instance));
    await mkdirp(client, `${this.options.root}/${instance.service}`);
    try {
      await create(client, path, data, zookeeper.CreateMode.EPHEMERAL);
    } catch (error) {
      if (!isZooKeeperError(error, 'NODE_EXISTS')) throw error;
      const stat = await exists(client, path);
      if (stat && ephemeralOwnerOf(stat) === id) {
        await setData(client, path, data, stat.version);
      } else {
        // Left by an older session of this agent (or by a previous run): ours now.
        if (stat) await remove(client, path, stat.version);
        await create(client, path, data, zookeeper.CreateMode.EPHEMERAL);
      }
    }
    this.writtenBy = id;
  }

  protected async remove(): Promise<void> {
    const session = this.supervisor.currentSession();
    const instancePath = this.lastPath;
    if (!session || !instancePath || this.writtenBy !== session.id) return;
    const stat = await exists(session.client, instancePath);
    if (stat && ephemeralOwnerOf(stat) === session.id) await remove(session.client, instancePath, stat.version);
    this.writtenBy = undefined;
  }

  protected async release(): Promise<void> {
    this.sessions.unsubscribe();
    await this.supervisor.close();
  }

  override register(instance: Instance): void {
    this.lastPath = this.pathOf(instance);
    super.register(instance);
  }

  private liveSession(): Promise<ZooKeeperSession> {
    const session = this.supervisor.currentSession();
    if (session && this.supervisor.currentState() === 'connected') return Promise.resolve(session);
    // session$ emits a session only once its client is connected.
    return firstValueFrom(this.supervisor.session$.pipe(timeout({ first: this.options.sessionTimeoutMs })));
  }
}
