import type { ProviderStatus } from '../../src/discovery/provider.ts';
import type { EntryPointConfig, GatewayConfig, RouteConfig } from '../config/index.ts';
import { plainIp } from '../config/ip-range.ts';
import { rewritePath } from '../middleware/rewrite/index.ts';
import { entryPointsWaitingForRestart } from '../restart-only-changes.ts';
import { normalisePath } from '../router/index.ts';
import { hasDotSegment } from '../router/path-normalise.ts';
import { explainRoute, type RouteVerdict } from '../router/route-explain.ts';
import type { AdminSources } from './admin-sources.ts';
import { serviceView, type InstanceView } from './service-view.ts';

/** At most this many near misses are listed: the routes a reader would check first. */
const MAX_NEAR_MISSES = 10;

/** One layer a request passes through, outermost first. */
export interface ExplainLayer {
  /** `global`, `entryPoint` (its named middleware), `route` (the route's own edits) or `named` (the route's named middleware). */
  readonly scope: 'global' | 'entryPoint' | 'route' | 'named';
  readonly name: string;
  /** The kind of a named middleware (`rateLimit`, `jwtAuth`…), else the layer itself. */
  readonly kind: string;
}

/** The body of `GET /api/explain`. */
export interface ExplainView {
  /** `path` normalised; `routedPath` the path the router reads: `path` after the entry point's `rewrite` middleware (`path` without any). */
  readonly request: { readonly method: string; readonly host: string; readonly path: string; readonly routedPath: string; readonly entryPoint: string };
  /** What the gateway would answer without asking an upstream: `proxy`, or why not (`no-route`, a path refusal, `no-instances`, `entry-point-not-listening`…); `tcp-forward` for a removed tcp entry point that still listens. */
  readonly outcome: string;
  readonly route: { readonly name: string; readonly namespace: boolean; readonly service: string; readonly upstreamPath: string } | null;
  /** Routes that failed on one condition only, or matched but a more specific route won; each with why not. */
  readonly nearMisses: readonly { readonly name: string; readonly reasons: readonly string[] }[];
  readonly middleware: readonly ExplainLayer[];
  readonly service: { readonly name: string; readonly declared: boolean; readonly balancer: string; readonly panic: boolean } | null;
  readonly instances: readonly Pick<InstanceView, 'id' | 'address' | 'weight' | 'effectiveWeight' | 'health' | 'routable' | 'inFlight' | 'draining'>[];
  /** The instance the balancer would pick now (not counted); null when none would be. */
  readonly pick: { readonly id: string; readonly address: string } | null;
  /** Caveats: with several workers, each keeps its own rotation, and this is the primary's view. */
  readonly notes: readonly string[];
}

/** An HTTP method or header name (RFC 9110 §5.6.2 token). */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A query `explainView` cannot answer: the HTTP status and message to send. */
export class ExplainQueryError extends Error {
  readonly code = 'SB_EXPLAIN_QUERY';
}

/**
 * Answers "where would this request go, and why" from the running gateway's state: the entry
 * point's rewrites, routing by the same router as traffic, then the service's instances with their
 * health and weights, and the balancer's `peek()` (which counts nothing and moves no rotation).
 * It makes no data-plane state: a subset balancer no request has made yet is peeked through a
 * scratch copy (`ServiceBalancers.withReadOnlyPicker`), so asking never changes what traffic gets.
 */
export function explainView(sources: AdminSources, statuses: readonly ProviderStatus[], query: URLSearchParams): ExplainView {
  const listening = sources.listening?.() ?? sources.config();
  const asked = query.get('entryPoint');
  const removed = asked === null || sources.config().entryPoints.some((entryPoint) => entryPoint.name === asked) ? undefined : listening.entryPoints.find((entryPoint) => entryPoint.name === asked);
  if (removed) return explainRemoved(sources, statuses, query, removed);
  const view = explainInForce(sources, statuses, query);
  const name = view.request.entryPoint;
  if (!entryPointsWaitingForRestart(listening, sources.config()).includes(name)) return view;
  // A reload added or changed this entry point: its listener runs as the gateway started it.
  if (!listening.entryPoints.some((entryPoint) => entryPoint.name === name)) {
    return { ...view, outcome: 'entry-point-not-listening', pick: null, notes: [...view.notes, `entry point "${name}" was added by a reload and listens only after a restart: no request reaches it yet; the rest shows what it will do then`] };
  }
  return { ...view, notes: [...view.notes, `entry point "${name}" changed on reload: it listens as the gateway started it (address, protocol, certificates) until a restart, and serves by the configuration in force`] };
}

