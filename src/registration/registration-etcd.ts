import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import type { ConnectionCredentials } from '../connection-credentials.ts';
import { tolerateEtcdAuthDisabled } from '../discovery/etcd/etcd-auth-disabled.ts';
import { NO_HIDDEN_RETRIES } from '../discovery/etcd/etcd-fault-handling.ts';
import { describeEtcdRefusal } from '../discovery/etcd/etcd-refusal.ts';
import type { Instance } from '../discovery/instance.ts';
import { backoffDelay } from '../backoff.ts';
import type { WatchEndReason } from '../discovery/etcd/etcd-watch.ts';
import { errorMessage, RegistryEntryHeldError } from '../errors.ts';
import { componentLogger } from '../logger.ts';
import { EtcdEntryWatch } from './registration-etcd-entry-watch.ts';
import { instanceEntry, Registration, REGISTRATION_BACKOFF, type RegisteredEntry } from './registration.ts';

/** Options of an etcd registration. */
export interface EtcdRegistrationOptions<T = Instance> {
  endpoints: string[];
  prefix: string;
  /** Lease TTL, at least 1 s; etcd grants whole seconds, so one that is not is rounded up (warned). The key goes at most that long after the agent dies. */
  ttlMs: number;
  /** Deadline of one grant-and-put attempt. */
  attemptTimeoutMs?: number;
  /** The key and value of an entry that is not an instance (a gateway peer); an instance under `prefix` by default. */
  entry?: RegisteredEntry<T>;
  /** The component name in logs. */
  component?: string;
  /** TLS files and user/password of the client. */
  credentials?: ConnectionCredentials | undefined;
}


/** Waits before watching its key again after the watch ended: from the registration's backoff up to this (a member that refuses the watch is asked twice a minute). */
export const ENTRY_WATCH_RETRY_MAX_MS = 30_000;
/** How long stopping the watch on the key waits for etcd to confirm: a bound of its own, so a silent member never holds up a shutdown. */
const ENTRY_WATCH_CANCEL_GRACE_MS = 1_000;
/** The lease of a key put on none (`etcdctl put` without `--lease`): no lease ends it. */
const NO_LEASE = '0';
/** Conditional puts one pass tries on a new lease while the key keeps changing under them, before it fails and backs off. */
const NEW_LEASE_PUT_TRIES = 3;

/**
 * Registers an instance as `<prefix>/<service>/<id>` attached to a lease kept alive by etcd3.
 * A lost lease (expired during a partition, or revoked by someone else) is replaced by a new lease
 * and the key is put again, unless another lease holds it by then (a second agent registering the
 * same id): that key is left alone with a warning, watched, and ours put once it goes. A key held
 * by another lease when the registration starts (or starts again after a deregistration) is taken
 * over, as the ZooKeeper registration does with a node of an older session: most likely it was
 * left by this agent's previous run, whose lease outlives a crash by up to the TTL. A key on no lease
 * (put by hand or by another tool) is never overwritten: the registration is `blocked`, watches it,
 * and puts its own once it is deleted. It watches the key it put: one deleted by another client while the
 * lease lives (`etcdctl del`, a clean-up script) is put again on the same lease, since the lease
 * alone would never bring it back; one put on another lease in its place (a second agent
 * registering the same id) is left alone with a warning, and its key is put again once that goes.
 * A value put on its lease by another client that gateways cannot read is put back (`EntryRepair`).
 */
