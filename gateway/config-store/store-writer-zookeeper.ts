import zookeeper, { type Client, type Stat } from 'node-zookeeper-client';
import { filter, firstValueFrom } from 'rxjs';
import { errorMessage } from '../../src/errors.ts';
import { exists, getChildren, getData, isZooKeeperError, maxZxid, ZooKeeperSessionSupervisor, zxidToString, type ZooKeeperError } from '../../src/zookeeper/index.ts';
import { grantHint, missingPermission } from '../../src/zookeeper/zookeeper-refusal.ts';
import { mkdirp, multi, setData, writeAcls, type ZooKeeperOp } from '../../src/zookeeper/zookeeper-writes.ts';
import { decodeObject, encodeObject, kindDir, objectKey, STORE_KINDS, STORE_READ_ACCESS, zooKeeperStoreAuth, type StoreKind, type StoreLocation } from './store-layout.ts';
import {
  STORE_CALL_TIMEOUT_MS,
  STORE_CLOSE_TIMEOUT_MS,
  StoreConflictError,
  StoreForbiddenError,
  StoreNotFoundError,
  StoreUnavailableError,
  withDeadline,
  type StoreListing,
  type StoredObject,
  type StoreWriter,
  type WriteConditions,
} from './store-writer.ts';

type ZooKeeperLocation = Extract<StoreLocation, { kind: 'zookeeper' }>;

/**
 * The revision of a znode: `<czxid>.<version>`. The version alone repeats when an object is deleted
 * and created again (both start at 0), so an old ETag would match a new object; the czxid (the
 * transaction that created the node) tells the two apart, and the version is exactly what
 * `setData`/`remove` compare. Each write thus gets a revision the object never had before.
 */
export function znodeRevision(stat: Stat): string {
  return `${zxidToString(stat.czxid)}.${stat.version}`;
}

/** The czxid and version an ETag names; undefined when it is not `<czxid>.<version>`. */
function parseRevision(revision: string): { czxid: string; version: number } | undefined {
  const match = /^([0-9]+)\.([0-9]+)$/.exec(revision);
  return match ? { czxid: match[1]!, version: Number(match[2]) } : undefined;
}

/** How many times an `If-Match` write reads again when only another object of its kind was created or deleted meanwhile. */
const GENERATION_RETRIES = 5;

const NO_DATA = Buffer.alloc(0);

/** Seams for tests. */
export interface ZooKeeperStoreWriterHooks {
  /** Called after an `If-Match` write has read what it compares and before it commits (a test makes a race happen there). */
  readonly beforeCompare?: () => Promise<void>;
}

/**
 * The ZooKeeper store writer: one znode per object (persistent, parents created as needed), its
 * data the JSON value. ZooKeeper compares versions only, and an object deleted and created again
 * starts at version 0 again, so `If-Match` (`<czxid>.<version>`) cannot be one compare of the
 * object: every create and delete of this writer also sets the kind node's data (its version is
 * the kind's generation) in the same transaction, and an `If-Match` write reads the generation,
 * then checks the czxid, then commits the write with a check of the generation and of the version,
 * all or nothing. An object deleted and created again in between moves the generation, so the
 * write is a conflict rather than landing on an object it never saw (etcd's compare is one
 * transaction too). Objects created or deleted around this writer (zkCli) do not move it.
 * Create-only is `create`, which fails with NODE_EXISTS. The session is supervised (expiry,
 * silent servers) and opened on the first call.
 */
export class ZooKeeperStoreWriter implements StoreWriter {
  private supervisor: ZooKeeperSessionSupervisor | undefined;
  private closed = false;

  constructor(
    private readonly location: ZooKeeperLocation,
    private readonly timeoutMs = STORE_CALL_TIMEOUT_MS,
    private readonly hooks: ZooKeeperStoreWriterHooks = {},
  ) {}

  async get(kind: StoreKind, name: string): Promise<StoredObject | undefined> {
    const path = objectKey(this.location.root, kind, name);
    const read = await this.call(`get ${path}`, (client) => orAbsent(getData(client, path)));
    return read && { value: decodeObject(path, read.data?.toString('utf8') ?? ''), revision: znodeRevision(read.stat) };
  }

