import { SwitchboardError } from '../../src/errors.ts';
import type { StoreKind } from './store-layout.ts';

/** Deadline of one store call (connect included): an admin write answers within it or fails with 503. */
export const STORE_CALL_TIMEOUT_MS = 5_000;

/** How long closing a writer may take on gateway shutdown, even with the store down. */
export const STORE_CLOSE_TIMEOUT_MS = 2_000;

/** One stored object: its JSON value and the revision an `If-Match` must name to replace it. */
export interface StoredObject {
  readonly value: unknown;
  /** etcd: the key's mod_revision; ZooKeeper: `<czxid>.<version>` of the znode. */
  readonly revision: string;
}

/** Every object of a store, with the store's revision at the time of the listing. */
export interface StoreListing {
  /** etcd: the header revision; ZooKeeper: the largest mzxid/pzxid seen (a zxid grows with every write). */
  readonly revision: string;
  readonly objects: readonly (StoredObject & { kind: StoreKind; name: string })[];
  /** Keys under the root that hold no JSON; listed so a bad write is visible, never dropped silently. */
  readonly unreadable: readonly { kind: StoreKind; name: string; reason: string }[];
}

/** Preconditions of a write: `ifMatch` replaces only that revision, `ifNoneMatch` creates only. */
export interface WriteConditions {
  readonly ifMatch?: string | undefined;
  readonly ifNoneMatch?: boolean | undefined;
}

/**
 * Writes and reads the objects of a shared configuration store with compare-and-swap. Every call
 * settles within `STORE_CALL_TIMEOUT_MS`; the client is opened on the first call, not before.
 */
export interface StoreWriter {
  /** The object and its revision; undefined when absent. */
  get(kind: StoreKind, name: string): Promise<StoredObject | undefined>;
  /** Every object under the root, with the store revision. */
  list(): Promise<StoreListing>;
  /** Writes `value` (JSON) and resolves with its new revision; rejects `StoreConflictError` when a condition fails. */
  put(kind: StoreKind, name: string, value: unknown, conditions?: WriteConditions): Promise<{ revision: string; created: boolean }>;
  /** Deletes the object; rejects `StoreNotFoundError` when absent, `StoreConflictError` when `ifMatch` fails. */
  delete(kind: StoreKind, name: string, conditions?: Pick<WriteConditions, 'ifMatch'>): Promise<void>;
  /** Closes the client (bounded by `STORE_CLOSE_TIMEOUT_MS`); later calls reopen nothing and reject. */
  close(): Promise<void>;
}

/** A write's precondition failed: `current` is the revision that is there now (undefined: absent). */
export class StoreConflictError extends SwitchboardError {
  constructor(
    readonly key: string,
    readonly current: string | undefined,
    reason: string,
  ) {
    super('SB_CONFIG_STORE_CONFLICT', `${key}: ${reason}`);
  }
}

/** The object to delete (or replace with `If-Match`) does not exist. */
export class StoreNotFoundError extends SwitchboardError {
  constructor(readonly key: string) {
    super('SB_CONFIG_STORE_NOT_FOUND', `${key} does not exist`);
  }
}

/** The store could not be reached or did not answer in time; nothing is known to be written. */
export class StoreUnavailableError extends SwitchboardError {
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super('SB_CONFIG_STORE_UNAVAILABLE', `config store ${url}: ${reason}`, options);
  }
}

/**
 * The store refused the gateway's user (ZooKeeper NO_AUTH on a node an operator created with an
 * ACL that leaves it out, etcd "permission denied" on a key no role of the user covers): retrying
 * cannot help, so it is no outage. `node` is the node or key where the right is missing.
 */
export class StoreForbiddenError extends SwitchboardError {
  constructor(
    url: string,
    readonly node: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('SB_CONFIG_STORE_FORBIDDEN', `config store ${url}: ${reason}`, options);
  }
}

/**
 * The store refused the gateway's credentials themselves (etcd "authentication failed, invalid
 * user ID or password"): no call of that user gets through until its password file (or the user's
 * password in the store) changes, so it is neither an outage nor a missing right. The message names
 * the store and the user, never the password.
 */
export class StoreAuthenticationError extends SwitchboardError {
  constructor(
    url: string,
    readonly user: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('SB_CONFIG_STORE_AUTH_FAILED', `config store ${url}: ${reason}`, options);
  }
}

/** Rejects with `StoreUnavailableError` when `work` has not settled within `timeoutMs`. */
export function withDeadline<T>(url: string, what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(url, `${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
