// Which registries have never connected, and which services no registry gives an instance set
// meanwhile: while a registry has not connected, a service's lack of instances says nothing of
// what is registered (the gateway answers 503 naming those registries, not "no instances").
import { BehaviorSubject, type Observable } from 'rxjs';
import type { ProviderStatus } from './provider.ts';

/**
 * What `DiscoveryAggregator.unconnectedRegistriesOf` answers from, besides `services$`, as plain
 * values for a process that answers for the aggregator without holding it (a worker, from its
 * primary). Small on purpose: a service's first listing changes `services$`, not this.
 */
export interface UnconnectedRegistries {
  /** The registries that have never connected yet (closed ones aside), in configuration order. */
  readonly registries: readonly string[];
  /** While `registries` names any, the services `services$` names that no registry gives an instance set any more (each said it is gone), sorted; else empty. */
  readonly unlisted: readonly string[];
}

/**
 * What `DiscoveryAggregator.unconnectedRegistriesOf(service)` answers, from `state` and the names
 * `services$` gave last (`listed`).
 */
export function unconnectedRegistriesIn(state: UnconnectedRegistries, listed: ReadonlySet<string>, service: string): readonly string[] {
  if (state.registries.length === 0) return [];
  return listed.has(service) && !state.unlisted.includes(service) ? [] : state.registries;
}

/**
 * Follows the registries' statuses and the services no registry lists, and tells `state$` when
 * `UnconnectedRegistries` changed; quiet for good once every registry has connected.
 */
export class UnconnectedTracker {
  /** Replays the current state, then each change; completes on `close()`. */
  readonly state$: Observable<UnconnectedRegistries>;
  private readonly state: BehaviorSubject<UnconnectedRegistries>;
  /** The latest status of each registry, and which have ever connected. */
  private readonly latestStatus = new Map<string, ProviderStatus>();
  private readonly everConnected = new Set<string>();
  /** The services no registry lists, kept as they change so that no change scans every service. */
  private readonly unlisted = new Set<string>();
  private closed = false;

  /** @param registries every registry's name, in configuration order */
  constructor(private readonly registries: readonly string[]) {
    this.state = new BehaviorSubject<UnconnectedRegistries>({ registries: [...registries], unlisted: [] });
    this.state$ = this.state.asObservable();
  }

  /** Takes a registry's new status. */
  status(registry: string, status: ProviderStatus): void {
    this.latestStatus.set(registry, status);
    if (status.state === 'connected') this.everConnected.add(registry);
    this.review();
  }

  /** `service` is listed by no registry any more (`true`), or listed again or forgotten (`false`). */
  unlistedNow(service: string, unlisted: boolean): void {
    if (unlisted === this.unlisted.has(service)) return;
    if (unlisted) this.unlisted.add(service);
    else this.unlisted.delete(service);
    this.review();
  }

  /** The registries that have never connected yet (closed ones aside), in configuration order. */
  neverConnected(): string[] {
    return this.registries.filter((name) => !this.everConnected.has(name) && this.latestStatus.get(name)?.state !== 'closed');
  }

  close(): void {
    this.closed = true;
    this.state.complete();
  }

  /** Emits when what `unconnectedRegistriesOf` answers from has changed; nothing to do once every registry has connected. */
  private review(): void {
    const previous = this.state.getValue();
    if (previous.registries.length === 0 || this.closed) return;
    const registries = this.neverConnected();
    const unlisted = registries.length === 0 ? [] : [...this.unlisted].sort();
    if (sameNames(previous.registries, registries) && sameNames(previous.unlisted, unlisted)) return;
    this.state.next({ registries, unlisted });
  }
}

/** True when two lists of names are the same, in the same order. */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, index) => name === b[index]);
}
