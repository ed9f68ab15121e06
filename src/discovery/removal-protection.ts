import { instanceAddress, sortInstances, type Instance } from './instance.ts';
import type { HeldInstance, ServiceConf } from './load-balance-conf.ts';
import type { ProviderStatus } from './provider.ts';

/** Share of a service's instances (percent) that must vanish at once after an outage for the removal to be held. */
export const DEFAULT_PROTECTION_THRESHOLD_PERCENT = 50;
/** How long a held removal waits, and how long after a registry returns a removal still counts as post-outage: one default ZooKeeper session. */
export const DEFAULT_PROTECTION_HOLD_MS = 10_000;

/** Settings of the post-outage removal protection; `false` turns it off. */
export interface RemovalProtectionOptions {
  /** A post-outage removal of more than this share (percent) of the service's instances is held. */
  readonly thresholdPercent: number;
  /** How long held instances stay; also the window after a registry returns in which removals count as post-outage. */
  readonly holdMs: number;
}

/** A merged registry view of one service, before protection. */
export interface MergedSet {
  readonly instances: readonly Instance[];
  readonly sources: ReadonlyMap<string, string>;
}

/** What protection made of a merged set: the routable set and what it holds. */
export interface ProtectedSet extends MergedSet {
  readonly held: ReadonlyMap<string, HeldInstance>;
  /** Instances held by this very call (for logs, metrics and events). */
  readonly newlyHeld: readonly HeldInstance[];
  /** Held instances this call let go, because they came back or their hold ended. */
  readonly released: readonly { readonly held: HeldInstance; readonly reason: 'relisted' | 'expired' }[];
}

interface ServiceState {
  readonly held: Map<string, HeldInstance>;
  /** What this service listed when it first lost instances in the current outage episode, by address. */
  baseline?: {
    readonly episode: number;
    readonly members: ReadonlyMap<string, { readonly instance: Instance; readonly provider: string }>;
    /** Addresses whose hold ended in this episode: their removal stands, they are never held again. */
    readonly expired: Set<string>;
  };
}

/** A change of what removal protection holds for one service, for logs and admin events. */
export interface ProtectionChange {
  readonly service: string;
  /** `held`: a post-outage removal is held; `released`: held instances were listed again (`relisted`) or their hold ended (`expired`). */
  readonly action: 'held' | 'released';
  readonly reason: 'mass-removal-after-outage' | 'relisted' | 'expired';
  readonly instances: readonly HeldInstance[];
  /** How many instances of the service are held after this change. */
  readonly heldCount: number;
}

/** The changes `result` makes to what removal protection holds for `service`: the newly held, then the released by reason. */
export function protectionChangesOf(service: string, result: ProtectedSet): ProtectionChange[] {
  const heldCount = result.held.size;
  const changes: ProtectionChange[] = [];
  if (result.newlyHeld.length > 0) changes.push({ service, action: 'held', reason: 'mass-removal-after-outage', instances: result.newlyHeld, heldCount });
  for (const reason of ['relisted', 'expired'] as const) {
    const instances = result.released.filter((release) => release.reason === reason).map((release) => release.held);
    if (instances.length > 0) changes.push({ service, action: 'released', reason, instances, heldCount });
  }
  return changes;
}

/**
 * Self-preservation after a registry outage (Eureka's self-preservation, Nacos's protection
 * threshold). When a registry comes back, its sessions or leases may have expired and their
 * instances vanish before the agents re-register: a re-list then looks like most of a service
 * left at once. A provider counts as recovering from the moment it goes stale (after having been
 * connected, or serving its snapshot file's sets: `ProviderStatus.fromSnapshot`) until `holdMs` after it is connected again; a removal it reports meanwhile that takes
 * the service below `100 - thresholdPercent` percent of the set it had when the outage began is
 * held for `holdMs`: those instances stay routable (health still ejects the dead ones) until they
 * are listed again or the hold ends. Any other removal, such as a deregistration while the
 * registry connection is healthy, applies at once.
 */
export class RemovalProtection {
  private readonly recoveringUntil = new Map<string, number>();
  private readonly services = new Map<string, ServiceState>();
  private readonly connected = new Set<string>();
  private episode = 0;

  constructor(
    private options: RemovalProtectionOptions | false,
    private readonly now: () => number = Date.now,
  ) {}

  /** Switches settings; holds already made keep their end time. */
  configure(options: RemovalProtectionOptions | false): void {
    this.options = options;
  }

