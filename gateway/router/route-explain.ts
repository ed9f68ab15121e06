import type { IncomingHttpHeaders } from 'node:http';
import { headerHasValue } from '../../src/header-list.ts';
import { isCredentialHeader, REDACTED } from '../config/redaction.ts';
import type { RouteConfig } from '../config/types.ts';
import { compileRoute, HostKind, matchesPrefix, routesInMatchOrder, type CompiledRoute } from './route-compile.ts';
import { createRouter, namespaceService, normalizeHost, type RouteMatch } from './router.ts';

/** One route as compared with a request: empty `misses` means every condition holds. */
export interface RouteVerdict {
  readonly name: string;
  readonly namespace: boolean;
  /** Each condition the request fails, in words (`host "a.test" is not "b.test"`). */
  readonly misses: readonly string[];
}

/** Why a request goes where it goes: the router's own answer and every route's verdict, in match order. */
export interface RouteExplanation {
  /** The router's answer (the same router the data plane builds), undefined for a 404. */
  readonly match: RouteMatch | undefined;
  /** Without a match, where a namespace route would send the request if its path's service were known (`Router.namespaceCandidate`). */
  readonly candidate: RouteMatch | undefined;
  readonly verdicts: readonly RouteVerdict[];
}

/** What the explainer compares routes with. */
export interface ExplainRequest {
  readonly method: string;
  readonly host: string;
  /** Normalised origin-form path with its query. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

/**
 * Explains routing for `request` over `routes` (those of one entry point): the match comes from a
 * real `Router`, so the explanation cannot disagree with traffic; the verdicts re-check each
 * condition one by one only to say why the other routes did not match. Off the data path: it
 * compiles the routes on every call.
 */
export function explainRoute(routes: readonly RouteConfig[], request: ExplainRequest, hasService: (name: string) => boolean): RouteExplanation {
  const router = createRouter(routes, { hasService });
  const routed = { method: request.method, host: request.host, path: request.path, headers: request.headers };
  const match = router.route(routed);
  const host = normalizeHost(request.host);
  const verdicts = routesInMatchOrder(routes).map((config) => {
    const route = compileRoute(config);
    return { name: config.name, namespace: config.namespace, misses: missesOf(route, host, request, hasService) };
  });
  return { match, candidate: match ? undefined : router.namespaceCandidate(routed), verdicts };
}

function missesOf(route: CompiledRoute, host: string, request: ExplainRequest, hasService: (name: string) => boolean): string[] {
  const misses: string[] = [];
  if (route.hostKind === HostKind.Exact && host !== route.host) misses.push(`host "${host}" is not "${route.host}"`);
  if (route.hostKind === HostKind.Wildcard && !host.endsWith(route.host)) misses.push(`host "${host}" is not under "*${route.host}"`);
  const query = request.path.indexOf('?');
  const pathname = query === -1 ? request.path : request.path.slice(0, query);
  if (route.regex && !route.regex.test(pathname)) misses.push(`path "${pathname}" does not match /${route.regex.source}/`);
  if (route.prefix !== undefined && !matchesPrefix(request.path, route.prefix)) misses.push(`path "${pathname}" is not under "${route.prefix}"`);
  if (route.methods && !route.methods.has(request.method)) misses.push(`method ${request.method} is not one of ${[...route.methods].join(', ')}`);
  for (const [name, value] of route.headers) if (!headerHasValue(request.headers[name], value)) misses.push(`header ${name} does not hold "${isCredentialHeader(name) ? REDACTED : value}"`);
  if (route.config.namespace && misses.length === 0) {
    const start = route.prefix?.length ?? 0;
    const segment = /^\/([^/?]+)/.exec(request.path.slice(start))?.[1];
    const service = segment === undefined ? undefined : namespaceService(segment);
    if (service === undefined) misses.push('the path names no service after the prefix');
    else if (!hasService(service)) misses.push(`no service "${service}" is declared or listed by a registry`);
  }
  return misses;
}
