import type { Etcd3, IKeyValue, ITxnResponse } from 'etcd3';
import { createEtcdClient } from '../../src/discovery/etcd/etcd-client.ts';
import { listPrefix } from '../../src/discovery/etcd/etcd-list.ts';
import { isEtcdNoPasswordUser, isEtcdPasswordRefused, isEtcdRefusal, isEtcdUserMissing } from '../../src/discovery/etcd/etcd-refusal.ts';
import { errorMessage } from '../../src/errors.ts';
import { decodeObject, encodeObject, objectKey, parseObjectKey, type StoreKind, type StoreLocation } from './store-layout.ts';
import {
  STORE_CALL_TIMEOUT_MS,
  StoreAuthenticationError,
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

type EtcdLocation = Extract<StoreLocation, { kind: 'etcd' }>;

/**
 * The etcd store writer. The revision is the key's mod_revision: etcd's revision counter grows with
 * every write to the whole store, so a value replaced, or deleted and created again, never gets a
 * revision it had before. Compare-and-swap is one transaction: `If-Match` compares mod_revision,
 * create-only compares create_revision with 0 (a key that does not exist has 0), and the failure
 * branch reads the key, so a 412 names the revision that is there now.
 *
 * It talks to one member at a time; a call that fails to reach it moves the next call to the next
 * member. A failed write is not retried: its outcome is unknown, and the caller decides (with
 * `If-Match` a retry is safe).
 */
export class EtcdStoreWriter implements StoreWriter {
  private client: Etcd3 | undefined;
  private member = 0;
  private closed = false;

  constructor(
    private readonly location: EtcdLocation,
    private readonly timeoutMs = STORE_CALL_TIMEOUT_MS,
  ) {}

  async get(kind: StoreKind, name: string): Promise<StoredObject | undefined> {
    const key = objectKey(this.location.root, kind, name);
    const response = await this.call(`get ${key}`, key, 'read', (client) => client.get(key).exec());
    const kv = response.kvs[0];
    return kv ? { value: decodeObject(key, kv.value.toString('utf8')), revision: kv.mod_revision } : undefined;
  }

  async list(): Promise<StoreListing> {
    const { root } = this.location;
    const listing = await this.call(`list ${root}/`, `${root}/`, 'read', (client) => listPrefix(client, `${root}/`));
    const objects: StoreListing['objects'][number][] = [];
    const unreadable: StoreListing['unreadable'][number][] = [];
    for (const kv of listing.kvs) {
      const key = kv.key.toString('utf8');
      const place = parseObjectKey(root, key);
      if (!place) continue;
      try {
        objects.push({ ...place, value: decodeObject(key, kv.value.toString('utf8')), revision: kv.mod_revision });
      } catch (error) {
        unreadable.push({ ...place, reason: errorMessage(error) });
      }
    }
    return { revision: listing.revision, objects, unreadable };
  }

  async put(kind: StoreKind, name: string, value: unknown, conditions: WriteConditions = {}): Promise<{ revision: string; created: boolean }> {
    const key = objectKey(this.location.root, kind, name);
    const body = encodeObject(value);
    const { ifMatch, ifNoneMatch } = conditions;
    if (ifMatch !== undefined && !/^[1-9][0-9]*$/.test(ifMatch)) throw new StoreConflictError(key, (await this.get(kind, name))?.revision, `revision "${ifMatch}" is not an etcd revision`);
    const result = await this.call(`put ${key}`, key, 'write', (client) => {
      const put = client.put(key).value(body);
      if (ifMatch !== undefined) return client.if(key, 'Mod', '==', ifMatch).then(put).else(client.get(key)).commit();
      if (ifNoneMatch) return client.if(key, 'Create', '==', 0).then(put).else(client.get(key)).commit();
      // Unconditional: both branches write; the comparison only tells a creation from an update.
      return client.if(key, 'Create', '==', 0).then(put).else(client.put(key).value(body)).commit();
    });
    if (ifMatch === undefined && !ifNoneMatch) return { revision: result.header.revision, created: result.succeeded };
    if (!result.succeeded) {
      const current = currentOf(result);
      throw new StoreConflictError(key, current?.mod_revision, ifNoneMatch ? 'already exists (If-None-Match: *)' : current ? `revision is ${current.mod_revision}, not ${ifMatch}` : 'does not exist');
    }
    return { revision: result.header.revision, created: ifNoneMatch === true };
  }

  async delete(kind: StoreKind, name: string, conditions: Pick<WriteConditions, 'ifMatch'> = {}): Promise<void> {
    const key = objectKey(this.location.root, kind, name);
    const { ifMatch } = conditions;
    if (ifMatch === undefined) {
      const response = await this.call(`delete ${key}`, key, 'write', (client) => client.delete().key(key).exec());
      if (Number(response.deleted) === 0) throw new StoreNotFoundError(key);
      return;
    }
    const result = await this.call(`delete ${key}`, key, 'write', (client) =>
      client
        .if(key, 'Mod', '==', /^[0-9]+$/.test(ifMatch) ? ifMatch : -1)
        .then(client.delete().key(key))
        .else(client.get(key))
        .commit(),
    );
    if (result.succeeded) return;
    const current = currentOf(result);
    if (!current) throw new StoreNotFoundError(key);
    throw new StoreConflictError(key, current.mod_revision, `revision is ${current.mod_revision}, not ${ifMatch}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client?.close();
    this.client = undefined;
  }

  /**
   * Runs one call on the current member's client, within the deadline; a failure moves the next
   * call to the next member, except etcd's refusal of the user on `key` ("permission denied", or
   * "user name is empty" with no `configStore.auth`): the member answered, and no member will
   * answer otherwise until the user's roles or the gateway's auth change; likewise etcd's refusal
   * of the user's password.
   */
  private async call<T>(what: string, key: string, right: 'read' | 'write', work: (client: Etcd3) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError(this.location.url, 'the gateway is shutting down');
    const endpoints = this.location.endpoints;
    const client = (this.client ??= createEtcdClient({ endpoint: endpoints[this.member % endpoints.length]!, requestTimeoutMs: this.timeoutMs, credentials: this.location.credentials }));
    try {
      return await withDeadline(this.location.url, what, this.timeoutMs, work(client));
    } catch (error) {
      if (isEtcdRefusal(error)) throw this.forbidden(what, key, right, error);
      if (isEtcdPasswordRefused(error)) throw this.passwordRefused(what, error);
      if (this.client === client) {
        this.client = undefined;
        this.member += 1;
        client.close();
      }
      if (error instanceof StoreUnavailableError) throw error;
      throw new StoreUnavailableError(this.location.url, `${what}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** etcd's refusal of the password as the store and the user whose password file to correct; never the password. */
  private passwordRefused(what: string, error: unknown): StoreAuthenticationError {
    const username = this.location.credentials?.username ?? '';
    const reason = isEtcdNoPasswordUser(error)
      ? `, a user without password (password was given for no password user): authenticate it by its client certificate (configStore.tls), without configStore.auth.passwordFile, or give it a password in etcd (etcdctl user passwd ${username})`
      : ` (authentication failed, invalid user ID or password): put that user's password in configStore.auth.passwordFile and restart the gateway, or set it in etcd (etcdctl user passwd ${username})`;
    return new StoreAuthenticationError(this.location.url, username, `${what}: etcd refused the password of the gateway's etcd user "${username}"${reason}`, { cause: error });
  }

  /** etcd's refusal as the key and the right the gateway's etcd user lacks there, or the auth it lacks, for an operator to grant or set. */
  private forbidden(what: string, key: string, right: 'read' | 'write', error: unknown): StoreForbiddenError {
    const username = this.location.credentials?.username;
    const user = username === undefined ? 'the gateway, connected without configStore.auth,' : `the gateway's etcd user "${username}"`;
    if (isEtcdUserMissing(error)) {
      return new StoreForbiddenError(this.location.url, key, `${what}: ${user} lacks the right to ${right} ${key} (etcd has authentication on: user name is empty): set configStore.auth { username, passwordFile }`, { cause: error });
    }
    const prefix = `${this.location.root}/`;
    const grant = right === 'write' ? 'readwrite' : 'read';
    return new StoreForbiddenError(this.location.url, key, `${what}: ${user} lacks the right to ${right} ${key} (etcd: permission denied): grant one of its roles ${grant} on the prefix ${prefix} (etcdctl role grant-permission --prefix=true <role> ${grant} ${prefix})`, { cause: error });
  }
}

/** The key as the failure branch of a transaction read it; undefined when it does not exist. */
function currentOf(result: ITxnResponse): IKeyValue | undefined {
  return result.responses[0]?.response_range?.kvs[0];
}
