import zookeeper from 'node-zookeeper-client';
import { filter, firstValueFrom, timeout, type Subscription } from 'rxjs';
import type { Instance } from '../discovery/instance.ts';
import { RegistryEntryHeldError } from '../errors.ts';
import { componentLogger } from '../logger.ts';
import { exists, getData, isZooKeeperError, ZooKeeperError, ZooKeeperSessionSupervisor, type SessionSupervisorOptions, type ZooKeeperSession, type ZooKeeperWatcher } from '../zookeeper/index.ts';
import { describeZooKeeperRefusal, digestUser } from '../zookeeper/zookeeper-refusal.ts';
import { create, ephemeralOwnerOf, mkdirp, remove, setData, writeAcls, type ZooKeeperReadAccess } from '../zookeeper/zookeeper-writes.ts';
import { instanceEntry, Registration, type RegisteredEntry } from './registration.ts';

/** `ephemeralOwnerOf` a persistent node: no session owns it. */
const PERSISTENT_OWNER = '0000000000000000';

/** Options of a ZooKeeper registration. */
export interface ZooKeeperRegistrationOptions<T = Instance> {
  connectString: string;
  root: string;
  /** Requested session timeout: the node goes at most about this long after the agent dies. */
  sessionTimeoutMs: number;
  /** Replaces the real client factory, for tests that script the library. */
  createClient?: SessionSupervisorOptions['createClient'];
  /** The znode path and data of an entry that is not an instance (a gateway peer); an instance under `root` by default. */
  entry?: RegisteredEntry<T>;
  /** The component name in logs. */
  component?: string;
  /**
   * `user:password` for ZooKeeper's digest authentication: the session runs as that identity, and
   * the nodes it creates (the entry and missing parents) can be changed only by it (`writeAcls`).
   */
  digest?: string;
  /** Who may read the nodes it creates when `digest` is given (`writeAcls`); anyone by default. */
  readAccess?: ZooKeeperReadAccess;
}

/**
 * Reconnect policy of an agent's session: it retries sooner than a gateway (at most every second,
 * each try bounded by the connect deadline), because a registry that answers again should list
 * its backend before gateways act on a re-read that lacks it.
 */
export const AGENT_RECONNECT_BACKOFF = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 } as const;
/** Upper bound of the library's random pause between rounds over the servers: a restarted server is found within about that, for a few refused connects a second while it is down. */
export const AGENT_SPIN_DELAY_MS = 500;

/**
 * Registers an instance as the ephemeral znode `<root>/<service>/<id>`. On every new session
 * (after expiry, including "disconnected longer than the session timeout") the node is written
 * again; a node under the same id left by an older session of this registration is replaced, one
 * another session wrote meanwhile (a second agent registering the same id) is left alone, watched,
 * and ours written once it goes. A node under the same id found as the registration starts (or
 * starts again after a deregistration) is replaced: most likely this agent's previous run left it.
 * A persistent node there (no session owns it) is never deleted: the registration is `blocked` and
 * writes its own once an operator deletes it (watched). A node deleted by another
 * client while it is wanted (an operator's `deleteall`, a clean-up script) is written again too,
 * as Curator's `PersistentNode` does: the session alone would never bring it back. Data of its
 * node that another client made unreadable to gateways is written back (`EntryRepair`).
 */
export class ZooKeeperRegistration<T extends { readonly id: string } = Instance> extends Registration<T> {
  private readonly supervisor: ZooKeeperSessionSupervisor;
  private readonly sessions: Subscription;
  private readonly expiries: Subscription;
  /**
   * Session whose pass last finished writing the entry (or leaving another owner's node), until a
   * removal: the watch and the choice to take or leave a node found in place go by it. Not derivable
   * from `sentOn`, which takes a session before its write is sent and drops one the server expired.
   */
  private writtenBy: string | undefined;
  /** Sessions that sent a write of the entry since its last removal (answered or not): each may hold the node until it ends. */
  private readonly sentOn = new Set<string>();
  /** Path of the instance last asked for, so that deregistration knows what to delete. */
  private lastPath: string | undefined;
  /** True while a pass writes the entry again after another client deleted it: a node another session wrote since is left alone. */
  private rewritingDeleted = false;
  /** True while a pass waits in `liveSession()`: that pass takes the next session itself. */
  private awaitingSession = false;
  /** The path of a persistent node the last pass found at the entry's (`RegistryEntryHeldError`), until a pass starts: its deletion asks for one. */
  private heldAt: string | undefined;

