import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.ts';
import { compareSpecificity, compileRoute, HostKind, matchesPrefix, stripLeading, type CompiledRoute } from './route-compile.ts';
import { meetsConditions, RouteTable } from './route-table.ts';

/** What the router looks at in a request. */
export interface RouteRequest {
  readonly method: string;
  /** The Host header (or `:authority`); port and case do not matter. */
  readonly host: string | undefined;
  /** The request target as received: path and query (`request.url`). */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

/** Where a request goes. */
export interface RouteMatch {
  readonly route: RouteConfig;
  /** The route's service, or for a namespace route the service named by the path. */
  readonly service: string;
  /** Path and query to send upstream, after strip-prefix or namespace mapping. */
  readonly path: string;
  /** The route's name, for logs and metrics. */
  readonly name: string;
}

/** What the router needs to know of the world. */
export interface RouterOptions {
  /** True when a service of that name exists (is declared or listed by a registry); asked by namespace routes only. */
  hasService(name: string): boolean;
}

/**
 * Routes requests by the most specific matching route (order in `compareSpecificity`), then,
 * when no route to a named service matches, by namespace routes: the first path segment after the
 * route's prefix names the service (`/greeter/say/hello` → `greeter`, `/say/hello`), as go-micro's
 * API gateway does, if `hasService` knows it. Routes are compiled once into a `RouteTable` (host
 * groups of segment trees), so a lookup costs the request's host labels and path segments rather
 * than the number of routes, and allocates only the match and a few segment strings. Immutable:
 * build a new router when the routes change.
 */
export class Router {
  /** Routes to a named service, most specific first. */
  readonly routes: readonly RouteConfig[];

  private readonly table: RouteTable;
  private readonly namespaces: readonly CompiledRoute[];
  private readonly usesHost: boolean;
  /** `hasService`, called as the options' method. */
  private readonly knows = (name: string): boolean => this.options.hasService(name);

  constructor(
    routes: readonly RouteConfig[],
    private readonly options: RouterOptions,
  ) {
    const compiled = routes.map(compileRoute).sort(compareSpecificity);
    const direct = compiled.filter((route) => !route.config.namespace);
    this.routes = direct.map((route) => route.config);
    this.namespaces = compiled.filter((route) => route.config.namespace);
    direct.forEach((route, order) => (route.order = order));
    this.table = new RouteTable(direct);
    this.usesHost = compiled.some((route) => route.hostKind !== HostKind.Any);
  }

  /** The route for `request`, or undefined when none matches (the caller answers 404). */
  route(request: RouteRequest): RouteMatch | undefined {
    return this.match(request, this.knows, true);
  }

  /**
   * Where a request that `route` left unmatched would go if every service were known: the first
   * namespace route whose host, conditions and prefix hold and whose path names a service, with
   * that service (which `hasService` does not know, or `route` would have taken it). A registry
   * that has not connected yet may list it: the caller tells "not known yet" from "no such path".
   * Asked only for a request that matched nothing, off the path of every routed one.
   */
  namespaceCandidate(request: RouteRequest): RouteMatch | undefined {
    return this.namespaces.length === 0 ? undefined : this.match(request, anyService, false);
  }

  /** The routes to named services first (when `direct`), then the namespace routes for a service `known` accepts. */
  private match(request: RouteRequest, known: (name: string) => boolean, direct: boolean): RouteMatch | undefined {
    let path = request.path;
    let hostHeader = request.host;
    if (path.charCodeAt(0) !== 47 /* / */) {
      // Absolute-form target (`GET http://host/path`), as a client talking to a proxy sends it.
      const absolute = parseAbsoluteTarget(path);
      if (!absolute) return undefined;
      ({ path, host: hostHeader } = absolute);
    }
    const host = this.usesHost ? normalizeHost(hostHeader) : '';
    const route = direct ? this.table.match(host, path, request) : undefined;
    if (route) {
      const config = route.config;
      const upstreamPath = config.stripPrefix && route.prefix !== undefined ? stripLeading(path, route.prefix.length) : path;
      return { route: config, service: config.service!, path: upstreamPath, name: config.name };
    }
    for (const route of this.namespaces) {
      if (!matchesHost(route, host) || !meetsConditions(route, request)) continue;
      if (route.prefix !== undefined && !matchesPrefix(path, route.prefix)) continue;
      const start = route.prefix?.length ?? 0;
      const match = namespaceMatch(route, path, start, known);
      if (match) return match;
    }
    return undefined;
  }
}

/** Any service name at all, for `Router.namespaceCandidate`. */
const anyService = (): boolean => true;

/** `path` from `start` must read `/<service>[/rest][?query]` with a service `known` accepts. */
function namespaceMatch(route: CompiledRoute, path: string, start: number, known: (name: string) => boolean): RouteMatch | undefined {
  if (path.charCodeAt(start) !== 47) return undefined;
  let end = start + 1;
  while (end < path.length) {
    const code = path.charCodeAt(end);
    if (code === 47 || code === 63) break;
    end += 1;
  }
  if (end === start + 1) return undefined;
  const service = namespaceService(path.slice(start + 1, end));
  if (service === undefined || !known(service)) return undefined;
  return { route: route.config, service, path: route.config.stripPrefix ? stripLeading(path, end) : path, name: route.config.name };
}

/**
 * Escapes of the characters a path segment may carry as they are (RFC 3986 sub-delims, `:`, `@`;
 * the normaliser has already decoded the unreserved ones) and of `/`. Routes match the path with
 * these escapes kept, so `/pay%3Av2` is not `/pay:v2` to a route on that prefix: decoded here, the
 * escaped spelling would reach service `pay:v2` through the namespace route, past that route's rules.
 */
const RAW_IN_SEGMENT_ESCAPE = /%(?:2[146-9A-Ca-cFf]|3[ABDabd]|40)/;

/**
 * The service a namespace route's path segment names: the segment percent-decoded, since the path
 * keeps escapes of reserved and non-ASCII characters while registries store names unescaped (a
 * ZooKeeper node `späce svc` is reached as `/sp%C3%A4ce%20svc/…`); undefined for a malformed escape,
 * or for an escaped character that the segment could carry as it is (`RAW_IN_SEGMENT_ESCAPE`).
 */
export function namespaceService(segment: string): string | undefined {
  if (!segment.includes('%')) return segment;
  if (RAW_IN_SEGMENT_ESCAPE.test(segment)) return undefined;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function matchesHost(route: CompiledRoute, host: string): boolean {
  if (route.hostKind === HostKind.Exact) return host === route.host;
  return route.hostKind !== HostKind.Wildcard || host.endsWith(route.host);
}

/** Compiles `routes` into a `Router`. */
export function createRouter(routes: readonly RouteConfig[], options: RouterOptions): Router {
  return new Router(routes, options);
}

/** Lowercased host without port or trailing dot; `[::1]:8080` becomes `[::1]`. */
export function normalizeHost(host: string | undefined): string {
  if (!host) return '';
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && host.indexOf(']', colon) === -1) end = colon;
  if (host.charCodeAt(end - 1) === 46 /* . */) end -= 1;
  return host.slice(0, end).toLowerCase();
}

function parseAbsoluteTarget(target: string): { path: string; host: string } | undefined {
  if (!/^https?:\/\//i.test(target)) return undefined;
  try {
    const url = new URL(target);
    return { path: `${url.pathname}${url.search}`, host: url.host };
  } catch {
    return undefined;
  }
}