  async list(): Promise<StoreListing> {
    const { root } = this.location;
    return this.call(`list ${root}`, async (client) => {
      let revision = '0';
      const objects: StoreListing['objects'][number][] = [];
      const unreadable: StoreListing['unreadable'][number][] = [];
      for (const kind of STORE_KINDS) {
        const dir = await orAbsent(getChildren(client, kindDir(root, kind)));
        if (!dir) continue;
        // pzxid moves when a child is deleted, which no remaining child's mzxid would show.
        revision = maxZxid(revision, zxidToString(dir.stat.pzxid));
        const reads = await Promise.all(dir.children.map(async (name) => ({ name, read: await orAbsent(getData(client, objectKey(root, kind, name))) })));
        for (const { name, read } of reads.sort((a, b) => a.name.localeCompare(b.name))) {
          if (!read) continue;
          revision = maxZxid(revision, zxidToString(read.stat.mzxid));
          try {
            objects.push({ kind, name, value: decodeObject(objectKey(root, kind, name), read.data?.toString('utf8') ?? ''), revision: znodeRevision(read.stat) });
          } catch (error) {
            unreadable.push({ kind, name, reason: errorMessage(error) });
          }
        }
      }
      return { revision, objects, unreadable };
    });
  }

  async put(kind: StoreKind, name: string, value: unknown, conditions: WriteConditions = {}): Promise<{ revision: string; created: boolean }> {
    const path = objectKey(this.location.root, kind, name);
    const data = Buffer.from(encodeObject(value));
    const { ifMatch, ifNoneMatch } = conditions;
    return this.call(`put ${path}`, async (client) => {
      if (ifMatch !== undefined) {
        const stat = await this.compareAndWrite(client, kind, path, ifMatch, false, (version) => [{ op: 'setData', path, data, version }]);
        // The compare held: the same node, one version on.
        return { revision: znodeRevision({ ...stat, version: stat.version + 1 }), created: false };
      }
      if (!ifNoneMatch) {
        const stat = await orAbsent(setData(client, path, data, -1));
        if (stat) return { revision: znodeRevision(stat), created: false };
      }
      const acls = writeAcls(this.location.credentials?.zooKeeperDigest() !== undefined, STORE_READ_ACCESS);
      const dir = kindDir(this.location.root, kind);
      await mkdirp(client, dir, acls);
      try {
        await multi(client, [{ op: 'create', path, data, acls, mode: zookeeper.CreateMode.PERSISTENT }, nextGeneration(dir)]);
      } catch (error) {
        if (!isZooKeeperError(error, 'NODE_EXISTS')) throw error;
        const current = await exists(client, path);
        if (ifNoneMatch) throw new StoreConflictError(path, current ? znodeRevision(current) : undefined, 'already exists (If-None-Match: *)');
        // Created by another writer between our setData and create: last writer wins, as without conditions.
        return { revision: znodeRevision(await setData(client, path, data, -1)), created: false };
      }
      // create() returns no stat: the czxid is read back, with the version this write made (0). Another
      // writer's update in between shows a later version, which must not become this client's ETag
      // (its next If-Match would overwrite a value it never saw).
      const stat = await exists(client, path);
      return { revision: stat ? znodeRevision({ ...stat, version: 0 }) : `${0}.0`, created: true };
    });
  }

