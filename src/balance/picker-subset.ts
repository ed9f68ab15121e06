import { UNUSED_PICK, type NoEndpoint, type PeekResult, type PickContext, type PickResult, type Picker } from './picker.ts';
import { headerHasValue } from '../header-list.ts';

/** Something whose current picker may change between picks: a `ServiceBalancer`, read on every pick. */
export interface PickerSource {
  readonly picker: Picker;
}

/**
 * Picks from `primary`; when it has nothing to give (its selection is empty, or none of it may take
 * traffic), from `fallback` (Envoy's subset fallback policy). Without a fallback, or when the
 * fallback has nothing either, the answer is `primary`'s own `none`. A retry's pick whose primary
 * offers only instances the request tried takes an untried one of the fallback instead
 * (`UntriedFirst`), and repeats the primary's only when the fallback has none either.
 */
export function fallbackPicker(primary: PickerSource, fallback: PickerSource | undefined): Picker {
  return {
    pick: (context) => fallbackChoice(primary, fallback, context, (picker) => picker.pick(context)),
    peek: (context) => fallbackChoice(primary, fallback, context, (picker) => picker.peek(context)),
  };
}

function fallbackChoice<R extends PickResult | PeekResult>(primary: PickerSource, fallback: PickerSource | undefined, context: PickContext, ask: (picker: Picker) => R): R {
  const answer = new UntriedFirst<R>(context.tried);
  const first = ask(primary.picker);
  const taken = answer.take(first);
  if (taken !== undefined || !fallback) return taken ?? first;
  // `first` is a repeat (then held) or a none.
  return answer.take(ask(fallback.picker)) ?? answer.end(first);
}

/**
 * The answers of a composed picker's sources, offered in its order for one pick or peek: the
 * first endpoint is the answer, except on a retry's pick (`PickContext.tried`), where an endpoint
 * the request tried is held while the later sources are asked, and answered only when none of
 * them offers an untried one (the first repeat; a later one is released unused at once). A source
 * is a balancer that honours `tried` itself, so its repeat means it has no untried member: a retry
 * goes to an untried member anywhere the picker may send the request, and repeats only once every
 * one was tried, as a single balancer's retry does. The usual pick (no `tried`) takes the first
 * endpoint as before.
 */
class UntriedFirst<R extends PickResult | PeekResult> {
  private repeat: R | undefined;

  constructor(private readonly tried: readonly string[] | undefined) {}

  /** `result` when it is the answer (a repeat held is then released), else undefined: ask the next source. */
  take(result: R): R | undefined {
    if (result.kind !== 'endpoint') return undefined;
    if (this.tried === undefined || !this.tried.includes(result.address)) {
      if (this.repeat !== undefined) release(this.repeat);
      return result;
    }
    if (this.repeat === undefined) this.repeat = result;
    else release(result);
    return undefined;
  }

  /** Once every source was asked: the repeat held, else `none`. */
  end<N extends R | NoEndpoint>(none: N): R | N {
    return this.repeat ?? none;
  }
}

/** Frees a pick's slot unused; a peek holds none. */
function release(result: PickResult | PeekResult): void {
  if ('done' in result) result.done(UNUSED_PICK);
}

/**
 * nginx smooth weighted round-robin over a fixed list of weights: over any run of `sum(weights)`
 * picks each index comes exactly `weight` times, spread out. Weights 0 are never chosen.
 */
export class SmoothSplit {
  private readonly current: number[];
  private readonly total: number;

  constructor(private readonly weights: readonly number[]) {
    this.current = weights.map(() => 0);
    this.total = weights.reduce((sum, weight) => sum + weight, 0);
  }

  /** The index of the next pick; -1 when every weight is 0. */
  next(): number {
    let best = -1;
    for (let index = 0; index < this.weights.length; index += 1) {
      const weight = this.weights[index]!;
      if (weight <= 0) continue;
      this.current[index]! += weight;
      if (best < 0 || this.current[index]! > this.current[best]!) best = index;
    }
    if (best >= 0) this.current[best]! -= this.total;
    return best;
  }

  /** The index `next()` would return, leaving the rotation as it is. */
  peek(): number {
    let best = -1;
    for (let index = 0; index < this.weights.length; index += 1) {
      const weight = this.weights[index]!;
      if (weight <= 0) continue;
      if (best < 0 || this.current[index]! + weight > this.current[best]! + this.weights[best]!) best = index;
    }
    return best;
  }
}

/** A request marker that sends a request to one subset: a header or a cookie, with a given value or any. */
export interface CanaryLane {
  /** Lower-case header name; exclusive with `cookie`. */
  readonly header?: string;
  readonly cookie?: string;
  /** The value that marks a request; undefined: any non-empty value. */
  readonly value?: string;
  readonly to: PickerSource;
}

