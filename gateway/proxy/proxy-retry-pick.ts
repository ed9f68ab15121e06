import { UNUSED_PICK, type PickContext, type PickedEndpoint, type PickResult, type Picker } from '../../src/balance/picker.ts';

/** Picks in all (the first included) to find an instance not tried yet before accepting a repeat. */
const DISTINCT_PICK_TRIES = 4;

/**
 * The context of a retry search's pick number `again` (0 the first, made before the search; 1 to
 * `DISTINCT_PICK_TRIES - 1` the further ones, which the search gives `tried` besides). The HTTP
 * attempt loop answers its request's context for each; the tcp forwarder salts the client IP per
 * try (`<ip>#<try>`), which moves consistent-hash to another ring position.
 */
export type RetryPickContext = (again: number) => PickContext;

/**
 * A retry's pick of an instance not in `tried`, when the balancer offers one within
 * `DISTINCT_PICK_TRIES` picks, else the last repeat. `first` (the retry's usual pick, made with
 * `context(0)`) and the later repeats are held until the search ends, so that least-connections and
 * p2c count them and turn to the others (released at once, a repeat would win the next pick
 * again); each further pick carries `tried`, which every balancer skips (least-connections and p2c
 * take the least loaded untried member, random a weighted draw among them, round-robin the first
 * after its cursor, hashes walk on). Only retries get here, so the usual single attempt allocates
 * nothing for it.
 */
export function distinctPick(picker: Picker, context: RetryPickContext, first: PickResult, tried: readonly string[]): PickResult {
  const held: PickedEndpoint[] = [];
  let pick = first;
  for (let again = 1; pick.kind === 'endpoint' && tried.includes(pick.address) && again < DISTINCT_PICK_TRIES; again += 1) {
    held.push(pick);
    pick = picker.pick({ ...context(again), tried });
  }
  // Released unused: `cancelled` frees the slot without feeding latency or health.
  for (const unused of held) unused.done(UNUSED_PICK);
  return pick;
}

/**
 * `pick`, or, when it names an instance whose connect timed out earlier in the same request or
 * connection (`timedOut`), a pick among the others (`distinctPick` avoiding them), or none when
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
export function unlessTimedOut(picker: Picker, context: RetryPickContext, pick: PickResult, timedOut: readonly string[] | undefined): PickResult {
  if (pick.kind !== 'endpoint' || timedOut === undefined || !timedOut.includes(pick.address)) return pick;
  const other = distinctPick(picker, context, pick, timedOut);
  if (other.kind !== 'endpoint' || !timedOut.includes(other.address)) return other;
  other.done(UNUSED_PICK);
  return { kind: 'none', reason: 'no-instances' };
}
