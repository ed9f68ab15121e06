import type { StoreRefusal } from './store-objects.ts';
import type { StoreListing } from './store-source.ts';

/** What a refusal of a changed object says when its previous value stays in force. */
export const LAST_GOOD_KEPT = 'its last good value stays in force';

/**
 * The last value of each store object this gateway applied, so that a new value refused (invalid,
 * or failing a rule across objects) leaves the object as it was instead of taking it out of
 * service: the running configuration stays, as for a refused file. At start it is seeded from the
 * snapshot file (of the same store, re-validated), which holds the values this gateway had in force,
 * so that a restart does not drop an object the store now refuses. An object refused with no earlier
 * value here (new, or not in the snapshot) is left out, as before; a deleted object is gone; a valid
 * value in the store always wins. A stale snapshot can thus bring back only an object the store still
 * holds and refuses, with the value this gateway last applied (older than other gateways' when it
 * changed while this one was down, or from before a deletion when it was deleted and written again).
 */
export class LastGoodObjects {
  private readonly values = new Map<string, string>();

  /**
   * `listing` with the earlier value of each object that `refused` names and that changed since it
   * was applied, and those refusals saying so; undefined when there is none.
   */
  restore(listing: StoreListing, refused: readonly StoreRefusal[]): { listing: StoreListing; kept: StoreRefusal[] } | undefined {
    const entries = new Map(listing.entries);
    const kept: StoreRefusal[] = [];
    for (const refusal of refused) {
      const earlier = this.values.get(refusal.key);
      const now = listing.entries.get(refusal.key);
      if (earlier === undefined || now === undefined || earlier === now) continue;
      entries.set(refusal.key, earlier);
      kept.push({ ...refusal, reason: `${refusal.reason}; ${LAST_GOOD_KEPT}`, lastGoodInForce: true });
    }
    return kept.length === 0 ? undefined : { listing: { ...listing, entries }, kept };
  }

  /** Records the values applied from `listing`, leaving out the objects `refused` names; objects no longer listed are forgotten. */
  applied(listing: StoreListing, refused: readonly StoreRefusal[]): void {
    const left = new Set(refused.map((refusal) => refusal.key));
    this.values.clear();
    for (const [key, value] of listing.entries) if (!left.has(key)) this.values.set(key, value);
  }
}