  private readonly entry: RegisteredEntry<T>;

  constructor(private readonly options: ZooKeeperRegistrationOptions<T>) {
    super(componentLogger(options.component ?? 'agent-registration', { registry: 'zookeeper', connectString: options.connectString }), options.sessionTimeoutMs);
    this.entry = options.entry ?? (instanceEntry(options.root) as unknown as RegisteredEntry<T>);
    this.supervisor = new ZooKeeperSessionSupervisor({
      connectString: options.connectString,
      sessionTimeoutMs: options.sessionTimeoutMs,
      backoff: AGENT_RECONNECT_BACKOFF,
      spinDelayMs: AGENT_SPIN_DELAY_MS,
      name: `agent:${options.connectString}`,
      ...(options.createClient ? { createClient: options.createClient } : {}),
      ...(options.digest === undefined ? {} : { digest: options.digest }),
    });
    // Every new session starts without our ephemeral node: converge again, unless the pass that
    // waits for a session takes this one (a second pass at once would only repeat its writes).
    this.sessions = this.supervisor.session$.subscribe(() => {
      if (!this.desired) return;
      if (this.awaitingSession) this.noteEntryLost();
      else this.reconcile();
    });
    // The server deleted the nodes of a session it expired: a removal has no node of that session to
    // delete. The entry still counts as possibly held (`mayHoldEntry`): gateways sent it requests
    // before the deletion, which a shutdown drains, and those cut off from ZooKeeper still send.
    this.expiries = this.supervisor.serverExpiries$.subscribe((id) => this.sentOn.delete(id));
    this.supervisor.start();
  }

  /**
   * The session timeout the server granted while a session lives (it clamps the one asked for to
   * its minSessionTimeout/maxSessionTimeout, and the node outlives a silent agent by that), else
   * the one asked for.
   */
  override get entryTtlMs(): number {
    return this.supervisor.currentSession()?.timeoutMs ?? super.entryTtlMs;
  }

  /** The znode path this registration writes for `entry`. */
  pathOf(entry: T): string {
    return this.entry.keyOf(entry);
  }

  /** The current session, for tests that expire it. */
  currentSession(): ZooKeeperSession | undefined {
    return this.supervisor.currentSession();
  }

  protected async ensure(instance: T): Promise<void> {
    // A pass after another client's deletion takes that news when it starts: a deletion reported
    // while it runs (the notification comes before the answer of a setData that lands on a node
    // another session wrote at the same version) asks for the next pass, which must leave that node.
    const rewriting = this.rewritingDeleted;
    this.rewritingDeleted = false;
    try {
      await this.write(instance, rewriting);
    } catch (error) {
      this.rewritingDeleted ||= rewriting;
      throw describeZooKeeperRefusal(error, { connectString: this.options.connectString, username: digestUser(this.options.digest) });
    }
  }