/**
 * An entry point a reload removed: its listener runs until a restart. The request handler finds no
 * router and no middleware of its name in the configuration in force, so an HTTP request on it gets
 * the global middleware and a 404 `no-route` (after the path checks); a tcp one reads the settings
 * it started with for each connection (`tcpHandler`), so it still forwards to its started service.
 */
function explainRemoved(sources: AdminSources, statuses: readonly ProviderStatus[], query: URLSearchParams, removed: EntryPointConfig): ExplainView {
  const view = explainInForce(sources, statuses, query, removed);
  const since = `entry point "${removed.name}" was removed by a reload and still listens until a restart`;
  if (removed.protocol === 'tcp') {
    return { ...view, outcome: 'tcp-forward', pick: null, notes: [...view.notes, `${since}: it forwards each new connection to ${removed.tcp?.service === undefined ? 'the services of its sni table' : `service "${removed.tcp.service}" (or its sni services)`} by the tcp settings it started with, not by HTTP routing`] };
  }
  return { ...view, notes: [...view.notes, `${since}: the configuration in force has no routes or middleware for it, so every request on it is answered 404 no-route (after the global middleware and path checks)`] };
}

/**
 * The explanation by the configuration in force alone, as if every entry point in it listened;
 * `removed`, an entry point a reload removed, is explained as traffic on its listener is served.
 */
