import { emptyCounts, FLOW_KEY_SEPARATOR, FLOW_RING_SECONDS, FlowSeries, type FlowCounts, type FlowKind } from './flow-series.ts';
import { MemoryFlowStore, type FlowStore } from './flow-store.ts';

/** Series beyond this many share one `(other)` series per kind, so a flood of names cannot exhaust memory (each series is about 12 KB). */
export const FLOW_MAX_SERIES = 4_096;
/** Name of the series that takes the counts of new names once `FLOW_MAX_SERIES` is reached. */
export const FLOW_OVERFLOW_NAME = '(other)';

/** One rolled second of one series as it travels from a worker to the primary: `[kind, name, service, requests, errors, bytesIn, bytesOut]`. */
export type WireFlowEntry = readonly [FlowKind, string, string | null, number, number, number, number];

/** Where a worker sends its rolled seconds instead of keeping them. */
export type FlowSink = (second: number, entries: WireFlowEntry[]) => void;

/** Options of `FlowStats`. */
export interface FlowStatsOptions {
  /** Minute, hour and day totals; this process's memory by default. */
  readonly store?: FlowStore;
  /** Set in a worker: rolled seconds go there (to the primary), and no ring is kept here. */
  readonly sink?: FlowSink;
  readonly maxSeries?: number;
}

/**
 * Flow statistics of a gateway: a `FlowSeries` per service, route, consumer and instance. The data
 * path records into series it looked up once (see `RequestMetrics`, `InstanceTraffic`); one timer
 * per process, aligned to whole seconds, rolls every series' pending counts into its ring and the
 * store (or, in a worker, sends them to the primary, which adds them to its own rings).
 */
export class FlowStats {
  readonly store: FlowStore;
  private readonly sink: FlowSink | undefined;
  private readonly maxSeries: number;
  private readonly series = new Map<string, FlowSeries>();
  private readonly byKind = new Map<Exclude<FlowKind, 'instance'>, Map<string, FlowSeries>>([
    ['service', new Map()],
    ['route', new Map()],
    ['consumer', new Map()],
  ]);
  private readonly instances = new Map<string, Map<string, FlowSeries>>();
  /** Instance series whose instance left, and service series of forgotten services; dropped once their traffic is out of the ring. */
  private readonly retired = new Set<FlowSeries>();
  /** Forgotten services whose instance series have not all gone yet: their map goes with the last one. */
  private readonly forgotten = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly reattach = (series: FlowSeries) => this.attach(series);

  constructor(options: FlowStatsOptions = {}) {
    this.store = options.store ?? new MemoryFlowStore();
    this.sink = options.sink;
    this.maxSeries = options.maxSeries ?? FLOW_MAX_SERIES;
  }

  /** The series of service, route or consumer `name`, created on first use; callers keep it. */
  of(kind: Exclude<FlowKind, 'instance'>, name: string): FlowSeries {
    const map = this.byKind.get(kind)!;
    return map.get(name) ?? this.create(kind, name, undefined, map);
  }

  /** The series of instance `address` of `service`: two Map lookups, no allocation once created. */
  instance(service: string, address: string): FlowSeries {
    const map = this.instancesOf(service);
    return map.get(address) ?? this.create('instance', address, service, map);
  }

  /**
   * The instance series of `service` by address, a Map that lives until the service is forgotten
   * (`forget`): callers may keep it and look addresses up in it, and look up those it lacks with
   * `instance` (which, once the Map went, makes a new one).
   */
  instancesOf(service: string): ReadonlyMap<string, FlowSeries> & Map<string, FlowSeries> {
    let map = this.instances.get(service);
    if (!map) {
      map = new Map();
      this.instances.set(service, map);
    }
    return map;
  }

  /**
   * Marks the instance series of `service` not in `addresses` as gone: they stay in charts until
   * their traffic leaves the ring. The service is listed (its health was reported), so a service
   * of that name forgotten before is not any more.
   */
  retire(service: string, addresses: Iterable<string>): void {
    this.revive(service);
    const map = this.instances.get(service);
    if (!map) return;
    const kept = new Set(addresses);
    for (const [address, series] of map) {
      if (kept.has(address)) this.retired.delete(series);
      else this.retired.add(series);
    }
  }

  /**
   * Retires the series of `service` (a forgotten service): its service series and those of its
   * instances stay in charts until their traffic leaves the ring, then go with their store totals
   * and the service's instance map, so that names that churn neither grow memory nor, past
   * `maxSeries`, push the services that follow into the overflow series.
   */
  forget(service: string): void {
    this.retire(service, []);
    const series = this.byKind.get('service')!.get(service);
    if (series) this.retired.add(series);
    const map = this.instances.get(service);
    if (map?.size === 0) this.instances.delete(service);
    else if (map) this.forgotten.add(service);
  }

