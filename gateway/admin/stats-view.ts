// `/api/stats` (per service, route, consumer and instance summaries) and
// `/api/stats/services/<name>?window=5m` (per-second series by instance) over the gateway's flow statistics.
import { errorMessage } from '../../src/errors.ts';
import { emptyTotals, FLOW_RING_SECONDS, type FlowCounts, type FlowSeries, type FlowStats, type FlowTotals } from '../telemetry/index.ts';
import type { AdminSources } from './admin-sources.ts';

/** Seconds `rate` averages over. */
const RATE_SECONDS = 10;
/** Default window of a series request. */
const DEFAULT_WINDOW_SECONDS = FLOW_RING_SECONDS;

/** A JSON answer of the stats endpoints: the status and body, or an error with its stable code. */
export type StatsAnswer = { readonly status: 200; readonly body: unknown } | { readonly status: 400 | 404; readonly error: string; readonly message: string };

/** One series in `/api/stats`. */
export interface FlowSummary {
  /** Since the gateway (its primary) started. */
  readonly total: FlowCounts;
  /** The last 60 complete seconds. */
  readonly lastMinute: FlowCounts;
  /** Per-second average over the last 10 complete seconds. */
  readonly rate: FlowCounts;
  /** The current calendar minute, hour and day (UTC) from the store: with Redis, every gateway's sum; null when the store did not answer. */
  readonly minute: FlowCounts | null;
  readonly hour: FlowCounts | null;
  readonly day: FlowCounts | null;
}

/** True for the paths this module answers. */
export function isStatsPath(path: string): boolean {
  return path === '/api/stats' || path.startsWith('/api/stats/services/');
}

/** Answers a stats path; `now` is epoch milliseconds. */
export async function statsAnswer(sources: Pick<AdminSources, 'flow' | 'balancers'>, path: string, query: URLSearchParams, now = Date.now()): Promise<StatsAnswer> {
  const flow = sources.flow;
  if (!flow) return { status: 404, error: 'not-found', message: 'this gateway keeps no flow statistics' };
  // The last complete second: the roll runs just after each second ends.
  const end = Math.floor(now / 1_000) - 1;
  if (path === '/api/stats') return { status: 200, body: await summaries(flow, end) };
  const name = decodedName(path.slice('/api/stats/services/'.length));
  if (name === undefined) return { status: 400, error: 'bad-request', message: 'the service name in the path is not valid percent-encoding' };
  const window = parseWindow(query.get('window'));
  if (window === undefined) return { status: 400, error: 'bad-window', message: `window must be seconds or minutes up to ${FLOW_RING_SECONDS}s (e.g. 30s, 5m), not "${query.get('window')}"` };
  const service = flow.list('service').find((series) => series.name === name);
  if (!service && !sources.balancers.has(name)) return { status: 404, error: 'unknown-service', message: `no service named "${name}" has been seen` };
  const instances: Record<string, ReturnType<typeof seriesArrays>> = {};
  for (const instance of flow.list('instance', name)) instances[instance.name] = seriesArrays(instance, end, window);
  return { status: 200, body: { service: name, step: 1, window, start: end - window + 1, end, ...seriesArrays(service, end, window), instances } };
}

/** A path segment decoded; undefined for malformed percent-encoding (a client's mistake, not the gateway's failure). */
function decodedName(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** `30s`, `5m`, `120` (seconds) up to the ring's length; undefined when malformed or too long. */
export function parseWindow(text: string | null): number | undefined {
  if (text === null || text === '') return DEFAULT_WINDOW_SECONDS;
  const match = /^(\d+)(s|m)?$/.exec(text);
  if (!match) return undefined;
  const seconds = Number(match[1]) * (match[2] === 'm' ? 60 : 1);
  return seconds >= 1 && seconds <= FLOW_RING_SECONDS ? seconds : undefined;
}

async function summaries(flow: FlowStats, end: number): Promise<unknown> {
  let stored: Map<string, FlowTotals> | undefined;
  let storeError: string | null = null;
  try {
    stored = await flow.store.totals(end + 1);
  } catch (error) {
    storeError = errorMessage(error);
  }
  const summary = (series: FlowSeries): FlowSummary => {
    const lastMinute = series.sum(end, 60);
    const rate = series.sum(end, RATE_SECONDS);
    const totals = stored ? (stored.get(series.key) ?? emptyTotals()) : undefined;
    return {
      total: { ...series.total },
      lastMinute,
      rate: { requests: rate.requests / RATE_SECONDS, errors: rate.errors / RATE_SECONDS, bytesIn: rate.bytesIn / RATE_SECONDS, bytesOut: rate.bytesOut / RATE_SECONDS },
      minute: totals?.minute ?? null,
      hour: totals?.hour ?? null,
      day: totals?.day ?? null,
    };
  };
  const byName = (list: FlowSeries[]) => Object.fromEntries(list.map((series) => [series.name, summary(series)]));
  const instances: Record<string, Record<string, FlowSummary>> = {};
  for (const series of flow.list('instance')) (instances[series.service!] ??= {})[series.name] = summary(series);
  return {
    second: end,
    store: { kind: flow.store.kind, error: storeError },
    services: byName(flow.list('service')),
    routes: byName(flow.list('route')),
    consumers: byName(flow.list('consumer')),
    instances,
  };
}

/** The per-second values of `series` over the window ending with `end`, oldest first; zeros for a missing series. */
function seriesArrays(series: FlowSeries | undefined, end: number, window: number): { requests: number[]; errors: number[]; bytesIn: number[]; bytesOut: number[] } {
  const arrays = { requests: [] as number[], errors: [] as number[], bytesIn: [] as number[], bytesOut: [] as number[] };
  for (let second = end - window + 1; second <= end; second += 1) {
    arrays.requests.push(series?.at(second, 0) ?? 0);
    arrays.errors.push(series?.at(second, 1) ?? 0);
    arrays.bytesIn.push(series?.at(second, 2) ?? 0);
    arrays.bytesOut.push(series?.at(second, 3) ?? 0);
  }
  return arrays;
}
