// One flow statistics series (a service, a route, a consumer or one instance of a service): counters
// the data path adds to, rolled once a second into a ring of one-second slots. Recording is four
// additions on plain fields; no clock is read and nothing is allocated per request.

/** Requests, errors and body bytes of one series over some span. */
export interface FlowCounts {
  requests: number;
  /** Requests answered 5xx or cut by an upstream fault (the one classification of upstream errors). */
  errors: number;
  /** Request body bytes the clients declared (`Content-Length`). */
  bytesIn: number;
  /** Response body bytes sent to the clients. */
  bytesOut: number;
}

/** What a series is: its dimension and name; an instance series names its service too. */
export type FlowKind = 'service' | 'route' | 'consumer' | 'instance';

/** Seconds the ring keeps: the dashboard's five-minute chart. */
export const FLOW_RING_SECONDS = 300;

/** Counts set to zero, a fresh object. */
export function emptyCounts(): FlowCounts {
  return { requests: 0, errors: 0, bytesIn: 0, bytesOut: 0 };
}

/** Adds `from` into `into`. */
export function addCounts(into: FlowCounts, from: FlowCounts): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
}

/**
 * A series: `pending` counts since the last roll (written per request), a ring of the last
 * `FLOW_RING_SECONDS` seconds (four values per slot, each slot stamped with its epoch second so that
 * a stale slot reads as zero and is cleared lazily), and the total since the gateway started.
 */
export class FlowSeries implements FlowCounts {
  requests = 0;
  errors = 0;
  bytesIn = 0;
  bytesOut = 0;
  readonly total: FlowCounts = emptyCounts();
  /** Epoch second of the last roll that carried traffic; idle series can be dropped after the window. */
  lastActive = 0;
  /** Set when its owner dropped it; the next record re-attaches it (the data path may still hold it). */
  detached = false;
  private readonly slots = new Float64Array(FLOW_RING_SECONDS * 4);
  private readonly stamps = new Float64Array(FLOW_RING_SECONDS).fill(-1);

  constructor(
    /** Unique key (`kind`, then the names, joined by `FLOW_KEY_SEPARATOR`). */
    readonly key: string,
    readonly kind: FlowKind,
    readonly name: string,
    /** The service of an instance series; `name` is then its address. */
    readonly service: string | undefined,
    private readonly reattach: (series: FlowSeries) => void,
  ) {}

  /** Counts one request; `error` is 0 or 1. Allocation-free. */
  record(error: number, bytesIn: number, bytesOut: number): void {
    this.requests += 1;
    this.errors += error;
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    if (this.detached) this.reattach(this);
  }

  /** True when something was recorded since the last roll. */
  get dirty(): boolean {
    return this.requests !== 0 || this.errors !== 0 || this.bytesIn !== 0 || this.bytesOut !== 0;
  }

  /** Moves the pending counts into `into` (when given) and zeroes them. */
  takePending(into?: FlowCounts): void {
    if (into) addCounts(into, this);
    this.requests = 0;
    this.errors = 0;
    this.bytesIn = 0;
    this.bytesOut = 0;
  }

  /** Adds `counts` to the slot of epoch second `second` and to the total. */
  addAt(second: number, counts: FlowCounts): void {
    const slot = second % FLOW_RING_SECONDS;
    const base = slot * 4;
    if (this.stamps[slot] !== second) {
      this.stamps[slot] = second;
      this.slots.fill(0, base, base + 4);
    }
    this.slots[base]! += counts.requests;
    this.slots[base + 1]! += counts.errors;
    this.slots[base + 2]! += counts.bytesIn;
    this.slots[base + 3]! += counts.bytesOut;
    addCounts(this.total, counts);
    if (counts.requests > 0 || counts.bytesOut > 0 || counts.bytesIn > 0) this.lastActive = Math.max(this.lastActive, second);
  }

  /** Value `field` (0 requests, 1 errors, 2 bytes in, 3 bytes out) of epoch second `second`; 0 once it left the ring. */
  at(second: number, field: 0 | 1 | 2 | 3): number {
    const slot = second % FLOW_RING_SECONDS;
    return this.stamps[slot] === second ? this.slots[slot * 4 + field]! : 0;
  }

  /** The sums over the `seconds` seconds ending with `end` (inclusive). */
  sum(end: number, seconds: number): FlowCounts {
    const counts = emptyCounts();
    for (let second = end - Math.min(seconds, FLOW_RING_SECONDS) + 1; second <= end; second += 1) {
      counts.requests += this.at(second, 0);
      counts.errors += this.at(second, 1);
      counts.bytesIn += this.at(second, 2);
      counts.bytesOut += this.at(second, 3);
    }
    return counts;
  }
}

/** Joins a series key's parts: a control character no route, service or consumer name holds. */
export const FLOW_KEY_SEPARATOR = '\u001f';
