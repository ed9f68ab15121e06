import type { StoreRefusal } from './store-objects.ts';
import type { StoreListing } from './store-source.ts';

/** What a refusal of a changed object says when its previous value stays in force. */
export const LAST_GOOD_KEPT = 'its last good value stays in force';

/**
 * The last value of each store object this gateway applied, so that a new value refused (invalid,
 * or failing a rule across objects) leaves the object as it was instead of taking it out of
 * service: the running configuration stays, as for a refused file. An object refused with no
 * earlier value here (new, or refused since this gateway started) is left out, as before; a
 * deleted object is gone. Held in memory only: a gateway started while a value is refused has no
 * earlier value of it.
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
      kept.push({ ...refusal, reason: `${refusal.reason}; ${LAST_GOOD_KEPT}` });
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
