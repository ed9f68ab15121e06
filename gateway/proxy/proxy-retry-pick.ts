import type { PickContext, PickedEndpoint, PickResult, Picker } from '../../src/balance/picker.ts';

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
  const held: PickedEndpoint[] = [];
  const tried = laterTried ? [firstTried, ...laterTried] : [firstTried];
  let pick: PickResult = repeat;
  for (let again = 1; pick.kind === 'endpoint' && tried.includes(pick.address) && again < DISTINCT_PICK_TRIES; again += 1) {
    held.push(pick);
    pick = picker.pick({ ...base, tried });
  }
  // Released unused: `cancelled` frees the in-flight slot without feeding latency or health.
  for (const unused of held) unused.done({ ok: false, latencyMs: 0, errorClass: 'cancelled' });
  return pick;
}

/**
 * `pick`, or none when it names an instance whose connect timed out earlier in the same request or
 * connection (`timedOut`; the pick is then released unused): a connect left unanswered is retried
 * on another instance, never on the same one, as Envoy's `previous_hosts` retry predicate and nginx's
 * `proxy_next_upstream`, which tries no server twice; with one instance a connect timeout thus ends
 * the request after one attempt, where it made the client wait for every attempt's timeout in turn.
 * A refused connect fails at once and may be tried again on its instance. Only a retry with a
 * failure to report gets here, so the none's reason is never the answer.
 */
export function unlessTimedOut(pick: PickResult, timedOut: readonly string[] | undefined): PickResult {
  if (pick.kind !== 'endpoint' || timedOut === undefined || !timedOut.includes(pick.address)) return pick;
  pick.done({ ok: false, latencyMs: 0, errorClass: 'cancelled' });
  return { kind: 'none', reason: 'no-instances' };
}
