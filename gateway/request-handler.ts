import { upstreamPolicy, serviceSettings, type GatewayConfig, type RouteConfig } from './config/index.ts';
import { afterResponse, QUEUED_WHEN_CLOSED, type ClientRequest, type ClientResponse, type ContextVariables, type GatewayContext, type QueuedResponse } from './context.ts';
import { compose, CONSUMER_HEADER, globalSteps, NamedMiddlewareRegistry, REAL_IP_HEADER, REQUEST_ID_HEADER, routeMiddleware, servingCachedHits, UNTRUSTED_FORWARDING_HEADERS, type AccessLogDestination } from './middleware/index.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../src/logger.ts';
import { noInstancesMessage, sendErrorAnswer, sendGatewayError } from './proxy/error-response.ts';
import { cutByDrain } from './entrypoints/drain-cut.ts';
import { CLIENT_SUBJECT_HEADER, CLIENT_VERIFY_HEADER, setClientCertificateHeaders, stripClientCertificateHeaders } from './proxy/client-certificate.ts';
import { otherSpellingsRemover } from './proxy/header-spellings.ts';
import { clientUpstreamHeaders } from './proxy/hop-by-hop.ts';
import { RouteMirror, withMirror } from './proxy/mirror.ts';
import { answeredTrace } from './proxy/trace-method.ts';
import type { MirrorSender } from './proxy/mirror-send.ts';
import type { ProxyDependencies, ProxyPolicy } from './proxy/proxy.ts';
import { createRouter, normalisePath, prepareRequestTarget, type RouteRequest, type Router, type RouterOptions } from './router/index.ts';
import type { RequestTrace, RequestTracer } from './telemetry/tracing/index.ts';

/** Runs one request through the whole onion; never rejects. */
export type RequestRunner = (context: GatewayContext) => Promise<void>;

/** What a handler needs besides the configuration. */
export interface HandlerDependencies {
  /** The proxy (or the upgrade proxy) at the centre of each route's chain. */
  readonly proxy: (context: GatewayContext) => Promise<void>;
  hasService(service: string): boolean;
  /**
   * The registries not yet connected while none has given `service` an instance set
   * (`DiscoveryAggregator.unconnectedRegistriesOf`): a request a namespace route would take for a
   * service no registry has listed yet gets 503 `no-instances` naming them, not 404. None when absent.
   */
  unconnectedRegistriesOf?(service: string): readonly string[];
  readonly accessLogger?: AccessLogDestination;
  /** Called once per request after the onion has finished with it (the response has ended); for metrics. Must not throw. */
  readonly onRequestEnd?: (context: GatewayContext) => void;
  /**
   * The named middleware, already updated to this configuration; it outlives configurations so
   * that their state survives reloads. A fresh one built from `config.middlewares` when left out.
   */
  readonly namedMiddleware?: NamedMiddlewareRegistry;
  /** Traces every request when tracing is on; undefined costs a request nothing. */
  readonly tracer?: RequestTracer | undefined;
  /** Sends the copies of routes with `mirror`; left out, no route mirrors (upgrades are never mirrored). */
  readonly mirrors?: MirrorSender | undefined;
}

/**
 * Builds the onion for one configuration: global middleware (request id, forwarding, access log)
 * around the entry point's named middleware, around routing, and per route its own middleware,
 * then its named middleware in list order, around the proxy. Built once per configuration, so a
 * reload swaps the whole handler while requests in flight finish on the old one.
 */
