import { BehaviorSubject, Subject, type Observable } from 'rxjs';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from '../backoff.ts';
import { errorMessage, isRegistryRefusal, RegistryEntryHeldError } from '../errors.ts';
import { decodeInstance, encodeInstance } from '../discovery/instance-codec.ts';
import type { Instance } from '../discovery/instance.ts';
import type { Logger } from '../logger.ts';
import { EntryRepair } from './registration-entry-repair.ts';
import { PendingRemoval } from './registration-removal.ts';

/**
 * Where one registration stands; `retrying` means the registry refused or could not be reached,
 * `blocked` that another writer holds its key for good (`RegistryEntryHeldError`): nothing is
 * written until an operator deletes that entry.
 */
export type RegistrationState = 'unregistered' | 'registering' | 'registered' | 'retrying' | 'blocked' | 'closed';

/** Delay between registration attempts while the registry is unreachable: jittered, at most a second, so an entry is back within about a second of its registry. */
export const REGISTRATION_BACKOFF: BackoffOptions = { ...DEFAULT_BACKOFF, initialMs: 200, maxMs: 1_000 };
/**
 * The least wait before asking again a registry that refused who asked (no right, no user, a wrong
 * password): it answers the same until an operator grants it, and an etcd registration grants and
 * revokes a lease at each try, three writes through the cluster's log a second at outage speed.
 */
export const REFUSED_RETRY_MS = 10_000;

/** How a registered entry is spelled in the registry: its key (or znode path) and its value. */
export interface RegisteredEntry<T> {
  keyOf(entry: T): string;
  encode(entry: T): string;
  /**
   * Why readers cannot take `value` found in `entry`'s key (another client wrote it), or undefined
   * when they can; without it no value is repaired (see `EntryRepair`).
   */
  problem?(value: string, entry: T): string | undefined;
}

/**
 * The native entry of an instance: its JSON payload at `<root>/<service>/<id>`. A root of `/` is
 * the registry's own root, so its entries are `/<service>/<id>` (never `//…`, which ZooKeeper refuses).
 */
export function instanceEntry(root: string): RegisteredEntry<Instance> {
  const parent = root.replace(/\/+$/, '');
  return {
    keyOf: (instance) => `${parent}/${instance.service}/${instance.id}`,
    encode: encodeInstance,
    // As a gateway decodes the entry: what it would skip as invalid.
    problem: (value, instance) => {
      const decoded = decodeInstance({ service: instance.service, name: instance.id, data: value });
      return decoded.ok ? undefined : decoded.error.message;
    },
  };
}

/**
 * Keeps one instance registered while it is wanted: a desired state and a loop that converges
 * the registry to it, retrying with capped, jittered backoff and logging once per state change.
 * Subclasses write one registry; they call `reconcile()` when the registry loses the entry
 * (session expiry, lease loss; `noteEntryLost()` when the pass running writes it back itself),
 * `entryFound()` with a value another client left in it, and `beforeEntryWrite()` just before they
 * send a write of it.
 */
export abstract class Registration<T extends { readonly id: string } = Instance> {
  /** Replays the current state, then each change; completes after `close()`. */
  readonly state$: Observable<RegistrationState>;

