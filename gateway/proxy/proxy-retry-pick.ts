import { UNUSED_PICK, type PickContext, type PickedEndpoint, type PickResult, type Picker } from '../../src/balance/picker.ts';

/** Attempts to find an instance not tried yet before accepting a repeat. */
const DISTINCT_PICK_TRIES = 4;

/**
 * A retry's pick of an instance not tried yet, when the balancer offers one within
 * `DISTINCT_PICK_TRIES` picks, else the last repeat. `repeat` (a pick of a tried instance) and the
 * later repeats are held until the search ends, so that least-connections and p2c count them and
 * turn to the others (released at once, a repeat would win the next pick again); each further pick
 * carries `tried`, which balancers that would repeat themselves (least-connections, hashes, random
 * draws) skip. Only retries get here, so the usual single attempt allocates nothing for it.
 */
export function distinctPick(picker: Picker, base: PickContext, repeat: PickedEndpoint, firstTried: string, laterTried: readonly string[] | undefined): PickResult {
  return pickAvoiding(picker, base, repeat, laterTried ? [firstTried, ...laterTried] : [firstTried]);
}

/**
 * `pick`, or, when it names an instance whose connect timed out earlier in the same request or
 * connection (`timedOut`), a pick among the others (`PickContext.tried` set to them), or none when
 * the balancer offers no other within `DISTINCT_PICK_TRIES` picks (the picks are then released
 * unused): a connect left unanswered is retried on another instance, never on the same one, as
 * Envoy's `previous_hosts` retry predicate and nginx's `proxy_next_upstream`, which tries no server
 * twice; with one instance a connect timeout thus ends the request after one attempt, where it made
 * the client wait for every attempt's timeout in turn. A refused connect fails at once and may be
 * tried again on its instance: once every instance was tried (`distinctPick` then repeats one), the
 * repeat goes to one that did not time out, where the balancer's own choice among all of them ended
 * the request whenever it fell on a timed-out one. Only a retry with a failure to report gets here,
 * so the none's reason is never the answer.
 */
export function unlessTimedOut(picker: Picker, base: PickContext, pick: PickResult, timedOut: readonly string[] | undefined): PickResult {
  if (pick.kind !== 'endpoint' || timedOut === undefined || !timedOut.includes(pick.address)) return pick;
  const other = pickAvoiding(picker, base, pick, timedOut);
  if (other.kind !== 'endpoint' || !timedOut.includes(other.address)) return other;
  other.done(UNUSED_PICK);
  return { kind: 'none', reason: 'no-instances' };
}

/** `first`, or the first of up to `DISTINCT_PICK_TRIES` picks (each with `tried: avoid`) whose instance is not in `avoid`, else the last; the others are held until the search ends, then released unused. */
function pickAvoiding(picker: Picker, base: PickContext, first: PickedEndpoint, avoid: readonly string[]): PickResult {
  const held: PickedEndpoint[] = [];
  let pick: PickResult = first;
  for (let again = 1; pick.kind === 'endpoint' && avoid.includes(pick.address) && again < DISTINCT_PICK_TRIES; again += 1) {
    held.push(pick);
    pick = picker.pick({ ...base, tried: avoid });
  }
  for (const unused of held) unused.done(UNUSED_PICK);
  return pick;
}