  /** Writes the entry's ephemeral node (and its missing parents) on a connected session. */
  private async write(instance: T, rewriting: boolean): Promise<void> {
    const { client, id } = await this.liveSession();
    // Deregistered (or asked for another entry) while this pass waited for a session: writing now
    // would only flap the node. The pass for that entry, if any, still writes after a deletion.
    if (this.desired !== instance) {
      this.rewritingDeleted ||= rewriting;
      return;
    }
    const path = this.pathOf(instance);
    this.heldAt = undefined;
    const data = Buffer.from(this.entry.encode(instance));
    const acls = writeAcls(this.options.digest !== undefined, this.options.readAccess);
    await mkdirp(client, path.slice(0, path.lastIndexOf('/')), acls);
    try {
      this.sendingOn(id);
      await create(client, path, data, zookeeper.CreateMode.EPHEMERAL, acls);
    } catch (error) {
      if (!isZooKeeperError(error, 'NODE_EXISTS')) throw error;
      // Watched: should it be a persistent node, its deletion asks for a pass (`heldWatcher`).
      const stat = await exists(client, path, this.heldWatcher);
      const owner = stat && ephemeralOwnerOf(stat);
      if (owner === PERSISTENT_OWNER) {
        // No session owns it (written by hand or by another tool), so none ends it; this agent only
        // ever writes ephemeral nodes, so it is another writer's, never ours to delete.
        this.heldAt = path;
        throw new RegistryEntryHeldError(path, `${path} is a persistent node (no session owns it: written by hand or by another tool): it never expires, and is not ours to delete; once it is deleted (zkCli.sh delete ${path}), ours is written at once`);
      }
      if (stat && owner === id) {
        this.sendingOn(id);
        await setData(client, path, data, stat.version);
      } else if (stat && (rewriting || this.writtenBy === id)) {
        // Another session wrote it since this one wrote ours, which it deleted: most likely a second
        // agent registering this id. Taking it back would have the two delete each other's node
        // forever, and a data update of ours (the drain mark at SIGTERM) would take its node and
        // mark it draining; leave it, watched, and write ours again once it goes.
        this.log.warn({ path, owner }, 'registry entry written by another session after its deletion; leaving it (does another agent register the same id?)');
      } else if (owner !== null && this.writtenBy !== undefined && !this.sentOn.has(owner)) {
        // A new session after ours expired finds a node no session of ours sent a write of (one
        // whose answer was lost counts): a second agent registering this id wrote it meanwhile.
        // Leave it too, as the etcd registration leaves a key another lease put while its own was lost.
        this.log.warn({ path, owner }, 'registry entry written by another session after our session expired; leaving it until it goes (does another agent register the same id?)');
      } else {
        // Left by an older session of this agent, or by a previous run (this registration has
        // written nothing yet, or nothing since its deregistration): ours now.
        if (stat && this.writtenBy === undefined) this.log.warn({ path, owner }, 'registry entry written by another session as the registration starts; taking it (left by a previous run of this agent, or does another agent register the same id?)');
        if (stat) await remove(client, path, stat.version);
        this.sendingOn(id);
        await create(client, path, data, zookeeper.CreateMode.EPHEMERAL, acls);
      }
    }
    this.writtenBy = id;
    // The one path holds this session's node (or another agent's): older sessions' nodes are gone.
    this.sentOn.clear();
    this.sentOn.add(id);
    // Watch the node this session now owns: a data watch fires on its deletion, whoever deletes it.
    // Deleted already (between the write and this read): fail the pass, so the loop writes it again.
    if (!(await exists(client, path, this.entryWatcher))) throw new ZooKeeperError('NO_NODE', `${path} was deleted as it was written`, { path });
  }

  /** Notes a write of the entry about to be sent on session `id` (see `beforeEntryWrite`); throws, sending nothing, once the entry is no longer wanted. */
  private sendingOn(id: string): void {
    this.beforeEntryWrite();
    this.sentOn.add(id);
  }

  /**
   * Re-arms the watch on the entry after a change of its data (the drain mark, another client's
   * write) and reads it: data of our node that gateways cannot read (`zkCli.sh set` of bad JSON) is
   * written back (`EntryRepair`). Writes the entry again after another client deleted it. Not after
   * our own deletion (`desired` is unset then) nor once the session that wrote it has ended (a new
   * session writes it anyway).
   */
  private readonly entryWatcher: ZooKeeperWatcher = (event) => {
    const path = event.getPath();
    const session = this.watchedSession(path);
    if (!session) return;
    if (event.getType() === zookeeper.Event.NODE_DELETED) {
      this.rewriteDeleted(path);
      return;
    }
    getData(session.client, path, this.entryWatcher).then(
      ({ data, stat }) => {
        // Another agent's node, left to it: not ours to repair.
        if (!this.desired || this.watchedSession(path)?.id !== session.id || ephemeralOwnerOf(stat) !== session.id) return;
        this.entryFound(path, data?.toString('utf8') ?? '', this.entry);
      },
      (error) => {
        // A late error of a session that ended since (a new one wrote the entry anyway) is not news of the entry.
        if (this.watchedSession(path)?.id !== session.id) return;
        if (isZooKeeperError(error, 'NO_NODE')) this.rewriteDeleted(path);
        // The library arms a watch only with an answer: after a lost connection or a timeout the node
        // is unwatched, and a reconnect re-arms only armed watches. A pass arms it again (it waits for
        // the connection and backs off by itself); a new session writes the entry anyway.
        else this.reconcile();
      },
    );
  };

