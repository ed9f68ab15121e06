import type { NoEndpoint, PeekResult, PickContext, PickResult, Picker } from './picker.ts';
import { headerHasValue } from '../header-list.ts';

/** Something whose current picker may change between picks: a `ServiceBalancer`, read on every pick. */
export interface PickerSource {
  readonly picker: Picker;
}

/**
 * Picks from `primary`; when it has nothing to give (its selection is empty, or none of it may take
 * traffic), from `fallback` (Envoy's subset fallback policy). Without a fallback, or when the
 * fallback has nothing either, the answer is `primary`'s own `none`.
 */
export function fallbackPicker(primary: PickerSource, fallback: PickerSource | undefined): Picker {
  return {
    pick(context) {
      const result = primary.picker.pick(context);
      if (result.kind === 'endpoint' || !fallback) return result;
      const second = fallback.picker.pick(context);
      return second.kind === 'endpoint' ? second : result;
    },
    peek(context) {
      const result = primary.picker.peek(context);
      if (result.kind === 'endpoint' || !fallback) return result;
      const second = fallback.picker.peek(context);
      return second.kind === 'endpoint' ? second : result;
    },
  };
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
  for (const lane of lanes) {
    if (!onLane(lane, context)) continue;
    const result = ask(lane.to.picker);
    if (result.kind === 'endpoint') return result;
    break;
  }
  let none: NoEndpoint = NO_INSTANCES;
  const chosen = choose();
  if (chosen >= 0) {
    const result = ask(entries[chosen]!.source.picker);
    if (result.kind === 'endpoint') return result;
    none = result;
  }
  for (let index = 0; index < entries.length; index += 1) {
    const entry = entries[index]!;
    if (index === chosen || entry.weight <= 0) continue;
    const result = ask(entry.source.picker);
    if (result.kind === 'endpoint') return result;
    if (result.reason === 'no-healthy-instances') none = result;
  }
  if (fallback) {
    const result = ask(fallback.picker);
    if (result.kind === 'endpoint') return result;
    if (result.reason === 'no-healthy-instances') none = result;
  }
  // Instances that exist but may not take traffic say more than an empty subset.
  return none;
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