export function createRequestRunner(config: GatewayConfig, dependencies: HandlerDependencies): RequestRunner {
  const routers = routersByEntryPoint(config, { hasService: (name) => dependencies.hasService(name) });
  const registry = dependencies.namedMiddleware ?? freshRegistry(config);
  // Looked up now, not on a route's first request: by then a reload may have moved the registry on.
  const hasCache = [...config.middlewares.values()].some((middleware) => middleware.kind === 'cache');
  const named = new Map(config.routes.filter((route) => route.middlewares.length > 0).map((route) => [route, registry.resolve(route.middlewares)]));
  // A client's other spellings of the headers a route matched on (`X_Tenant` beside `X-Tenant`), and
  // of its canary lanes' headers, whose presence or absence chose the upstream: a CGI-style upstream
  // reads both as HTTP_X_TENANT, and may believe the one the router never looked at.
  const conditionSpellings = new Map(config.routes.flatMap((route) => {
    const laneHeaders = (route.canary?.lanes ?? []).flatMap((lane) => (lane.header === undefined ? [] : [lane.header]));
    const remove = otherSpellingsRemover([...Object.keys(route.headers ?? {}), ...laneHeaders]);
    return remove ? [[route, remove] as const] : [];
  }));
  const routeChains = new Map<RouteConfig, (context: GatewayContext) => Promise<void>>();
  const chainOf = (route: RouteConfig) => {
    let chain = routeChains.get(route);
    if (!chain && route.unavailable !== undefined) {
      // Never proxied, and never counted against an upstream: the gateway's own configuration is at fault.
      const reason = route.unavailable;
      chain = async (context) => sendErrorAnswer(context, 503, 'route-unavailable', reason, { 'retry-after': '1' });
      routeChains.set(route, chain);
    }
    if (!chain) {
      const inline = routeMiddleware(route, config);
      const namedLayers = named.get(route);
      // Only a mirrored route's chain holds the mirror: the others pay nothing for the feature.
      const mirrors = dependencies.mirrors;
      const mirrored = route.mirror && mirrors ? withMirror(new RouteMirror(route.name, route.mirror, mirrors), dependencies.proxy) : dependencies.proxy;
      // A cache's hit is sent here, after every layer of the chain let it through; without a cache declared, nothing is wrapped.
      const proxy = hasCache ? servingCachedHits(mirrored) : mirrored;
      chain = compose(namedLayers ? [...inline, ...namedLayers] : inline, proxy);
      routeChains.set(route, chain);
    }
    return chain;
  };
  /**
   * A request no route takes: 404 `no-route`, unless a namespace route would take it for a service
   * that a registry not yet connected may list (the gateway started before it answered): then 503
   * `no-instances` naming those registries, with Retry-After, as a declared service's answer says,
   * so a client retries rather than believe the path does not exist. The route's name goes to the
   * log and metrics, never the client's segment (a label per made-up name would be unbounded).
   */
  const unrouted = (context: GatewayContext, router: Router | undefined, target: RouteRequest): void => {
    const candidate = router?.namespaceCandidate(target);
    const unconnected = (candidate && dependencies.unconnectedRegistriesOf?.(candidate.service)) ?? [];
    if (!candidate || unconnected.length === 0) return sendGatewayError(context, 'no-route');
    context.routeName = candidate.name;
    sendGatewayError(context, 'no-instances', noInstancesMessage(unconnected));
  };
  const routing = (context: GatewayContext): Promise<void> | void => {
    if (!prepareRequestTarget(context, config.paths)) return;
    const { request } = context;
    const router = routers.get(context.entryPoint);
    const target = { method: context.upstream.method, host: request.headers.host ?? '', path: context.upstream.path, headers: request.headers };
    const match = router?.route(target);
    if (!match) return unrouted(context, router, target);
    context.service = match.service;
    context.routeName = match.name;
    context.route = match.route;
    context.upstream.path = match.path;
    conditionSpellings.get(match.route)?.(context.upstream.headers, context.underscoreNames);
    return chainOf(match.route)(context);
  };
  // An entry point's own middleware (a redirect to https, say) run before routing, so they apply to every path.
  const entryChain = (names: readonly string[]) => {
    const chain = compose(registry.resolve(names), async (context) => routing(context));
    // They see the path as a route's middleware do, normalised: a rewrite there matches the path the
    // router will read and is checked as on a route (the client's own `./` let a `..` it made pass,
    // and the router then climbed with it). A path the normaliser refuses stays as sent, for the
    // router to refuse after them, as before.
    return (context: GatewayContext): Promise<void> => {
      const path = normalisePath(context.upstream.path, config.paths);
      if (typeof path === 'string') context.upstream.path = path;
      return chain(context);
    };
  };
  const entryChains = new Map(config.entryPoints.map((entryPoint) => [entryPoint.name, entryPoint.middlewares.length > 0 ? entryChain(entryPoint.middlewares) : routing]));
  // The global layers (request id, forwarding, access log) are plain calls around the rest: the
  // same order as `globalMiddleware`, without a promise and closures per layer and request.
  const global = globalSteps(config, dependencies.accessLogger ? { accessLogger: dependencies.accessLogger } : {});
  const logAccess = global.after;
  const onRequestEnd = dependencies.onRequestEnd;
  const tracer = dependencies.tracer;
  const forwardTrace = config.forwardTrace;
  const finish = (context: GatewayContext, failed: boolean): void => {
    // An answer still queued behind an earlier pipelined one has reached nobody yet, ended or not:
    // what it records waits for its 'close' (sent, or its connection broke: `QUEUED_WHEN_CLOSED`).
    if (!context.response.destroyed && waitsItsTurn(context)) return void context.response.once('close', () => record(context, failed));
    record(context, failed);
  };
  const record = (context: GatewayContext, failed: boolean): void => {
    if (context.response.destroyed) {
      recordQueuedWhenClosed(context);
      recordCutByDrain(context);
    }
    logAccess?.(context, failed);
    context.trace?.end(context);
    if (onRequestEnd === undefined) return;
    // A compressed answer's encoder may still hold its last bytes when the upstream's answer has
    // ended: its metrics wait for the response's end, as the access log does, so `bytesOut` is whole.
    afterResponse(context.response, onRequestEnd, context);
  };
  const fail = (context: GatewayContext, error: unknown): void => {
    context.log.error({ err: error instanceof Error ? error.message : String(error) }, 'request failed inside the gateway');
    try {
      sendGatewayError(context, 'internal');
    } catch {
      // The answer itself was refused (what failed left the response unfit to answer): the
      // client's connection or stream is cut instead, rather than a rejection nobody handles.
      context.response.destroy();
    }
    finish(context, true);
  };
  // Not an async function: the chain's own promise, followed by one `then`, is the request's only
  // promise here (an async function would add its own, an await and a resumption per request).
  return (context) => {
    let done: Promise<void> | void;
    try {
      global.before(context);
      if (tracer !== undefined) context.trace = tracer.start(context);
      // An upgrade whose connection broke while it waited behind an earlier answer runs no layer:
      // nothing is sent for it (no upstream connects for nothing), and it is recorded 499 as such.
      if (context.response.destroyed && (context.response as QueuedResponse)[QUEUED_WHEN_CLOSED] === true) {
        finish(context, false);
        return RESOLVED;
      }
      // Before any layer adds to the request: what a TRACE answer could echo is the client's alone.
      if (answeredTrace(context, forwardTrace)) {
        finish(context, false);
        return RESOLVED;
      }
      done = (entryChains.get(context.entryPoint) ?? routing)(context);
    } catch (error) {
      fail(context, error);
      return RESOLVED;
    }
    if (done === undefined) {
      finish(context, false);
      return RESOLVED;
    }
    return done.then(
      () => finish(context, false),
      (error: unknown) => fail(context, error),
    );
  };
}

