import { BehaviorSubject, type Observable } from 'rxjs';

const count = new BehaviorSubject<number | undefined>(undefined);

/**
 * The number of gateways sharing this one's config store, as this process last heard it: set by
 * the process that watches the peers (the one process, or the primary, which sends it to its
 * workers); undefined without a config store. Never below 1 once set (this gateway counts even
 * while its own entry is not written yet).
 */
export const livePeerCount$: Observable<number | undefined> = count.asObservable();

/** The live peer count now; undefined without a config store. */
export function livePeerCount(): number | undefined {
  return count.getValue();
}

/** Records the peer count (at least 1), or undefined when this gateway has no config store. */
export function setLivePeerCount(peers: number | undefined): void {
  const next = peers === undefined ? undefined : Math.max(1, Math.floor(peers));
  if (next !== count.getValue()) count.next(next);
}