export class EtcdRegistration<T extends { readonly id: string } = Instance> extends Registration<T> {
  /** The client, built on first use: etcd3 (and gRPC under it) loads only when an agent registers in etcd. */
  private client: Promise<Etcd3> | undefined;
  private lease: Lease | undefined;
  private readonly ttlSeconds: number;
  private readonly attemptTimeoutMs: number;
  /** The watch on the key the live lease holds; replaced when the lease or key changes, stopped with the lease. */
  private entryWatch: EtcdEntryWatch | undefined;
  /** Opens the watch again after it ended; cleared with the watch. */
  private entryWatchRetry: NodeJS.Timeout | undefined;
  /** How many watches in a row ended soon after they were opened: the next one waits longer. */
  private entryWatchFailures = 0;
  /** True while a pass puts the key again after another client deleted it: a key put on another lease since is left alone. */
  private rewritingDeleted = false;
  /**
   * The lease that last held our key since `register()` (unset before the first put and by a
   * deregistration): a new lease takes the key only from it, and leaves one any other lease holds.
   */
  private heldBy: string | undefined;
  /** The other lease a new lease last found holding the key, so that waiting for it warns once. */
  private leftTo: string | undefined;
  /** When etcd last confirmed the live lease (its put, a keepalive): a key deleted long after went with the lease. */
  private keptAliveAt = 0;
  /** The revoke of the lease `dropLease()` last dropped, which a removal waits for (never rejects). */
  private dropping: Promise<void> = Promise.resolve();

  private readonly entry: RegisteredEntry<T>;

  constructor(private readonly options: EtcdRegistrationOptions<T>) {
    // The lease's TTL bounds deregistration: the key is gone after it anyway (1.4 s asked is a 2 s lease).
    super(componentLogger(options.component ?? 'agent-registration', { registry: 'etcd', endpoints: options.endpoints }), leaseTtlSeconds(options.ttlMs) * 1_000);
    this.entry = options.entry ?? (instanceEntry(options.prefix) as unknown as RegisteredEntry<T>);
    this.ttlSeconds = leaseTtlSeconds(options.ttlMs);
    if (this.ttlSeconds * 1_000 !== options.ttlMs) this.log.warn({ ttlMs: options.ttlMs, leaseTtlSeconds: this.ttlSeconds }, 'an etcd lease TTL is whole seconds; rounded up');
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? Math.max(1_000, options.ttlMs);
  }

  /** The key this registration writes for `entry`. */
  keyOf(entry: T): string {
    return this.entry.keyOf(entry);
  }

  protected async ensure(instance: T): Promise<void> {
    try {
      await this.put(instance);
    } catch (error) {
      const { endpoints, credentials } = this.options;
      throw describeEtcdRefusal(error, { endpoint: endpoints.join(','), key: this.keyOf(instance), right: 'write', username: credentials?.username });
    }
  }

  /**
   * Puts the entry on the live lease, or on a new one. A pass after another client's deletion
   * takes that news when it starts: a deletion reported while it runs asks for the next pass.
   */
  private async put(instance: T): Promise<void> {
    const rewriting = this.rewritingDeleted;
    this.rewritingDeleted = false;
    try {
      await this.putOnce(instance, rewriting);
    } catch (error) {
      this.rewritingDeleted ||= rewriting;
      throw error;
    }
  }