/**
 * A request whose answer was still queued behind an earlier pipelined one when its connection broke
 * (`QUEUED_WHEN_CLOSED`) records what its client got, nothing: 499 `cancelled` and no bytes, not the
 * upstream's head and body written into an answer that was never sent.
 */
function recordQueuedWhenClosed(context: GatewayContext): void {
  if ((context.response as QueuedResponse)[QUEUED_WHEN_CLOSED] !== true) return;
  context.outcome.status = 499;
  context.outcome.errorClass = 'cancelled';
  context.outcome.bytesOut = 0;
}

/**
 * A request the drain deadline cut (`shutdown.drainTimeout`) records the gateway's doing, not a
 * client that left: `drain-timeout`, and 503 if no answer had started (the status the gateway gives
 * what it cannot serve while it stops), so it counts among the 5xx an operator watches at a deploy,
 * not among 499s. Its attempt stays `cancelled`, counted against no instance.
 */
function recordCutByDrain(context: GatewayContext): void {
  if (context.outcome.errorClass !== 'cancelled' || !cutByDrain(context.response)) return;
  context.outcome.errorClass = 'drain-timeout';
  if (context.outcome.status === 499) context.outcome.status = 503;
}

/**
 * Whether the HTTP/1.1 answer of `context` is queued behind an earlier pipelined one: Node gives it
 * no socket until that one is sent, and holds what is written into it meanwhile (`writableFinished`
 * stays false, where an answer sent and let go of has no socket either). An upgrade's response
 * has none once its tunnel took the socket (its line waits for the tunnel by itself, its metrics
 * and trace do not). HTTP/2 answers are never queued, and are not asked: their `socket` getter
 * makes a proxy object.
 */