/** A canary split: requests on a lane go to its subset, the rest are split by weight; empty subsets give way. */
export interface CanaryPlan {
  /** Subsets with their weights; order decides which one takes over first when the chosen one is empty (the heaviest first is kind). */
  readonly split: readonly { readonly weight: number; readonly source: PickerSource }[];
  readonly lanes: readonly CanaryLane[];
  /** Used when every subset of the split is empty; undefined answers the chosen subset's `none`. */
  readonly fallback: PickerSource | undefined;
}

/**
 * The canary picker: a request on a lane goes to the lane's subset; the others to the subset the
 * smooth split chooses. When the chosen subset has nothing to give, the other weighted subsets are
 * tried in plan order, then the fallback, so removing every canary instance fails no request.
 * A retry's pick of the split goes on in that order past a subset that offers only instances the
 * request tried, and repeats the first such only when none has an untried one (`UntriedFirst`); a
 * lane's retry stays on the lane, repeating one of its instances once it tried them all.
 * With nothing anywhere, the answer is `no-healthy-instances` when some subset has instances, else `no-instances`.
 * `split` holds the rotation, so that it survives a rebuild of the picker.
 */
export function canaryPicker(plan: CanaryPlan, split: SmoothSplit): Picker {
  const next = () => split.next();
  const peek = () => split.peek();
  return {
    pick: (context) => canaryChoice(plan, next, context, (picker) => picker.pick(context)),
    peek: (context) => canaryChoice(plan, peek, context, (picker) => picker.peek(context)),
  };
}

/**
 * The canary order of `canaryPicker`; `choose` gives the split's index, asked only once no lane took
 * the request (a lane's request advancing the rotation would take the slots of the split's requests:
 * lane traffic would skew the split); `ask` is a pick or a peek.
 */
function canaryChoice<R extends PickResult | PeekResult>(plan: CanaryPlan, choose: () => number, context: PickContext, ask: (picker: Picker) => R): R | NoEndpoint {
  const { lanes, fallback } = plan;
  const entries = plan.split;
  const answer = new UntriedFirst<R>(context.tried);
  for (const lane of lanes) {
    if (!onLane(lane, context)) continue;
    // A lane pins its requests to its subset (a tester's request reaches the canary alone), a
    // retry's too: only a lane with nothing to give hands its request to the split.
    const result = ask(lane.to.picker);
    if (result.kind === 'endpoint') return result;
    break;
  }
  let none: NoEndpoint = NO_INSTANCES;
  const chosen = choose();
  if (chosen >= 0) {
    const result = ask(entries[chosen]!.source.picker);
    const taken = answer.take(result);
    if (taken !== undefined) return taken;
    if (result.kind === 'none') none = result;
  }
  for (let index = 0; index < entries.length; index += 1) {
    const entry = entries[index]!;
    if (index === chosen || entry.weight <= 0) continue;
    const result = ask(entry.source.picker);
    const taken = answer.take(result);
    if (taken !== undefined) return taken;
    if (result.kind === 'none' && result.reason === 'no-healthy-instances') none = result;
  }
  if (fallback) {
    const result = ask(fallback.picker);
    const taken = answer.take(result);
    if (taken !== undefined) return taken;
    if (result.kind === 'none' && result.reason === 'no-healthy-instances') none = result;
  }
  // A repeat (every member the request may reach was tried); else instances that exist but may
  // not take traffic say more than an empty subset.
  return answer.end(none);
}

const NO_INSTANCES: NoEndpoint = Object.freeze({ kind: 'none', reason: 'no-instances' });

function onLane(lane: CanaryLane, context: PickContext): boolean {
  const headers = context.headers;
  if (!headers) return false;
  // A header sent twice or as a list holds the lane's value as a route's header condition does.
  if (lane.header !== undefined && lane.value) return headerHasValue(headers[lane.header], lane.value);
  const value = lane.header !== undefined ? firstValue(headers[lane.header]) : cookieValue(headers.cookie, lane.cookie!);
  if (value === undefined || value === '') return false;
  return lane.value === undefined || value === lane.value;
}

function firstValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' || value === undefined ? value : value[0];
}

/** The value of cookie `name` in a Cookie header (RFC 6265 `name=value; name2=value2`), undefined when absent. */
export function cookieValue(header: string | readonly string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const text = typeof header === 'string' ? header : header.join('; ');
  for (const pair of text.split(';')) {
    const equals = pair.indexOf('=');
    if (equals < 0 || pair.slice(0, equals).trim() !== name) continue;
    const value = pair.slice(equals + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}