  /** A persistent node in the entry's place changed or went: a pass writes ours if it went (and, for a change, watches it again). */
  private readonly heldWatcher: ZooKeeperWatcher = (event) => {
    if (event.getPath() === this.heldAt && this.desired && !this.closed) this.reconcile();
  };

  /** The session that wrote the wanted entry at `path` while it is still current, else undefined (the watch is no longer ours to act on). */
  private watchedSession(path: string): ZooKeeperSession | undefined {
    const session = this.supervisor.currentSession();
    if (this.closed || !this.desired || path !== this.pathOf(this.desired) || !session || session.id !== this.writtenBy) return undefined;
    return session;
  }

  private rewriteDeleted(path: string): void {
    this.log.warn({ path }, 'registry entry deleted by another client; writing it again');
    this.rewritingDeleted = true;
    this.reconcile();
  }

  /**
   * Deletes the node this session wrote. While the session is disconnected it waits for the
   * reconnect (at most the session timeout, the deregistration's own bound): skipping the delete
   * would leave the node pointing at a backend that may be gone for a whole session timeout.
   */
  protected async remove(): Promise<void> {
    const instancePath = this.lastPath;
    // A register() from now on starts afresh, as after a confirmed deletion.
    if (!instancePath || this.sentOn.size === 0) return this.forgetWrites();
    const session = await this.liveSession();
    // register() came while this waited: the loop writes the entry next, so deleting it first would only flap it.
    if (this.desired !== undefined) return;
    // A node of any session that sent a write of it is ours: this one's, also unanswered (the answer
    // was lost, the create landed), or an older one's its client gave up after a disconnection longer
    // than the timeout, which a server restarted from its snapshot still holds. Another owner's stays.
    const stat = await exists(session.client, instancePath);
    if (stat && this.sentOn.has(ephemeralOwnerOf(stat))) await remove(session.client, instancePath, stat.version);
    this.forgetWrites();
  }

  private forgetWrites(): void {
    this.writtenBy = undefined;
    this.sentOn.clear();
  }

  protected async release(): Promise<void> {
    this.sessions.unsubscribe();
    this.expiries.unsubscribe();
    await this.supervisor.close();
  }

  override register(instance: T): void {
    this.lastPath = this.pathOf(instance);
    super.register(instance);
  }

  /**
   * The current session once its client is connected. Not `session$`: it replays the current
   * session also while it is disconnected, and requests queued on that client wait for a
   * reconnect that never comes once the session expires and the client is retired.
   */
  private async liveSession(): Promise<ZooKeeperSession> {
    const connected = (): ZooKeeperSession | undefined => (this.supervisor.currentState() === 'connected' ? this.supervisor.currentSession() : undefined);
    if (connected()) return connected()!;
    this.awaitingSession = true;
    try {
      await firstValueFrom(
        this.supervisor.state$.pipe(
          filter((state) => state === 'connected'),
          timeout({ first: this.options.sessionTimeoutMs, with: () => Promise.reject(new ZooKeeperError('CONNECTION_LOSS', `no connected ZooKeeper session within ${this.options.sessionTimeoutMs} ms`)) }),
        ),
      );
    } finally {
      this.awaitingSession = false;
    }
    const session = connected();
    if (!session) throw new ZooKeeperError('CONNECTION_LOSS', 'the ZooKeeper session was lost again at once');
    return session;
  }
}