function waitsItsTurn(context: GatewayContext): boolean {
  const response = context.response as ServerResponse;
  return context.request.httpVersionMajor !== 2 && response.socket === null && !response.writableFinished && (context.request as IncomingMessage & { upgrade?: boolean }).upgrade !== true;
}

/** The answer of a request finished without a promise of its own. */
const RESOLVED: Promise<void> = Promise.resolve();

function freshRegistry(config: GatewayConfig): NamedMiddlewareRegistry {
  const registry = new NamedMiddlewareRegistry();
  registry.update(config);
  return registry;
}

/**
 * One router per entry point, holding only the routes whose `entryPoints` filter lets that entry
 * point in, so a request pays one map lookup for the filter instead of a scan of the routes.
 */
function routersByEntryPoint(config: GatewayConfig, options: RouterOptions): Map<string, Router> {
  const routers = new Map<string, Router>();
  for (const { name } of config.entryPoints) {
    routers.set(name, createRouter(config.routes.filter((route) => route.entryPoints === undefined || route.entryPoints.includes(name)), options));
  }
  return routers;
}

/** The proxy policy of a request: the service's settings with the matched route's overrides. */
export function policyResolver(getConfig: () => GatewayConfig): ProxyDependencies['policyFor'] {
  // Route objects belong to one configuration, so a reload starts a fresh cache by itself.
  const cache = new WeakMap<RouteConfig, Map<string, ProxyPolicy>>();
  return (context) => {
    const route = context.route;
    if (!route) return upstreamPolicy(serviceSettings(getConfig(), context.service), undefined, context.service);
    let byService = cache.get(route);
    if (!byService) {
      byService = new Map();
      cache.set(route, byService);
    }
    let policy = byService.get(context.service);
    if (!policy) {
      policy = upstreamPolicy(serviceSettings(getConfig(), context.service), route, context.service);
      byService.set(context.service, policy);
    }
    return policy;
  };
}

/**
 * Removes a client's own spellings with `_` of the headers the gateway states on every route:
 * `X-Consumer`, the client-certificate headers, `X-Request-Id` and the forwarding headers (a trusted proxy never
 * writes `X_Forwarded_For` either; one that passes a client's on is no reason to keep it).
 */
const removeGatewayHeaderSpellings = otherSpellingsRemover([CONSUMER_HEADER, CLIENT_VERIFY_HEADER, CLIENT_SUBJECT_HEADER, REAL_IP_HEADER, REQUEST_ID_HEADER, ...UNTRUSTED_FORWARDING_HEADERS])!;

