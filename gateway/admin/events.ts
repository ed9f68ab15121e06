import { randomInt } from 'node:crypto';
import { Subject, Subscription, type Observable } from 'rxjs';
import type { HeldInstance, ProtectionChange } from '../../src/discovery/index.ts';
import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { componentLogger } from '../../src/logger.ts';
import type { BreakerChange } from '../policy/breaker-change.ts';
import { diffEndpoints, diffStatuses } from './event-diff.ts';
import type { AdminChange, AdminEvent, ConfigChange, EndpointState, HeldPayload, RateLimitChange } from './event-types.ts';

/** Events kept for clients that reconnect with `Last-Event-ID`. */
export const EVENT_BUFFER_SIZE = 500;
/** Event ids a run may issue (2^40, over a trillion) before it could reach past the safe integers. */
export const EVENT_IDS_PER_RUN = 2 ** 40;

/**
 * The first event id of a gateway run: random, at least 1, and at most `EVENT_IDS_PER_RUN` below
 * the largest safe integer, so that the runs of a fleet number in ranges of their own, however
 * close together they started: an id one run issued is another's only by a chance of about one in
 * 2^52 for every pair of runs and every event either issued. A client that resumes on another run
 * (after a restart, or on another gateway behind the same admin address) thus resumes from an id
 * this one never issued, and gets `resync` and all it holds. Numbered from their start time (ms ×
 * 1,000, as before), two gateways started in the same millisecond issued the same ids, and one a
 * few milliseconds later the ids the first issued after a few thousand events: a client resuming
 * there got the events after that number and no `resync`, and missed the rest.
 */
export function firstEventId(): number {
  return randomInt(2 ** 13 - 1) * EVENT_IDS_PER_RUN + randomInt(1, EVENT_IDS_PER_RUN);
}

/** The streams the admin events are derived from. */
export interface AdminEventInputs {
  /** Every health snapshot of every service (`ServiceBalancers.health$`). */
  readonly health$: Observable<HealthSnapshot>;
  readonly statuses$: Observable<readonly ProviderStatus[]>;
  /** Changes passed through as they are: configuration applied/refused, rate-limit fallbacks. */
  readonly config$: Observable<ConfigChange | RateLimitChange>;
  /** What removal protection holds and lets go (`DiscoveryAggregator.protection$`); none when absent. */
  readonly protection$?: Observable<ProtectionChange>;
  /** Services forgotten (`ServiceBalancers.forgotten$`), each with the grace it outlived; none when absent. */
  readonly forgotten$?: Observable<{ readonly service: string; readonly afterMs: number | false }>;
  /** Circuit breaker state changes (`TrafficGuards.changes$`, or the workers' relayed by the primary); none when absent. */
  readonly breakers$?: Observable<BreakerChange>;
  /** The endpoint states of a snapshot (`endpointStates`). */
  describe(snapshot: HealthSnapshot): EndpointState[];
  /** The id of the first event; `firstEventId()` (random) by default. */
  readonly firstId?: number;
}

/**
 * The gateway's changes as numbered events, derived from its observables (never by polling): each
 * service's successive health snapshots are diffed into instance and health events, provider
 * statuses into `provider-status`, and configuration changes pass through. Keeps the latest
 * `EVENT_BUFFER_SIZE` events for replay, and the latest provider statuses.
 */
export class AdminEvents {
  /** Every event as it happens (no replay; use `since` for that). Completes on `close()`. */
  readonly events$: Observable<AdminEvent>;

  private readonly subject = new Subject<AdminEvent>();
  private readonly buffer: AdminEvent[] = [];
  private readonly endpoints = new Map<string, ReadonlyMap<string, EndpointState>>();
  private statuses = new Map<string, ProviderStatus>();
  private readonly subscription = new Subscription();
  private readonly log = componentLogger('admin-events');
  private readonly firstId: number;
  private nextId: number;