  async delete(kind: StoreKind, name: string, conditions: Pick<WriteConditions, 'ifMatch'> = {}): Promise<void> {
    const path = objectKey(this.location.root, kind, name);
    const { ifMatch } = conditions;
    await this.call(`delete ${path}`, async (client) => {
      const dir = kindDir(this.location.root, kind);
      if (ifMatch !== undefined) {
        await this.compareAndWrite(client, kind, path, ifMatch, true, (version) => [{ op: 'remove', path, version }, nextGeneration(dir)]);
        return;
      }
      await multi(client, [{ op: 'remove', path, version: -1 }, nextGeneration(dir)]).catch((error: unknown) => {
        if (isZooKeeperError(error, 'NO_NODE')) throw new StoreNotFoundError(path);
        throw error;
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const supervisor = this.supervisor;
    this.supervisor = undefined;
    await withDeadline(this.location.url, 'close', STORE_CLOSE_TIMEOUT_MS, supervisor?.close() ?? Promise.resolve()).catch(() => undefined);
  }

  /**
   * Commits `write(version)` (operations on the object at `path`, at the version `ifMatch` names)
   * with a check of the kind's generation read before the object, in one transaction; resolves
   * with the object's stat as compared. A generation moved meanwhile by another object is read
   * again, up to `GENERATION_RETRIES` times; the object changed, deleted or created again is a conflict.
   */
  private async compareAndWrite(client: Client, kind: StoreKind, path: string, ifMatch: string, missingIsNotFound: boolean, write: (version: number) => ZooKeeperOp[]): Promise<Stat> {
    const dir = kindDir(this.location.root, kind);
    for (let attempt = 0; ; attempt += 1) {
      const generation = await exists(client, dir);
      const stat = await this.expectRevision(client, path, ifMatch, missingIsNotFound);
      await this.hooks.beforeCompare?.();
      try {
        // No kind node (gone between the two reads) fails the check with NO_NODE: read again.
        await multi(client, [{ op: 'check', path: dir, version: generation?.version ?? 0 }, ...write(stat.version)]);
        return stat;
      } catch (error) {
        const moved = isZooKeeperError(error, 'BAD_VERSION') || isZooKeeperError(error, 'NO_NODE');
        if (!moved || attempt >= GENERATION_RETRIES) return this.conflictOr(client, path, ifMatch, error);
      }
    }
  }

  /** The stat to compare when `ifMatch` still names the znode there; otherwise a conflict (or not found, for a delete). */
  private async expectRevision(client: Client, path: string, ifMatch: string, missingIsNotFound = false): Promise<Stat> {
    const stat = await exists(client, path);
    if (!stat) {
      if (missingIsNotFound) throw new StoreNotFoundError(path);
      throw new StoreConflictError(path, undefined, 'does not exist');
    }
    const wanted = parseRevision(ifMatch);
    if (!wanted || wanted.czxid !== zxidToString(stat.czxid) || wanted.version !== stat.version) {
      throw new StoreConflictError(path, znodeRevision(stat), `revision is ${znodeRevision(stat)}, not ${ifMatch}`);
    }
    return stat;
  }

  /** A BAD_VERSION (or NO_NODE) from a compare becomes a conflict naming what is there now; other errors pass. */
  private async conflictOr(client: Client, path: string, ifMatch: string, error: unknown): Promise<never> {
    if (!isZooKeeperError(error, 'BAD_VERSION') && !isZooKeeperError(error, 'NO_NODE')) throw error;
    const current = await exists(client, path);
    throw new StoreConflictError(path, current ? znodeRevision(current) : undefined, current ? `revision is ${znodeRevision(current)}, not ${ifMatch}` : 'does not exist');
  }

  /** Runs `work` on a connected session within the deadline (connecting included); library failures become `StoreUnavailableError`. */
  private async call<T>(what: string, work: (client: Client) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError(this.location.url, 'the gateway is shutting down');
    const supervisor = (this.supervisor ??= this.startSupervisor());
    try {
      return await withDeadline(
        this.location.url,
        what,
        this.timeoutMs,
        firstValueFrom(supervisor.state$.pipe(filter((state) => state === 'connected' || state === 'closed'))).then((state) => {
          const session = supervisor.currentSession();
          if (state === 'closed' || !session) throw new StoreUnavailableError(this.location.url, 'the gateway is shutting down');
          return work(session.client);
        }),
      );
    } catch (error) {
      if (error instanceof StoreConflictError || error instanceof StoreNotFoundError || error instanceof StoreUnavailableError) throw error;
      if (isZooKeeperError(error, 'NO_AUTH')) throw this.forbidden(what, error);
      throw new StoreUnavailableError(this.location.url, `${what}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** A NO_AUTH as the node and the permission the gateway's user lacks there, for an operator to grant. */
  private forbidden(what: string, error: ZooKeeperError): StoreForbiddenError {
    const path = error.path ?? this.location.root;
    const missing = missingPermission(error.operation, path);
    const username = this.location.credentials?.username;
    const user = username === undefined ? 'the gateway, connected without configStore.auth (world:anyone),' : `the gateway's ZooKeeper user "${username}"`;
    // mkdirp's node is a placeholder (the error does not tell which level it could not create).
    const node = missing.node.startsWith('/') ? missing.node : path;
    // ZooKeeper takes any digest password and refuses the identity it makes later, with the NO_AUTH of a missing right.
    const password = username === undefined ? '' : `; or, if configStore.auth.passwordFile holds another password than the one the node's ACL was made with, correct the file: ZooKeeper accepts any password and tells a wrong one from a missing right by nothing but NO_AUTH (a digest identity is user and password together)`;
    return new StoreForbiddenError(this.location.url, node, `${what}: ${user} lacks the ${missing.permission} permission on ${missing.on} (NO_AUTH): grant it there, ${grantHint(missing, username)}; or remove the node and let the gateway create it${password}`, { cause: error });
  }

  private startSupervisor(): ZooKeeperSessionSupervisor {
    const supervisor = new ZooKeeperSessionSupervisor({ connectString: this.location.connectString, connectTimeoutMs: this.timeoutMs, name: `config-store-writer ${this.location.url}`, ...zooKeeperStoreAuth(this.location) });
    supervisor.start();
    return supervisor;
  }
}

/** Moves the kind's generation (the version of its node, whose data stays empty): with every create and delete of an object. */
function nextGeneration(dir: string): ZooKeeperOp {
  return { op: 'setData', path: dir, data: NO_DATA, version: -1 };
}

/** The result, or undefined when the node does not exist. */
async function orAbsent<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isZooKeeperError(error, 'NO_NODE')) return undefined;
    throw error;
  }
}