  private async putOnce(instance: T, rewriting: boolean): Promise<void> {
    // A live lease is kept: rewriting the value on it (the drain mark) is a data update, never a delete and re-create.
    const key = this.keyOf(instance);
    const value = this.entry.encode(instance);
    const live = this.lease;
    if (live && !live.revoked()) {
      try {
        const revision = rewriting ? await this.putIfAbsent(live, key, value) : await this.putIfOurs(live, key, value);
        await this.watchEntry(live, key, BigInt(revision));
        return;
      } catch (error) {
        // Watched on the live lease: its deletion asks for a pass at once.
        if (error instanceof EtcdKeyHeldError) {
          await this.watchEntry(live, key, BigInt(error.revision));
          throw error;
        }
        // A lease etcd no longer knows (revoked or expired, its key deleted with it, before etcd3
        // noticed): a new lease now, as its 'lost' event would ask for a moment later. The event may
        // have come while the put was on its way (an agent stopped past its lease, then resumed): it
        // warned and dropped the lease, and this pass takes the new one all the same, where it failed
        // and warned "registry unreachable" of an etcd that had just answered.
        if (!isLeaseGone(error) || this.closed || (this.lease !== live && this.lease !== undefined)) throw error;
        if (this.lease === live) {
          this.log.warn({ err: leaseLossReason(error) }, 'lease lost; granting a new one');
          this.noteEntryLost();
        }
      }
    }
    this.dropLease();
    const client = await this.connect();
    // A deregistration (the agent's SIGTERM) came while the put on the lost lease ran: a new lease
    // would only be granted for its removal to find none to revoke, and outlive the agent by its TTL.
    if (this.desired === undefined || this.closed) throw new Error('the entry is no longer wanted; no new lease granted');
    const lease = client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    let confirmed = false;
    lease.on('keepaliveSucceeded', () => {
      if (this.lease === lease) this.keptAliveAt = performance.now();
    });
    lease.on('lost', (error) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      void this.stopEntryWatch(0);
      // Lost before its put was confirmed: that attempt fails and backs off by itself; a pass now
      // would only repeat it at once, in a tight loop while etcd refuses.
      if (!confirmed) return;
      this.log.warn({ err: leaseLossReason(error) }, 'lease lost; granting a new one');
      this.reconcile();
    });
    try {
      const revision = await this.putOnNewLease(client, lease, key, value);
      if (this.lease !== lease) throw new Error('the lease was lost while the key was put');
      confirmed = true;
      this.keptAliveAt = performance.now();
      await this.watchEntry(lease, key, BigInt(revision));
    } catch (error) {
      // A key on no lease: the new lease stays, to watch it (its deletion asks for a pass at once).
      if (error instanceof EtcdKeyHeldError && this.lease === lease) {
        confirmed = true;
        await this.watchEntry(lease, key, BigInt(error.revision));
      } else if (this.lease === lease) this.dropLease();
      throw error;
    }
  }

  /**
   * Puts the key on a new `lease` where it is absent or held by the lease that last held ours (a
   * lost lease etcd has not expired yet), or anywhere when this registration holds no key yet (a
   * key left by its previous run is taken at once rather than after its TTL). A key another lease
   * put since ours is left alone, watched: taking it would take it from a second agent registering
   * this id, which then leaves it to us in turn. Resolves with the revision the watch continues after.
   */
  private async putOnNewLease(client: Etcd3, lease: Lease, key: string, value: string): Promise<string> {
    const leaseId = await withDeadline(lease.grant(), this.attemptTimeoutMs, 'etcd lease grant');
    // Each put is conditional on the holder it saw: a key that changes in between is looked at again.
    let holder: IKeyValue | undefined;
    for (let attempt = 1; ; attempt += 1) {
      const unchanged = holder ? client.if(key, 'Mod', '==', holder.mod_revision) : client.if(key, 'Create', '==', 0);
      this.beforeEntryWrite();
      const result = await withDeadline(unchanged.then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit(), this.attemptTimeoutMs, 'etcd lease put');
      if (result.succeeded) {
        if (holder && holder.lease !== this.heldBy) this.log.warn({ key, lease: holder.lease }, 'registry entry held by another lease as the registration starts; taking it (left by a previous run of this agent, or does another agent register the same id?)');
        this.heldBy = leaseId;
        this.leftTo = undefined;
        return result.header.revision;
      }
      holder = result.responses[0]?.response_range?.kvs[0];
      if (holder?.lease === NO_LEASE) throw new EtcdKeyHeldError(key, result.header.revision);
      if (holder && this.heldBy !== undefined && holder.lease !== this.heldBy) {
        if (this.leftTo !== holder.lease) this.log.warn({ key, lease: holder.lease }, 'registry entry held by another lease after our lease was lost; leaving it until it goes (does another agent register the same id?)');
        this.leftTo = holder.lease;
        return result.header.revision;
      }
      if (attempt >= NEW_LEASE_PUT_TRIES) throw new Error(`${key} changed under each of ${NEW_LEASE_PUT_TRIES} puts on a new lease`);
    }
  }

  /**
   * Puts the key on the live `lease` where it is ours or absent: a data update (the drain mark at
   * SIGTERM) must not take the key from a second agent registering this id, which put it on its own
   * lease meanwhile (the watch warned of it). Resolves with the revision the watch continues after.
   */
  private async putIfOurs(lease: Lease, key: string, value: string): Promise<string> {
    const client = await this.connect();
    const leaseId = await withDeadline(lease.grant(), this.attemptTimeoutMs, 'etcd lease grant');
    this.beforeEntryWrite();
    const result = await withDeadline(client.if(key, 'Lease', '==', leaseId).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit(), this.attemptTimeoutMs, 'etcd put');
    if (result.succeeded) {
      this.heldBy = leaseId;
      this.leftTo = undefined;
      return result.header.revision;
    }
    const holder = result.responses[0]?.response_range?.kvs[0];
    // Deleted (its deletion is on its way through the watch): put it back, unless another lease is quicker.
    if (!holder) return this.putIfAbsent(lease, key, value);
    if (holder.lease === NO_LEASE) throw new EtcdKeyHeldError(key, result.header.revision);
    this.log.warn({ key, lease: holder.lease }, 'registry entry held by another lease; leaving it (does another agent register the same id?)');
    return result.header.revision;
  }

  /**
   * Puts the key again on `lease` unless it exists: a key another lease put since the deletion
   * (most likely a second agent registering this id) is left alone, watched; taking it back would
   * only take it from that agent. Resolves with the revision the watch continues after.
   */
  private async putIfAbsent(lease: Lease, key: string, value: string): Promise<string> {
    const client = await this.connect();
    const leaseId = await withDeadline(lease.grant(), this.attemptTimeoutMs, 'etcd lease grant');
    this.beforeEntryWrite();
    const result = await withDeadline(client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit(), this.attemptTimeoutMs, 'etcd put if absent');
    if (result.succeeded) {
      this.heldBy = leaseId;
      this.leftTo = undefined;
    }
    const holder = result.responses[0]?.response_range?.kvs[0];
    if (!result.succeeded && holder?.lease === NO_LEASE) throw new EtcdKeyHeldError(key, result.header.revision);
    if (!result.succeeded && holder && holder.lease !== leaseId) {
      this.log.warn({ key, lease: holder.lease }, 'registry entry put on another lease after its deletion; leaving it (does another agent register the same id?)');
    }
    return result.header.revision;
  }

  /**
   * Watches `key` on `lease` from the revision after `revision`, unless the open watch already
   * does: it has seen every change since it was opened, so it stays. Never rejects: a watch that
   * could not be opened is tried again later, while the entry it would guard stands.
   */
  private async watchEntry(lease: Lease, key: string, revision: bigint): Promise<void> {
    const open = this.entryWatch;
    if (open && open.key === key && this.lease === lease) return;
    let client: Etcd3;
    let leaseId: string;
    try {
      client = await this.connect();
      leaseId = await withDeadline(lease.grant(), this.attemptTimeoutMs, 'etcd lease grant');
    } catch (error) {
      if (!this.wants(lease, key)) return;
      this.entryWatchFailures += 1;
      this.retryEntryWatch(lease, key, 'broken', error, revision + 1n);
      return;
    }
    // The lease or the wanted key changed while this waited: that pass watches its own.
    if (!this.wants(lease, key)) return;
    void this.stopEntryWatch(0);
    const openedAt = Date.now();
    const watch: EtcdEntryWatch = new EtcdEntryWatch(client, key, leaseId, revision + 1n, this.attemptTimeoutMs, {
      onDeleted: () => {
        if (!this.watches(watch)) return;
        // etcd deletes the key of a lease it expired as a client's deletion: told apart by the keepalives
        // (every third of the TTL) that stopped reaching etcd, a process stopped (SIGSTOP) or cut off past the TTL.
        const silentMs = performance.now() - this.keptAliveAt;
        if (silentMs > this.ttlSeconds * 1_000) this.log.warn({ key, silentMs }, 'registry entry deleted with our lease, which etcd expired: no keepalive reached it within its TTL (the process was stopped or cut off); putting it again');
        else this.log.warn({ key }, 'registry entry deleted by another client; putting it again');
        this.rewritingDeleted = true;
        this.reconcile();
      },
      onReplaced: (other) => {
        if (!this.watches(watch)) return;
        // Put on no lease (a plain etcdctl put): held for good, which a pass finds and reports (`blocked`).
        if (other === NO_LEASE) this.reconcile();
        else this.log.warn({ key, lease: other }, 'registry entry put on another lease; leaving it (does another agent register the same id?)');
      },
      onPut: (value) => {
        if (this.watches(watch)) this.entryFound(key, value, this.entry);
      },
      onEnd: (reason, error, resumeRevision) => {
        if (this.entryWatch !== watch) return;
        this.entryWatch = undefined;
        if (!this.watches(watch, true)) return;
        // A watch that lived past the longest delay starts a new streak: warned again, retried soon.
        this.entryWatchFailures = Date.now() - openedAt >= ENTRY_WATCH_RETRY_MAX_MS ? 1 : this.entryWatchFailures + 1;
        this.retryEntryWatch(lease, key, reason, error, resumeRevision);
      },
    });
    this.entryWatch = watch;
  }

  /** True while `watch` is the open watch (or the one that just ended) on the wanted key and live lease: our own deregistration, a lost lease or close() make its news stale. */
  private watches(watch: EtcdEntryWatch, ended = false): boolean {
    return (ended || this.entryWatch === watch) && this.lease !== undefined && this.wants(this.lease, watch.key);
  }

  /** True while `key` is the wanted entry's key and `lease` the live lease. */
  private wants(lease: Lease, key: string): boolean {
    return !this.closed && this.lease === lease && !lease.revoked() && this.desired !== undefined && this.keyOf(this.desired) === key;
  }

  /**
   * Opens the watch again after it ended, from the first revision it did not deliver, after a
   * growing delay (a member that refuses the watch would otherwise be asked at once, for ever).
   * Events since then are delivered by the new watch; a compacted revision cannot be watched from,
   * so the key is then put again if it is missing (as after a deletion) and watched from there.
   */
  private retryEntryWatch(lease: Lease, key: string, reason: WatchEndReason, error: unknown, resumeRevision: bigint): void {
    const delayMs = backoffDelay(this.entryWatchFailures - 1, { ...REGISTRATION_BACKOFF, maxMs: ENTRY_WATCH_RETRY_MAX_MS });
    const fields = { key, reason, err: errorMessage(error), delayMs };
    if (this.entryWatchFailures !== 1) this.log.debug(fields, 'watch on the registry entry ended again');
    else if (/permission denied/i.test(errorMessage(error))) {
      // A user that may write its key but not read it: the entry stands, only its repair is lost.
      const prefix = key.slice(0, key.lastIndexOf('/') + 1);
      const user = this.options.credentials?.username === undefined ? 'the client' : `etcd user "${this.options.credentials.username}"`;
      this.log.warn(fields, `etcd refused ${user} the right to watch ${key}: the entry stands, but is not put back if another client deletes it; grant one of its roles readwrite on the prefix (etcdctl role grant-permission --prefix=true <role> readwrite ${prefix})`);
    } else this.log.warn(fields, 'watch on the registry entry ended; watching it again');
    clearTimeout(this.entryWatchRetry);
    this.entryWatchRetry = setTimeout(() => {
      this.entryWatchRetry = undefined;
      if (!this.wants(lease, key)) return;
      if (reason === 'compacted') {
        this.rewritingDeleted = true;
        this.reconcile();
        return;
      }
      void this.watchEntry(lease, key, resumeRevision - 1n);
    }, delayMs);
  }

  /** Stops the watch on the key and its retry; waits up to `graceMs` for etcd to confirm, never rejects. */
  private stopEntryWatch(graceMs: number): Promise<void> {
    clearTimeout(this.entryWatchRetry);
    this.entryWatchRetry = undefined;
    const watch = this.entryWatch;
    this.entryWatch = undefined;
    return watch?.cancel(graceMs) ?? Promise.resolve();
  }

  protected async remove(): Promise<void> {
    // A register() after this deregistration starts afresh: it takes a key another lease holds.
    this.heldBy = undefined;
    this.leftTo = undefined;
    const lease = this.lease;
    await this.dropping;
    if (!lease) return;
    // The revoke deletes the key: that deletion is ours, never to be undone (events are stale once
    // `desired` is unset; the watch stops as well, while the revoke runs).
    const watchStopped = this.stopEntryWatch(Math.min(ENTRY_WATCH_CANCEL_GRACE_MS, this.attemptTimeoutMs));
    // Each call goes to one member (no hidden retries): with one member down, a single revoke would
    // fail one time in N. Once per member, within the deregistration's own bound. The lease is kept
    // until a revoke is confirmed, so a removal retried later revokes it again (the first call
    // already stopped its keep-alive; a lease etcd no longer knows counts as revoked).
    for (let attempt = 1; ; attempt += 1) {
      try {
        await withDeadline(lease.revoke(), this.attemptTimeoutMs, 'etcd lease revoke');
        if (this.lease === lease) this.lease = undefined;
        await watchStopped;
        return;
      } catch (error) {
        if (attempt >= this.options.endpoints.length) throw error;
      }
    }
  }

  protected async release(): Promise<void> {
    // Detached before the client closes: etcd3 re-creates the stream of a closed client while a watcher is attached.
    await this.stopEntryWatch(ENTRY_WATCH_CANCEL_GRACE_MS);
    const client = await this.client?.catch(() => undefined);
    client?.close();
  }

  private connect(): Promise<Etcd3> {
    // No hidden retries or breaker: etcd3's would hold calls back for 5 s after an outage, past the
    // registration's own backoff (at most 1 s), and the agent would register late.
    this.client ??= import('etcd3').then(({ Etcd3 }) => tolerateEtcdAuthDisabled(new Etcd3({ hosts: this.options.endpoints, faultHandling: NO_HIDDEN_RETRIES, ...this.options.credentials?.clientSecurity() })));
    return this.client;
  }

  private dropLease(): void {
    const lease = this.lease;
    this.lease = undefined;
    // The key goes with its lease: a new lease's put watches its key anew.
    void this.stopEntryWatch(0);
    // Revoking an old lease that may never have been granted; its key expires with it anyway. A removal
    // waits for it (a lease granted as a deregistration came): close() would cut it off, the lease left alive.
    if (lease) this.dropping = withDeadline(lease.revoke(), this.attemptTimeoutMs, 'etcd lease revoke').catch(() => undefined);
  }
}