  /** Starts the roll timer, aligned just after each whole second; idempotent. */
  start(now: () => number = Date.now): void {
    if (this.timer) return;
    const tick = () => {
      const at = now();
      this.roll(Math.floor(at / 1_000) - 1);
      this.timer = setTimeout(tick, 1_005 - (at % 1_000));
      this.timer.unref();
    };
    this.timer = setTimeout(tick, 1_005 - (now() % 1_000));
    this.timer.unref();
  }

  /** Stops the roll timer, rolls what is pending, and closes the store. */
  async stop(now = Date.now()): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.roll(Math.floor(now / 1_000));
    await this.store.close();
  }

  /** Moves every series' pending counts into epoch second `second` (or to the sink); drops retired series whose traffic left the ring. */
  roll(second: number): void {
    const entries: WireFlowEntry[] | undefined = this.sink ? [] : undefined;
    const counts = emptyCounts();
    for (const series of this.series.values()) {
      if (!series.dirty) continue;
      counts.requests = counts.errors = counts.bytesIn = counts.bytesOut = 0;
      series.takePending(counts);
      if (entries) {
        series.lastActive = second;
        entries.push([series.kind, series.name, series.service ?? null, counts.requests, counts.errors, counts.bytesIn, counts.bytesOut]);
      } else this.addSecond(series, second, counts);
    }
    if (entries && entries.length > 0) this.sink!(second, entries);
    for (const series of this.retired) {
      if (series.lastActive > second - FLOW_RING_SECONDS) continue;
      this.retired.delete(series);
      this.detach(series);
    }
  }

  /** Adds a worker's rolled second (primary side); malformed entries are skipped. */
  addRemote(second: number, entries: readonly WireFlowEntry[]): void {
    if (typeof second !== 'number' || !Array.isArray(entries)) return;
    for (const entry of entries) {
      if (!Array.isArray(entry) || typeof entry[1] !== 'string' || !entry.slice(3, 7).every((value) => typeof value === 'number')) continue;
      const [kind, name, service, requests, errors, bytesIn, bytesOut] = entry;
      let series: FlowSeries;
      if (kind === 'instance' && typeof service === 'string') series = this.instance(service, name);
      else if (kind === 'service' || kind === 'route' || kind === 'consumer') series = this.of(kind, name);
      else continue;
      this.addSecond(series, second, { requests, errors, bytesIn, bytesOut });
    }
  }

  /** Every series of `kind` (instances: of `service` when given). */
  list(kind: FlowKind, service?: string): FlowSeries[] {
    if (kind !== 'instance') return [...this.byKind.get(kind)!.values()];
    if (service !== undefined) return [...(this.instances.get(service)?.values() ?? [])];
    return [...this.instances.values()].flatMap((map) => [...map.values()]);
  }

  private addSecond(series: FlowSeries, second: number, counts: FlowCounts): void {
    series.addAt(second, counts);
    this.store.add(series.key, second, counts);
  }

  /** `service` counts again: its series are no longer on their way out (its instances' follow `retire`). */
  private revive(service: string): void {
    this.forgotten.delete(service);
    const series = this.byKind.get('service')!.get(service);
    if (series) this.retired.delete(series);
  }

  private create(kind: FlowKind, name: string, service: string | undefined, map: Map<string, FlowSeries>): FlowSeries {
    if (this.series.size >= this.maxSeries && name !== FLOW_OVERFLOW_NAME) {
      return kind === 'instance' ? this.instance(service!, FLOW_OVERFLOW_NAME) : this.of(kind, FLOW_OVERFLOW_NAME);
    }
    const key = flowKey(kind, name, service);
    const series = new FlowSeries(key, kind, name, service, this.reattach);
    map.set(name, series);
    this.series.set(key, series);
    return series;
  }

  /** Drops a series that went (its instance left, its service was forgotten) with its totals in the store. */
  private detach(series: FlowSeries): void {
    series.detached = true;
    this.series.delete(series.key);
    this.store.drop(series.key);
    const map = series.kind === 'instance' ? this.instances.get(series.service!) : this.byKind.get(series.kind);
    if (map?.get(series.name) === series) map.delete(series.name);
    if (series.kind === 'instance' && map?.size === 0 && this.forgotten.delete(series.service!)) this.instances.delete(series.service!);
  }

  /** A dropped series the data path still held recorded again: it comes back, or hands its counts to the one that replaced it. */
  private attach(series: FlowSeries): void {
    const current = this.series.get(series.key);
    if (current && current !== series) {
      series.takePending(current);
      return;
    }
    series.detached = false;
    this.series.set(series.key, series);
    const map = series.kind === 'instance' ? this.instances.get(series.service!) ?? new Map<string, FlowSeries>() : this.byKind.get(series.kind)!;
    if (series.kind === 'instance') this.instances.set(series.service!, map);
    map.set(series.name, series);
  }
}

/** The store key of a series: its kind, its service for an instance, and its name. */
export function flowKey(kind: FlowKind, name: string, service?: string): string {
  return kind === 'instance' ? `${kind}${FLOW_KEY_SEPARATOR}${service}${FLOW_KEY_SEPARATOR}${name}` : `${kind}${FLOW_KEY_SEPARATOR}${name}`;
}