function explainInForce(sources: AdminSources, statuses: readonly ProviderStatus[], query: URLSearchParams, removed?: EntryPointConfig): ExplainView {
  const config = sources.config();
  const method = (query.get('method') ?? 'GET').toUpperCase();
  if (!HTTP_TOKEN.test(method)) throw new ExplainQueryError(`method=${JSON.stringify(method)} is not an HTTP method (a token such as GET or PURGE)`);
  const host = query.get('host') ?? '';
  const rawPath = query.get('path');
  if (!rawPath || !rawPath.startsWith('/')) throw new ExplainQueryError('path= is required and must start with "/"');
  const entryPoint = query.get('entryPoint') ?? config.entryPoints[0]!.name;
  const entry = removed ? { ...removed, middlewares: [] } : config.entryPoints.find((candidate) => candidate.name === entryPoint);
  if (!entry) throw new ExplainQueryError(`no entry point "${entryPoint}" (known: ${config.entryPoints.map((point) => point.name).join(', ')})`);
  const headers = headersOf(query.getAll('header'));
  const notes = sources.workers ? ['several workers: each keeps its own balancer rotation; the pick is that of the primary\'s balancer'] : [];
  const normalised = normalisePath(rawPath, config.paths);
  const path = typeof normalised === 'string' ? normalised : rawPath;
  const globalLayers = globalMiddleware(config);
  const entryLayers = entry.middlewares.map((name) => named(config, 'entryPoint', name));
  // The entry point's rewrites run before routing, on the normalised path (as sent when it fails
  // normalisation), and the router normalises what they make, as the request runner does.
  const entryRewrite = rewrite(rewritesOf(config, entry.middlewares), path);
  const routed = entryRewrite.path === path ? normalised : normalisePath(entryRewrite.path, config.paths);
  const base = { request: { method, host, path, routedPath: typeof routed === 'string' ? routed : entryRewrite.path, entryPoint }, notes };
  const unrouted = { route: null, nearMisses: [], service: null, instances: [], pick: null };
  // Answered 405 after the global layers, before any other (`answeredTrace`), as traffic is.
  if (method === 'TRACE' && !config.forwardTrace) return { ...base, ...unrouted, outcome: 'method-not-allowed', middleware: globalLayers };
  if (entryRewrite.refused) return { ...base, ...unrouted, outcome: 'rewritten-dot-segment', middleware: [...globalLayers, ...entryLayers] };
  if (typeof routed !== 'string') return { ...base, ...unrouted, outcome: routed.error, middleware: globalLayers };
  const routes = removed ? [] : config.routes.filter((route) => route.entryPoints === undefined || route.entryPoints.includes(entryPoint));
  const { match, candidate, verdicts } = explainRoute(routes, { method, host, path: routed, headers }, (name) => sources.balancers.has(name));
  const nearMisses = verdicts
    .filter((verdict) => verdict.name !== match?.name && (verdict.misses.length === 1 || (verdict.misses.length === 0 && match)))
    .slice(0, MAX_NEAR_MISSES)
    .map((verdict) => ({ name: verdict.name, reasons: reasonsOf(verdict, match?.name) }));
  if (!match) {
    // As traffic answers it: a namespace route's service that a registry not yet connected may list is 503 `no-instances`, not 404.
    const unconnected = candidate ? sources.balancers.unconnectedRegistriesOf(candidate.service) : [];
    const unrouted = { ...base, nearMisses, middleware: [...globalLayers, ...entryLayers], service: null, instances: [], pick: null };
    if (!candidate || unconnected.length === 0) return { ...unrouted, outcome: 'no-route', route: null };
    const route = { name: candidate.name, namespace: candidate.route.namespace, service: candidate.service, upstreamPath: upstreamPathOf(config, candidate.route, candidate.path).path };
    return { ...unrouted, outcome: 'no-instances', route, notes: [...notes, `service "${candidate.service}" is not known yet: registr${unconnected.length === 1 ? 'y' : 'ies'} ${unconnected.join(', ')} not yet connected, so namespace route "${candidate.name}" is answered 503 rather than 404 until then`] };
  }
  const byProvider = new Map(statuses.map((status) => [status.provider, status]));
  const service = serviceView(sources, match.service, byProvider);
  // Hashed on the path traffic is hashed on (a consistent-hash `key: path` reads the rewritten one).
  const { path: upstreamPath, refused } = upstreamPathOf(config, match.route, match.path);
  // A rewrite that made a dot segment is answered 400 before any pick, as traffic is. Read only:
  // `pickerFor` would make the subset balancers of a route no request has taken yet.
  // The client IP as the forwarding step leaves it for traffic (`::ffff:192.0.2.1` is `192.0.2.1`), so a hash on it picks alike.
  const context = { url: upstreamPath, headers, clientIp: plainIp(query.get('clientIp') ?? '') };
  const peeked = refused ? undefined : sources.balancers.withReadOnlyPicker(match.service, match.route, (picker) => picker?.peek(context));
  const outcome = refused ? 'rewritten-dot-segment' : peeked === undefined ? 'no-instances' : peeked.kind === 'endpoint' ? 'proxy' : peeked.reason;
  // As traffic's 503 says it: no instance because the registries have not answered yet, not because none is registered.
  const unconnected = outcome === 'no-instances' ? sources.balancers.unconnectedRegistriesOf(match.service) : [];
  if (unconnected.length > 0) notes.push(`no instance set loaded yet for service "${match.service}": registr${unconnected.length === 1 ? 'y' : 'ies'} ${unconnected.join(', ')} not yet connected`);
  return {
    ...base,
    outcome,
    route: { name: match.name, namespace: match.route.namespace, service: match.service, upstreamPath },
    nearMisses,
    middleware: [...globalLayers, ...entryLayers, ...routeLayers(config, match.route)],
    service: { name: service.name, declared: service.declared, balancer: service.balancer, panic: service.panic },
    instances: service.instances.map(({ id, address, weight, effectiveWeight, health, routable, inFlight, draining }) => ({ id, address, weight, effectiveWeight, health, routable, inFlight, draining })),
    pick: peeked?.kind === 'endpoint' ? { id: peeked.instance.id, address: peeked.address } : null,
    notes,
  };
}

