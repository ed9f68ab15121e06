import type { Etcd3, Lease } from 'etcd3';
import type { ConnectionCredentials } from '../connection-credentials.ts';
import { tolerateEtcdAuthDisabled } from '../discovery/etcd/etcd-auth-disabled.ts';
import { NO_HIDDEN_RETRIES } from '../discovery/etcd/etcd-fault-handling.ts';
import { describeEtcdRefusal } from '../discovery/etcd/etcd-refusal.ts';
import type { Instance } from '../discovery/instance.ts';
import { errorMessage } from '../errors.ts';
import { componentLogger } from '../logger.ts';
import { instanceEntry, Registration, type RegisteredEntry } from './registration.ts';

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


/**
 * Registers an instance as `<prefix>/<service>/<id>` attached to a lease kept alive by etcd3.
 * A lost lease (expired during a partition, or revoked by someone else) is replaced by a new lease
 * and the key is put again.
 */
export class EtcdRegistration<T extends { readonly id: string } = Instance> extends Registration<T> {
  /** The client, built on first use: etcd3 (and gRPC under it) loads only when an agent registers in etcd. */
  private client: Promise<Etcd3> | undefined;
  private lease: Lease | undefined;
  private readonly ttlSeconds: number;
  private readonly attemptTimeoutMs: number;

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

  /** Puts the entry on the live lease, or on a new one. */
  private async put(instance: T): Promise<void> {
    // A live lease is kept: rewriting the value on it (the drain mark) is a data update, never a delete and re-create.
    const live = this.lease;
    if (live && !live.revoked()) {
      await withDeadline(live.put(this.keyOf(instance)).value(this.entry.encode(instance)).exec(), this.attemptTimeoutMs, 'etcd put');
      return;
    }
    this.dropLease();
    const client = await this.connect();
    const lease = client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    let confirmed = false;
    lease.on('lost', (error) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      // Lost before its put was confirmed: that attempt fails and backs off by itself; a pass now
      // would only repeat it at once, in a tight loop while etcd refuses.
      if (!confirmed) return;
      this.log.warn({ err: errorMessage(error) }, 'lease lost; granting a new one');
      this.reconcile();
    });
    try {
      await withDeadline(lease.put(this.keyOf(instance)).value(this.entry.encode(instance)).exec(), this.attemptTimeoutMs, 'etcd lease put');
      if (this.lease !== lease) throw new Error('the lease was lost while the key was put');
      confirmed = true;
    } catch (error) {
      if (this.lease === lease) this.dropLease();
      throw error;
    }
  }

  protected async remove(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    // Each call goes to one member (no hidden retries): with one member down, a single revoke would
    // fail one time in N. Once per member, within the deregistration's own bound. The lease is kept
    // until a revoke is confirmed, so a removal retried later revokes it again (the first call
    // already stopped its keep-alive; a lease etcd no longer knows counts as revoked).
    for (let attempt = 1; ; attempt += 1) {
      try {
        await withDeadline(lease.revoke(), this.attemptTimeoutMs, 'etcd lease revoke');
        if (this.lease === lease) this.lease = undefined;
        return;
      } catch (error) {
        if (attempt >= this.options.endpoints.length) throw error;
      }
    }
  }

  protected async release(): Promise<void> {
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
    // Revoking an old lease that may never have been granted; its key expires with it anyway.
    lease?.revoke().catch(() => undefined);
  }
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