  protected desired: T | undefined;
  private readonly state = new BehaviorSubject<RegistrationState>('unregistered');
  private running: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  private attempt = 0;
  private deregistered = false;
  /** True after a removal the registry did not confirm: the entry may still be there (until its session or lease ends). */
  private removalUnconfirmed = false;
  /** True from the first write of the entry sent (`beforeEntryWrite`) until a removal the registry confirmed: see `mayHoldEntry`. */
  private entryMayExist = false;
  /** The removal that `deregister()` asked for and the loop has not started yet; `register()` cancels it. */
  private pendingRemoval: PendingRemoval | undefined;
  /** Every instance value the registry confirmed holding, for `markDraining`. */
  private readonly written = new Subject<T>();
  /** Each removal the registry confirmed, for `removalConfirmed`. */
  private readonly removalsConfirmed = new Subject<void>();
  protected closed = false;
  private closing = false;
  /** The least wait after a registry's refusal (`REFUSED_RETRY_MS`; tests shorten it). */
  protected refusedRetryMs = REFUSED_RETRY_MS;
  /** Whether the last 'retrying' warning was for a refusal (true) or an outage (false). */
  private retryingRefused: boolean | undefined;
  /**
   * The pass running rewrites an entry the registry holds, at a `register()` (a peer's applied
   * revision, the agent's draining mark): no change of registration, logged at debug.
   */
  private rewriting = false;
  /**
   * The registry lost the entry since the last pass started (a subclass's `reconcile()`: session
   * expiry, lease loss, another client's deletion; or a confirmed removal): the next write of it
   * registers it anew, logged at info as the first one is.
   */
  private entryLost = false;
  /** Writes the entry back after another client made its value unreadable (`entryFound`); dropped by a deregistration and by close. */
  private readonly entryRepair: EntryRepair;

  /**
   * @param deregisterTimeoutMs how long `deregister()` may wait for a running attempt and the
   *   removal together: the session timeout or lease TTL asked of the registry (etcd's rounded up
   *   to whole seconds), after which the entry is gone anyway.
   */
  constructor(
    protected readonly log: Logger,
    private readonly deregisterTimeoutMs: number,
    private readonly backoff: BackoffOptions = REGISTRATION_BACKOFF,
  ) {
    this.state$ = this.state.asObservable();
    this.entryRepair = new EntryRepair(log, () => this.rewrite());
  }

  /**
   * How long the entry may outlive an agent that stopped answering: the session timeout or lease
   * TTL asked of the registry (an etcd lease rounded up to whole seconds; a ZooKeeper session as
   * its server granted it), the default bound of `deregister()`; shutdown bounds derive from it.
   */
  get entryTtlMs(): number {
    return this.deregisterTimeoutMs;
  }

  /** The current state. */
  currentState(): RegistrationState {
    return this.state.getValue();
  }

  /**
   * True while the registry may hold this registration's entry: from the moment a write of it was
   * sent on a live connection (one whose answer never came may have landed) until a removal the
   * registry confirmed; also after a ZooKeeper session the server expired took the node along,
   * since gateways sent it requests before (a shutdown drains them) and those cut off still send.
   * False while the registry was never reached, however long the registration has tried: nothing
   * was written, so no gateway can send to the entry. A removal that failed or timed out leaves it
   * true, so a shutdown still drains: the entry may stay until its session or lease ends. A write
   * refused because another writer holds the key for good (`blocked`) landed nowhere: it counts for nothing.
   */
  mayHoldEntry(): boolean {
    return this.entryMayExist;
  }

  /** Wants `instance` registered from now on; returns at once, the loop does the work. */
  register(instance: T): void {
    if (this.closed || this.closing) return;
    this.desired = instance;
    this.deregistered = false;
    // The last call wins: a removal asked for earlier and not started yet must not delete this entry.
    this.pendingRemoval?.settle({ superseded: true });
    this.pendingRemoval = undefined;
    this.converge();
  }