function reasonsOf(verdict: RouteVerdict, winner: string | undefined): string[] {
  if (verdict.misses.length > 0) return [...verdict.misses];
  return [`matches too, but "${winner}" comes first (more specific${verdict.namespace ? ', or a route to a named service before namespace routes' : ''})`];
}

/**
 * `name: value` pairs from `header=` parameters, lower-cased names as node:http gives them. One
 * without a `name:` is refused: skipped, it would explain another request than the one asked about.
 */
function headersOf(pairs: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of pairs) {
    const colon = pair.indexOf(':');
    const name = pair.slice(0, Math.max(colon, 0)).trim();
    if (!HTTP_TOKEN.test(name)) throw new ExplainQueryError(`header=${JSON.stringify(pair)} is not "name: value" with an HTTP header name`);
    headers[name.toLowerCase()] = pair.slice(colon + 1).trim();
  }
  return headers;
}

function globalMiddleware(config: GatewayConfig): ExplainLayer[] {
  const layers: ExplainLayer[] = [
    { scope: 'global', name: 'requestId', kind: 'requestId' },
    { scope: 'global', name: 'forwarded', kind: 'forwarded' },
  ];
  if (config.accessLog) layers.push({ scope: 'global', name: 'accessLog', kind: 'accessLog' });
  return layers;
}

function named(config: GatewayConfig, scope: 'entryPoint' | 'named', name: string): ExplainLayer {
  return { scope, name, kind: config.middlewares.get(name)?.kind ?? 'unknown' };
}

/**
 * The path the upstream gets: the router's (prefix stripped, namespace mapped), then the route's
 * `rewrite` and its named `rewrite` middleware in list order, as the request runner applies them
 * (the router's path alone named a path no upstream would see on a route that rewrites); `refused`
 * when one of them makes a dot segment, which the rewrite middleware answers with 400 (`path` is then
 * the path it refused).
 */
function upstreamPathOf(config: GatewayConfig, route: RouteConfig, routed: string): RewrittenPath {
  return rewrite([...(route.rewrite ? [route.rewrite] : []), ...rewritesOf(config, route.middlewares)], routed);
}

interface RewriteSettings {
  readonly pattern: string;
  readonly replacement: string;
}

interface RewrittenPath {
  readonly path: string;
  readonly refused: boolean;
}

/** The settings of the `rewrite` middleware among `names`, in list order. */
function rewritesOf(config: GatewayConfig, names: readonly string[]): RewriteSettings[] {
  const rewrites: RewriteSettings[] = [];
  for (const name of names) {
    const middleware = config.middlewares.get(name);
    if (middleware?.kind === 'rewrite') rewrites.push(middleware.settings);
  }
  return rewrites;
}

/** `path` through `rewrites` in order, as the rewrite middleware does; `refused` at the first that makes a dot segment. */
function rewrite(rewrites: readonly RewriteSettings[], path: string): RewrittenPath {
  let current = path;
  for (const { pattern, replacement } of rewrites) {
    const rewritten = rewritePath(current, new RegExp(pattern), replacement);
    if (rewritten !== current && hasDotSegment(rewritten)) return { path: rewritten, refused: true };
    current = rewritten;
  }
  return { path: current, refused: false };
}

/** The route's own edits in the order `routeMiddleware` runs them, then its named middleware. */
function routeLayers(config: GatewayConfig, route: RouteConfig): ExplainLayer[] {
  const layers: ExplainLayer[] = [];
  if (route.namespace) layers.push({ scope: 'route', name: 'namespace', kind: 'namespace' });
  else if (route.stripPrefix) layers.push({ scope: 'route', name: 'stripPrefix', kind: 'stripPrefix' });
  if (route.rewrite) layers.push({ scope: 'route', name: 'rewrite', kind: 'rewrite' });
  if (route.requestHeaders || route.responseHeaders || route.hostHeader !== 'pass') layers.push({ scope: 'route', name: 'headers', kind: 'headers' });
  if (route.subset) layers.push({ scope: 'route', name: 'subset', kind: 'subset' });
  if (route.canary) layers.push({ scope: 'route', name: 'canary', kind: 'canary' });
  layers.push(...route.middlewares.map((name) => named(config, 'named', name)));
  return layers;
}