  /** Follows a provider's status: stale after connected opens a recovery, connected again starts its end. */
  onStatus(status: ProviderStatus): void {
    const { provider, state } = status;
    // A provider serving its snapshot file's sets is in an outage too: the file holds its last good sets.
    if (state === 'stale' && (this.connected.has(provider) || status.fromSnapshot === true)) {
      if (this.recoveringUntil.get(provider) !== Infinity) this.episode += 1;
      this.recoveringUntil.set(provider, Infinity);
    } else if (state === 'connected') {
      this.connected.add(provider);
      if (this.recoveringUntil.get(provider) === Infinity) this.recoveringUntil.set(provider, this.now() + this.holdMs());
    } else if (state === 'closed') {
      this.recoveringUntil.delete(provider);
    }
  }

  /** True while `provider` is stale after an outage or within the hold window after it returned. */
  isRecovering(provider: string): boolean {
    return (this.recoveringUntil.get(provider) ?? 0) > this.now();
  }

  /** The end of the recovery window of any of `providers` (epoch ms; Infinity while one is stale), or undefined. */
  recoveringUntilOf(providers: Iterable<string>): number | undefined {
    let until: number | undefined;
    for (const provider of providers) {
      const end = this.recoveringUntil.get(provider);
      if (end !== undefined && end > this.now()) until = Math.max(until ?? 0, end);
    }
    return until;
  }

  /** The earliest end of a hold of `service`, for the caller's timer. */
  nextExpiry(service: string): number | undefined {
    let next: number | undefined;
    for (const held of this.services.get(service)?.held.values() ?? []) next = Math.min(next ?? Infinity, held.until);
    return next;
  }

  /**
   * Applies the rule to a new merged set of `service`, given the conf in force. Returns the set to
   * route: the merged instances plus those still held.
   */
  apply(service: string, previous: ServiceConf | undefined, merged: MergedSet): ProtectedSet {
    const state = this.stateOf(service);
    const now = this.now();
    const listed = new Set(merged.instances.map(instanceAddress));
    const released: ProtectedSet['released'][number][] = [];
    for (const [address, held] of state.held) {
      if (listed.has(address)) released.push({ held, reason: 'relisted' });
      else if (held.until <= now) {
        // A registry still unreachable cannot have confirmed the removal: keep waiting for it.
        if (this.recoveringUntil.get(held.provider) === Infinity) state.held.set(address, { ...held, until: now + this.holdMs() });
        else released.push({ held, reason: 'expired' });
      }
    }
    for (const { held, reason } of released) {
      state.held.delete(held.address);
      if (reason === 'expired') state.baseline?.expired.add(held.address);
    }

    const newlyHeld: HeldInstance[] = [];
    if (this.options && previous) {
      const removed = previous.instances.filter((instance) => {
        const address = instanceAddress(instance);
        return !listed.has(address) && !state.held.has(address);
      });
      const recovering = removed.some((instance) => this.isRecovering(previous.sources.get(instanceAddress(instance)) ?? ''));
      if (removed.length > 0 && recovering) {
        if (state.baseline?.episode !== this.episode) {
          const members = new Map(previous.instances.map((instance) => [instanceAddress(instance), { instance, provider: previous.sources.get(instanceAddress(instance)) ?? '' }]));
          state.baseline = { episode: this.episode, members, expired: new Set() };
        }
        const gone = [...state.baseline.members].filter(([address]) => !listed.has(address));
        if (gone.length * 100 > this.options.thresholdPercent * state.baseline.members.size) {
          // Every instance lost since the outage began, including one an earlier re-list already
          // removed (a registry deletes expired nodes one by one): together they are the mass removal.
          for (const [address, { instance, provider }] of gone) {
            if (state.held.has(address) || state.baseline.expired.has(address)) continue;
            const held = { address, instance, provider, since: now, until: now + this.options.holdMs };
            state.held.set(address, held);
            newlyHeld.push(held);
          }
        }
      }
    }
    if (state.held.size === 0) return { ...merged, held: new Map(), newlyHeld, released };
    const sources = new Map(merged.sources);
    for (const held of state.held.values()) sources.set(held.address, held.provider);
    const instances = sortInstances([...merged.instances, ...[...state.held.values()].map((held) => held.instance)]);
    return { instances, sources, held: new Map(state.held), newlyHeld, released };
  }

  /** Drops what is kept of `service` (its last outage baseline; it holds nothing when forgotten). */
  forget(service: string): void {
    this.services.delete(service);
  }

  private holdMs(): number {
    return this.options ? this.options.holdMs : 0;
  }

  private stateOf(service: string): ServiceState {
    let state = this.services.get(service);
    if (!state) {
      state = { held: new Map() };
      this.services.set(service, state);
    }
    return state;
  }
}