  /**
   * The drain handshake: rewrites the wanted entry with `draining: true` (a data update; gateways
   * stop picking it) and resolves true once the registry holds it, false at once when no entry is
   * registered nor being written, or when the registry did not confirm within `timeoutMs` (the loop
   * keeps trying until `deregister()`). A pass that is writing the entry (its first write sent, or a
   * rewrite) is followed by the mark.
   * Never rejects.
   */
  async markDraining(timeoutMs: number): Promise<boolean> {
    // Only an entry the registry may hold can carry the mark: while the registry is unreachable
    // ('retrying') it would not land anyway. One a pass is writing counts: a SIGTERM as the entry
    // appears (or during a repair's rewrite) refused the mark, and gateways kept routing to the
    // unmarked entry for the whole drain.
    const state = this.currentState();
    if (!this.desired || this.closed || !(state === 'registered' || (state === 'registering' && this.entryMayExist))) return false;
    const draining = { ...this.desired, draining: true } as T;
    let timer: NodeJS.Timeout | undefined;
    let subscription: { unsubscribe(): void } | undefined;
    const confirmed = new Promise<boolean>((resolve) => {
      subscription = this.written.subscribe((instance) => {
        if (instance === draining) resolve(true);
      });
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    this.register(draining);
    try {
      return await confirmed;
    } finally {
      clearTimeout(timer);
      subscription?.unsubscribe();
    }
  }

  /**
   * After a `deregister()` that gave up (see `mayHoldEntry`): resolves true once a retry of the
   * removal is confirmed (at once when none is left unconfirmed), false when the registry did not
   * confirm it within `timeoutMs`, or when an entry is wanted (`register()`) or the registration closed.
   * Asks for no removal itself; never rejects.
   */
  async removalConfirmed(timeoutMs: number): Promise<boolean> {
    if (this.closed || this.desired !== undefined) return false;
    if (!this.removalUnconfirmed) return true;
    let timer: NodeJS.Timeout | undefined;
    let subscription: { unsubscribe(): void } | undefined;
    try {
      return await new Promise<boolean>((resolve) => {
        subscription = this.removalsConfirmed.subscribe({ next: () => resolve(true), complete: () => resolve(false) });
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      subscription?.unsubscribe();
    }
  }

  /**
   * Removes the entry and resolves once the registry confirmed it, or gave up after `timeoutMs`
   * (the deregistration timeout by default; the entry then ends with its session or lease); never rejects.
   * A failed removal is retried with backoff until the registry confirms it, a `register()` wants the
   * entry back or `close()`, also after this call gave up: a ZooKeeper session that comes back keeps its node.
   * The removal runs in the loop, after any pass in progress: a `register()` that comes before it
   * starts cancels it (this resolves at once), and one that comes later is written after it.
   * While no write of the entry can have landed (`mayHoldEntry()` false) it resolves at once: the
   * pass in progress sends nothing from now on (`beforeEntryWrite`), so there is nothing to wait for.
   */
  async deregister(timeoutMs = this.entryTtlMs): Promise<void> {
    if (this.closed) return;
    this.desired = undefined;
    this.cancelRetry();
    this.entryRepair.cancel();
    this.pendingRemoval ??= new PendingRemoval();
    const removal = this.pendingRemoval;
    this.converge();
    // (The loop still runs the removal: an etcd lease granted for the entry is revoked.)
    // Blocked, the registry answers: the removal is quick, and revokes the etcd lease kept to watch the key held.
    const outcome = this.entryMayExist || this.currentState() === 'blocked' ? await removal.within(timeoutMs) : {};
    if (outcome.superseded) return;
    // (A retry may have confirmed it in the same turn as the bound ran out.)
    if (outcome.error !== undefined && !removal.confirmed) this.removalUnconfirmed = true;
    if (outcome.error !== undefined) this.log.warn({ err: errorMessage(outcome.error), timeoutMs }, 'deregistration failed; the entry goes when the session or lease ends');
    // A register() while the removal ran wants the entry back: the loop writes it after the removal.
    if (this.desired !== undefined) return;
    this.deregistered = true;
    if (!this.closed) this.setState('unregistered');
  }

  /** Deregisters (unless that already happened) and releases the registry connection; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    // From here on, a register() (a late health verdict) would only write an entry close() leaves behind.
    this.closing = true;
    if (!this.deregistered) await this.deregister();
    this.closed = true;
    // A removal waiting to be retried ends here; the entry ends with the session or lease.
    this.cancelRetry();
    this.entryRepair.cancel();
    await this.release();
    this.setState('closed');
    this.state.complete();
    this.written.complete();
    this.removalsConfirmed.complete();
  }

  /**
   * Takes `value`, what the registry holds at `key` (spelled as `entry` says) as a watch reported it:
   * a value readers cannot take that another client left is written back (`EntryRepair`). The value
   * this registration writes itself never is, whatever `entry.problem` says of it: an agent never
   * fights itself.
   */
  protected entryFound(key: string, value: string, entry: RegisteredEntry<T>): void {
    const desired = this.desired;
    if (desired === undefined || this.closed || value === entry.encode(desired)) return;
    this.entryRepair.found(key, value, entry.problem?.(value, desired));
  }

  /** The registry holds the entry, but not as wanted (a value another client wrote): a pass writes it again, as a rewrite. */
  protected rewrite(): void {
    if (this.desired !== undefined && !this.closed) this.converge();
  }

  /** The registry lost the entry (see `entryLost`): converges now, and the pass that writes it back logs at info. */
  protected reconcile(): void {
    this.noteEntryLost();
    this.converge();
  }

  /** The registry lost the entry and the pass running writes it back by itself (on a new session or lease): it logs at info. */
  protected noteEntryLost(): void {
    this.entryLost = true;
  }

  /** Converges now: coalesced, so a call during a running attempt causes one more pass. */
  private converge(): void {
    if (this.running) {
      this.again = true;
      this.wakeRetry?.();
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
      // A call that came after the loop's last check but before this callback set `again` for a loop that had ended.
      if (this.again && !this.closed) this.converge();
    });
  }

  /**
   * Called by a subclass just before it sends a write of the entry (a create, put or data update),
   * in the same turn as the send: from then on the registry may hold the entry (`mayHoldEntry`).
   * Throws when no entry is wanted any more (a `deregister()` came while the pass ran): the
   * subclass then sends nothing, and the pass ends for the removal to run.
   */
  protected beforeEntryWrite(): void {
    if (this.desired === undefined || this.closed) throw new Error('the entry is no longer wanted; nothing written');
    this.entryMayExist = true;
  }

  /** Writes `instance` to the registry, replacing a stale entry under the same id. */
  protected abstract ensure(instance: T): Promise<void>;
  /** Deletes the entry if this registration wrote it. */
  protected abstract remove(): Promise<void>;
  /** Closes the registry client. */
  protected abstract release(): Promise<void>;

  /** One pass per wanted state: writes the wanted entry, or runs the removal `deregister()` asked for; repeats while calls arrive. */
  private async loop(): Promise<void> {
    do {
      this.again = false;
      if (this.closed) return;
      const instance = this.desired;
      if (!instance) {
        await this.runPendingRemoval();
        continue;
      }
      // A pass from `registered` (or one more after it, for a newer value) rewrites the entry held, unless the registry lost it.
      const from = this.currentState();
      this.rewriting = (from === 'registered' || (from === 'registering' && this.rewriting)) && !this.entryLost;
      this.entryLost = false;
      if (from !== 'retrying' && from !== 'blocked') this.setState('registering', undefined, this.rewriting);
      const mayHoldBefore = this.entryMayExist;
      try {
        await this.ensure(instance);
        if (this.desired === instance) {
          this.attempt = 0;
          this.setState('registered', undefined, this.rewriting && !this.entryLost);
          this.written.next(instance);
        }
      } catch (error) {
        if (this.closed) return;
        // Deregistered during the failed attempt: the removal comes next (a write may have landed).
        if (this.desired === undefined) {
          this.again = true;
          continue;
        }
        const failed = error instanceof RegistryEntryHeldError ? 'blocked' : 'retrying';
        // The write that found the entry held was refused (a failed create, a failed conditional put):
        // it landed nowhere, so it makes no entry of ours possible (a shutdown has nothing to drain).
        if (failed === 'blocked') this.entryMayExist = mayHoldBefore;
        // A new session, lease or instance arrived during the failed attempt: it deserves a pass now.
        if (this.again) {
          this.setState(failed, error);
          continue;
        }
        this.setState(failed, error);
        await this.backOff(error, 'registration attempt failed');
      }
    } while (this.again);
  }

  /**
   * Removes the entry for the waiting `deregister()` calls. A failure is kept for the callers that give
   * up on their bound, and the removal is tried again after a backoff, unless a `register()` came
   * meanwhile (the loop writes the entry next) or the registration closed.
   */
  private async runPendingRemoval(): Promise<void> {
    const removal = this.pendingRemoval;
    if (!removal) return;
    this.pendingRemoval = undefined;
    try {
      await this.remove();
      if (removal.lastError !== undefined) this.log.info('deregistered after retrying');
      this.attempt = 0;
      this.removalUnconfirmed = false;
      // A register() while it ran may have kept the entry (the ZooKeeper removal then deletes nothing): it stays possible.
      if (this.desired === undefined) this.entryMayExist = false;
      // A register() writes it anew: a registration, not a rewrite.
      this.entryLost = true;
      removal.confirmed = true;
      removal.settle({});
      this.removalsConfirmed.next();
    } catch (error) {
      removal.lastError = error;
      this.removalUnconfirmed = true;
      if (this.closed || this.desired !== undefined) {
        removal.settle({ error });
        return;
      }
      // A deregister() during this attempt queued its own removal: this one's callers wait for it.
      // (A cast: the narrowing from the assignment above does not see a deregister() during the await.)
      const queued = this.pendingRemoval as PendingRemoval | undefined;
      if (queued) void queued.removed.then((outcome) => removal.settle(outcome));
      else this.pendingRemoval = removal;
      await this.backOff(error, 'removal attempt failed');
    }
  }

  /**
   * Waits the next backoff delay after a failed attempt (cut short by `cancelRetry()` or a `reconcile()`), then asks the loop for another pass.
   * An entry held for good waits as long as a refusal: an operator must act either way, and the
   * subclass watches that entry, so its deletion asks for a pass at once (`reconcile()`).
   */
  private async backOff(error: unknown, what: string): Promise<void> {
    const backoff = backoffDelay(this.attempt++, this.backoff);
    const delayMs = isRegistryRefusal(error) || error instanceof RegistryEntryHeldError ? Math.max(backoff, this.refusedRetryMs) : backoff;
    this.log.debug({ err: errorMessage(error), delayMs }, what);
    await new Promise<void>((resolve) => {
      this.wakeRetry = resolve;
      this.retryTimer = setTimeout(resolve, delayMs);
    });
    this.wakeRetry = undefined;
    this.again = true;
  }

  private cancelRetry(): void {
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
  }

  /** Moves to `state`, logged at info (a warning for `retrying`, an error for `blocked`), or at debug when `rewrite` (see `rewriting`). */
  private setState(state: RegistrationState, error?: unknown, rewrite = false): void {
    const refused = state === 'retrying' && isRegistryRefusal(error);
    if (this.currentState() === state) {
      // Still retrying, but for the other reason (the registry came back and now refuses, or the
      // reverse): the warning says so, since the last one no longer tells the operator what to fix.
      if (state === 'retrying' && refused !== this.retryingRefused) this.warnRetrying(refused, { state, err: errorMessage(error) });
      return;
    }
    const fields = { from: this.currentState(), to: state, ...(error === undefined ? {} : { err: errorMessage(error) }) };
    // A rewrite's two steps (a peer's applied revision comes up to four times a second) log at debug; a failure still warns.
    if (state === 'retrying') this.warnRetrying(refused, fields);
    // Nothing changes until an operator acts: said once, as an error, with the key and what to do (in `err`).
    else if (state === 'blocked') this.log.error({ ...fields, key: (error as RegistryEntryHeldError).key }, 'registry entry held for good by another writer; not registered until it is deleted');
    else if (rewrite) this.log.debug(fields, `registration ${state}`);
    else this.log.info(fields, `registration ${state}`);
    this.state.next(state);
  }

  private warnRetrying(refused: boolean, fields: object): void {
    this.retryingRefused = refused;
    // A refusal is no outage: the registry answers the same until an operator grants the right.
    if (refused) this.log.warn(fields, `registry refused the registration; asking again every ${this.refusedRetryMs / 1_000} s until it is granted`);
    else this.log.warn(fields, 'registry unreachable; retrying with backoff');
  }
}