/** One request's context; a class so that its shape is fixed and its logger is made only when used. */
class RequestContext implements GatewayContext {
  requestId = '';
  clientIp: string;
  readonly startedAt = performance.now();
  service = '';
  routeName = '';
  route: RouteConfig | undefined = undefined;
  readonly upstream: GatewayContext['upstream'];
  readonly underscoreNames: boolean;
  readonly responseHeaderHooks: GatewayContext['responseHeaderHooks'] = [];
  readonly responseBodyTransforms: GatewayContext['responseBodyTransforms'] = [];
  responseEncoder: GatewayContext['responseEncoder'] = undefined;
  errorPage: GatewayContext['errorPage'] = undefined;
  responseTapper: GatewayContext['responseTapper'] = undefined;
  answerReplacer: GatewayContext['answerReplacer'] = undefined;
  cacheAtProxy: GatewayContext['cacheAtProxy'] = undefined;
  grpcWeb: GatewayContext['grpcWeb'] = undefined;
  // Every field present from the start, so each request's objects share one shape (V8 map).
  outcome: GatewayContext['outcome'] = { status: 0, errorClass: undefined, upstream: undefined, attempts: 0, bytesOut: 0, cacheStatus: undefined, upstreamStatus: undefined };
  trace: RequestTrace | undefined = undefined;
  private boundLog: Logger | undefined;
  // Made on the first `set`: most requests carry no variables.
  private variables: Map<PropertyKey, unknown> | undefined;

  constructor(
    readonly request: ClientRequest,
    readonly response: ClientResponse,
    private readonly baseLog: Logger,
    readonly entryPoint: string,
    readonly secure: boolean,
    clientCertificate: boolean,
  ) {
    this.clientIp = request.socket.remoteAddress ?? '';
    const headers = clientUpstreamHeaders(request.headers);
    // X-Consumer is this gateway's word on who an authentication middleware identified: a client's own
    // is never passed on, on a route without authentication either (an upstream behind several routes
    // would believe it). Deleted only when there, which keeps the usual headers object out of dictionary mode.
    if (headers[CONSUMER_HEADER] !== undefined) delete headers[CONSUMER_HEADER];
    stripClientCertificateHeaders(headers);
    // Spelt with underscores too: CGI-style upstreams (PHP, Rack, WSGI) read x_consumer as HTTP_X_CONSUMER.
    this.underscoreNames = removeGatewayHeaderSpellings(headers);
    if (clientCertificate) setClientCertificateHeaders(headers, request.socket);
    this.upstream = { method: request.method ?? 'GET', path: request.url ?? '/', headers, host: undefined, useInstanceHost: undefined };
  }

  get log(): Logger {
    // A pino child per request is measurable at 10k req/s; bind the id only when something logs.
    this.boundLog ??= this.baseLog.child({ requestId: this.requestId });
    return this.boundLog;
  }

  set<Key extends keyof ContextVariables>(key: Key, value: ContextVariables[Key]): void {
    (this.variables ??= new Map()).set(key, value);
  }

  get<Key extends keyof ContextVariables>(key: Key): ContextVariables[Key] | undefined {
    return this.variables?.get(key) as ContextVariables[Key] | undefined;
  }
}

/** Where a request came in: its entry point's name, whether the connection is TLS, and whether that entry point checks client certificates (`tls.clientAuth`). */
export interface RequestOrigin {
  readonly entryPoint: string;
  readonly secure: boolean;
  readonly clientCertificate?: boolean;
}

/** A fresh context for a request; its `log` carries the request id once request-id has set it. */
export function createContext(request: ClientRequest, response: ClientResponse, log: Logger, origin: RequestOrigin = { entryPoint: 'web', secure: false }): GatewayContext {
  return new RequestContext(request, response, log, origin.entryPoint, origin.secure, origin.clientCertificate ?? false);
}