  constructor(inputs: AdminEventInputs) {
    this.events$ = this.subject.asObservable();
    this.firstId = inputs.firstId ?? firstEventId();
    this.nextId = this.firstId;
    // Statuses first, so that a registry reads as connected before the instances it lists appear.
    this.subscription.add(inputs.statuses$.subscribe((statuses) => this.guard(() => this.onStatuses(statuses))));
    this.subscription.add(inputs.health$.subscribe((snapshot) => this.guard(() => this.onHealth(snapshot, inputs.describe(snapshot)))));
    this.subscription.add(inputs.config$.subscribe((change) => this.emit(change)));
    if (inputs.breakers$) this.subscription.add(inputs.breakers$.subscribe((change) => this.emit(change)));
    if (inputs.forgotten$) {
      this.subscription.add(
        inputs.forgotten$.subscribe(({ service, afterMs }) => {
          this.endpoints.delete(service);
          this.emit({ type: 'service-forgotten', data: { service, afterMs: afterMs === false ? null : afterMs } });
        }),
      );
    }
    if (inputs.protection$) this.subscription.add(inputs.protection$.subscribe((change) => this.guard(() => this.emit(protectionEvent(change)))));
  }

  /**
   * The buffered events after `lastId`, oldest first; all buffered ones for 0 (before this run's
   * first event) and for an id this run has not issued (below its first, or not reached yet): that
   * is from another run of the gateway (see `firstEventId`), and a client that followed that one
   * and reconnects missed everything this one buffered.
   */
  since(lastId: number): AdminEvent[] {
    if (!this.issued(lastId)) return [...this.buffer];
    return this.buffer.filter((event) => event.id > lastId);
  }

  /**
   * Whether `since(lastId)` is every event after `lastId`: false when some of them already left the
   * buffer, and for an id this run has not issued (from another run of the gateway).
   */
  canReplay(lastId: number): boolean {
    const oldest = this.buffer[0]?.id ?? this.nextId;
    if (lastId === 0) return oldest === this.firstId;
    return this.issued(lastId) && oldest <= lastId + 1;
  }

  /** The latest status of every provider, in the order they first reported. */
  providerStatuses(): ProviderStatus[] {
    return [...this.statuses.values()];
  }

  /** Reports a change this process made itself (an admin write), numbered and buffered like the derived ones. */
  record(change: AdminChange): void {
    this.emit(change);
  }

  /** Stops deriving events and completes `events$`. */
  close(): void {
    this.subscription.unsubscribe();
    this.subject.complete();
  }

  private onHealth(snapshot: HealthSnapshot, next: EndpointState[]): void {
    const changes = diffEndpoints(snapshot.service, this.endpoints.get(snapshot.service) ?? new Map(), next, snapshot.panic);
    this.endpoints.set(snapshot.service, new Map(next.map((endpoint) => [endpoint.address, endpoint])));
    for (const change of changes) this.emit(change);
  }

  private onStatuses(statuses: readonly ProviderStatus[]): void {
    const changes = diffStatuses(this.statuses, statuses);
    this.statuses = new Map(statuses.map((status) => [status.provider, status]));
    for (const change of changes) this.emit(change);
  }

  private emit(change: AdminChange): void {
    const event = { ...change, id: this.nextId++, time: new Date().toISOString() } as AdminEvent;
    this.buffer.push(event);
    if (this.buffer.length > EVENT_BUFFER_SIZE) this.buffer.shift();
    this.subject.next(event);
  }

  /** Whether `lastId` is an id of this run (0, before its first event, counts as one). */
  private issued(lastId: number): boolean {
    return lastId === 0 || (lastId >= this.firstId && lastId < this.nextId);
  }

  /** A bad value must not end a stream the admin API lives on: report it and carry on. */
  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.log.error({ err: error }, 'deriving admin events failed; skipping this change');
    }
  }
}

/** A held instance as admin payloads show it. */
export function heldPayload(held: HeldInstance): HeldPayload {
  return { id: held.instance.id, address: held.address, provider: held.provider, since: new Date(held.since).toISOString(), until: new Date(held.until).toISOString() };
}

function protectionEvent(change: ProtectionChange): AdminChange {
  const instances = change.instances.map(heldPayload);
  if (change.action === 'held') return { type: 'removal-held', data: { service: change.service, reason: 'mass-removal-after-outage', instances, held: change.heldCount } };
  return { type: 'removal-released', data: { service: change.service, reason: change.reason === 'expired' ? 'expired' : 'relisted', instances, held: change.heldCount } };
}