/**
 * A key on no lease at the entry's key (`RegistryEntryHeldError`): put by hand or by another tool, never
 * ours (this registration puts its key on a lease), so never overwritten; `revision` is the one etcd
 * answered with, which the watch for its deletion continues after.
 */
class EtcdKeyHeldError extends RegistryEntryHeldError {
  constructor(
    key: string,
    readonly revision: string,
  ) {
    super(key, `${key} is on no lease (put by hand or by another tool: etcdctl put without --lease): it never expires, and is not ours to overwrite; once it is deleted (etcdctl del ${key}), ours is put at once`);
  }
}

/**
 * Why a lease was lost, in words: etcd3 gives its own sentence where its lease error expects a lease
 * id when its keepalives went unanswered past the TTL, which read "Lease We lost connection to etcd
 * and our lease has expired. is expired or revoked"; that sentence alone is kept.
 */
function leaseLossReason(error: unknown): string {
  const message = errorMessage(error);
  return /^Lease (\D.*\.) is expired or revoked$/.exec(message)?.[1] ?? message;
}

/** True for etcd3's answer to a put on a lease etcd no longer knows (revoked or expired). */
function isLeaseGone(error: unknown): boolean {
  return error instanceof Error && (error.constructor.name === 'EtcdLeaseInvalidError' || /requested lease not found/.test(error.message));
}

function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The TTL in whole seconds of a lease asked for `ttlMs`: up, never down (1.4 s would be a 1 s lease, and anything under 500 ms none), so the lease lives at least as long as asked. */
function leaseTtlSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1_000));
}
