import { metricsRegistry } from '../../src/metrics.ts';
import { nestedValue, type NestedMap } from '../../src/nested-map.ts';
import type { GatewayContext } from '../context.ts';
import { RATE_LIMIT_UNAVAILABLE } from '../middleware/rate-limit/index.ts';
import { answerStatusOf, grpcCallOf, GrpcStatus } from '../proxy/grpc-status.ts';
import { countsAgainstUpstream, STATUS_BY_CLASS, type GatewayErrorClass } from '../proxy/upstream-error.ts';
import type { FlowSeries } from './flow-series.ts';
import type { FlowStats } from './flow-stats.ts';
import { CellCounter, CellHistogram, type CounterCell, type HistogramCell } from './metric-cells.ts';

/** Request duration buckets in seconds: 1 ms to 30 s, dense where a proxy's answers usually fall. */
export const REQUEST_DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * Status label values: the class, not the code, so a series count stays bounded (routes × services ×
 * 6) whatever upstreams answer. `unknown` is a request that ended before any status was decided.
 */
export const STATUS_CLASSES = ['unknown', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Requests answered, by route name, service and status class; route and service are empty when nothing matched. */
export const requestsTotal = new CellCounter<'route' | 'service' | 'status'>(
  'switchboard_requests_total',
  'Requests answered, by route, service and status class (1xx-5xx).',
  ['route', 'service', 'status'],
  metricsRegistry,
);

/** Time from a request's arrival to the end of its response, by route and service. */
export const requestDurationSeconds = new CellHistogram<'route' | 'service'>(
  'switchboard_request_duration_seconds',
  'Time from the arrival of a request to the end of its response, by route and service.',
  ['route', 'service'],
  metricsRegistry,
  REQUEST_DURATION_BUCKETS_S,
);

/** Failed upstream attempts and requests no instance could take, by service and error class. */
export const upstreamErrorsTotal = new CellCounter<'service' | 'class'>(
  'switchboard_upstream_errors_total',
  'Failed upstream attempts (each retry counts) and requests no instance could take, by service and error class.',
  ['service', 'class'],
  metricsRegistry,
);

/** gRPC calls answered, by service, gRPC service, method and status code. */
export const grpcCallsTotal = new CellCounter<'service' | 'grpc_service' | 'grpc_method' | 'grpc_code'>(
  'switchboard_grpc_calls_total',
  'gRPC calls answered (by the upstream or the gateway), by service, gRPC service and method, and grpc-status code.',
  ['service', 'grpc_service', 'grpc_method', 'grpc_code'],
  metricsRegistry,
);

/** gRPC series (service, method and code) given labels of their own; the rest count as `other`, so clients cannot grow the series without end. */
const MAX_GRPC_METHODS = 1_000;

/**
 * Classes of the gateway's own failures and its own dependencies' (a `policy: redis` rate limit's
 * Redis away, a `forwardAuth` service that did not answer, `basicAuth`'s password checks queued
 * full, a route whose middleware could not be built): the client got a 5xx (or a gRPC
 * UNAVAILABLE), but the route's service was never asked, so the flow statistics count no error
 * for it ("blame only the guilty").
 */
const OWN_DEPENDENCY_FAILURES: ReadonlySet<string> = new Set([
  RATE_LIMIT_UNAVAILABLE,
  'auth-unavailable',
  'auth-busy',
  'route-unavailable',
  // Nor is an answer its client stopped reading, which the instance's send timeout then cut: a gRPC call's UNAVAILABLE.
  'client-slow-read',
]);

const upstreamErrorCell = (service: string, errorClass: string): CounterCell => upstreamErrorsTotal.cell({ service, class: errorClass });

/** The series of one route and service, kept so a request finds them with two Map lookups. */
interface RouteServiceCells {
  readonly statuses: (CounterCell | undefined)[];
  readonly duration: HistogramCell;
  readonly route: string;
  readonly service: string;
  /** Flow statistics series of the route and the service; undefined without flow statistics or when nothing matched. */
  readonly flowRoute: FlowSeries | undefined;
  readonly flowService: FlowSeries | undefined;
  /** The service's instance series by address (one lookup per request instead of two). */
  readonly flowInstances: ReadonlyMap<string, FlowSeries> | undefined;
}

/** The index into `STATUS_CLASSES` of an HTTP status. */
export function statusClassIndex(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
}

/**
 * Records finished requests into `switchboard_requests_total` and
 * `switchboard_request_duration_seconds`, and upstream failures into
 * `switchboard_upstream_errors_total`. Series are created on first use and then reused, so the
 * per-request cost is two Map lookups and a few additions.
 */
export class RequestMetrics {
  private readonly byRoute: NestedMap<string, string, RouteServiceCells> = new Map();
  private readonly errorsByService: NestedMap<string, string, CounterCell> = new Map();

  /** `flow`, when given, also gets every request's counts per route, service, consumer and (bytes) instance. */
  constructor(private readonly flow?: FlowStats) {}

  /** Records one request whose response has ended; called once per request at the end of the onion. */
  request(context: GatewayContext): void {
    const status = context.outcome.status || (context.response.headersSent ? context.response.statusCode : 0);
    const cells = this.cellsOf(context.routeName, context.service);
    const index = statusClassIndex(status);
    const counter = cells.statuses[index] ?? this.statusCell(cells, index);
    counter.value += 1;
    cells.duration.observe((performance.now() - context.startedAt) / 1_000);
    if (cells.flowService) this.recordFlow(context, cells, status);
    // Set for gRPC calls only: other requests pay this one test.
    if (context.outcome.grpcStatus !== undefined) this.grpcCall(context, context.outcome.grpcStatus);
  }

  /**
   * Counts an answer a listener gave by itself in `switchboard_requests_total` (`ListenerRefusal`:
   * 400, 408 or 431 to bytes that failed to parse or a head over the limits, an HTTP/2 reset counted
   * as 431, 405 to a CONNECT, 417 to an unmet Expect, 503 to an upgrade while draining), with the
   * empty route and service of a request that matched no route; not in the duration histogram, as
   * nothing timed a request no route saw.
   */
  refused(status: number): void {
    const cells = this.cellsOf('', '');
    const index = statusClassIndex(status);
    (cells.statuses[index] ?? this.statusCell(cells, index)).value += 1;
  }

  private readonly grpcCells = new Map<string, CounterCell>();
  private grpcMethods = 0;
  /** Service and path of the methods an upstream has answered, not with UNIMPLEMENTED: only they get labels of their own. */
  private readonly answeredMethods = new Set<string>();

  private grpcCall(context: GatewayContext, code: number): void {
    const path = context.upstream.path;
    const key = `${context.service}\u0000${code}\u0000${path}`;
    let cell = this.grpcCells.get(key);
    if (!cell) {
      const call = grpcCallOf(path);
      // A method name is the client's to make up: one that matched no route, that the gateway
      // refused, or that the server does not have would otherwise use up the series, and the
      // methods that exist would count as `other`. A method earns its labels by an upstream's answer.
      const method = `${context.service}\u0000${path}`;
      const upstreamAnswered = context.outcome.errorClass === undefined && code !== GrpcStatus.UNIMPLEMENTED;
      if (upstreamAnswered && call !== undefined && this.answeredMethods.size < MAX_GRPC_METHODS) this.answeredMethods.add(method);
      const known = call !== undefined && this.grpcMethods < MAX_GRPC_METHODS && this.answeredMethods.has(method);
      cell = grpcCallsTotal.cell({ service: context.service, grpc_service: known ? call.service : 'other', grpc_method: known ? call.method : 'other', grpc_code: String(code) });
      if (known) {
        this.grpcMethods += 1;
        this.grpcCells.set(key, cell);
      }
    }
    cell.value += 1;
  }

  /** The flow statistics part of `request`: four additions per series, a Map lookup for a consumer and one for the instance. */
  private recordFlow(context: GatewayContext, cells: RouteServiceCells, status: number): void {
    const outcome = context.outcome;
    const errorClass = outcome.errorClass;
    // Middleware name their own refusals (`forward-auth-denied`, a rate limit's); only the proxy's upstream classes are upstream errors.
    const upstreamFault = errorClass !== undefined && Object.hasOwn(STATUS_BY_CLASS, errorClass) && countsAgainstUpstream(errorClass as GatewayErrorClass);
    // A gRPC call its upstream failed inside an HTTP 200 (UNAVAILABLE…) is an error as a 5xx is.
    const grpcFailed = outcome.grpcStatus !== undefined && answerStatusOf(status, outcome.grpcStatus) >= 500;
    const error = (status >= 500 || upstreamFault || grpcFailed) && !(errorClass !== undefined && OWN_DEPENDENCY_FAILURES.has(errorClass)) ? 1 : 0;
    const declared = context.request.headers['content-length'];
    const bytesIn = declared === undefined ? 0 : Number(declared) || 0;
    const bytesOut = outcome.bytesOut;
    cells.flowService!.record(error, bytesIn, bytesOut);
    cells.flowRoute!.record(error, bytesIn, bytesOut);
    const consumer = context.get('consumer');
    if (consumer) this.flow!.of('consumer', consumer.name).record(error, bytesIn, bytesOut);
    // An instance's requests are its attempts (InstanceTraffic); the bytes go to the one that answered
    // last, none to one the last attempt never reached (dropped unsent from its transport's queue).
    const upstream = outcome.upstream;
    if (upstream !== undefined && outcome.unsent !== true) {
      const instance = cells.flowInstances!.get(upstream) ?? this.flow!.instance(cells.service, upstream);
      instance.bytesIn += bytesIn;
      instance.bytesOut += bytesOut;
    }
  }

  /**
   * Drops the cells kept for `service` (a forgotten service, whose series `forgetServiceSeries`
   * removes), so that a request of a service of that name later counts in new series.
   */
  forget(service: string): void {
    for (const byService of this.byRoute.values()) byService.delete(service);
    this.errorsByService.delete(service);
    const prefix = `${service}\u0000`;
    for (const key of [...this.grpcCells.keys()]) {
      if (!key.startsWith(prefix)) continue;
      this.grpcCells.delete(key);
      this.grpcMethods -= 1;
    }
    for (const method of [...this.answeredMethods]) if (method.startsWith(prefix)) this.answeredMethods.delete(method);
  }

  /** Counts one upstream failure of `service` of class `errorClass`. */
  upstreamError(service: string, errorClass: string): void {
    nestedValue(this.errorsByService, service, errorClass, upstreamErrorCell).value += 1;
  }

  private cellsOf(route: string, service: string): RouteServiceCells {
    return nestedValue(this.byRoute, route, service, this.newCells);
  }

  /** Made once, so that finding a known route and service allocates nothing. */
  private readonly newCells = (route: string, service: string): RouteServiceCells => {
    const flow = this.flow && route !== '' && service !== '' ? this.flow : undefined;
    return {
      statuses: [],
      duration: requestDurationSeconds.cell({ route, service }),
      route,
      service,
      flowRoute: flow?.of('route', route),
      flowService: flow?.of('service', service),
      flowInstances: flow?.instancesOf(service),
    };
  };

  private statusCell(cells: RouteServiceCells, index: number): CounterCell {
    const cell = requestsTotal.cell({ route: cells.route, service: cells.service, status: STATUS_CLASSES[index]! });
    cells.statuses[index] = cell;
    return cell;
  }
}
