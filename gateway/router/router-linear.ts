// The router's previous matcher: routes tried one after the other in specificity order. Kept as
// the reference the route table must agree with (router-table.test.ts) and as the baseline that
// bench/router measures beside it; the gateway does not use it.
import type { RouteConfig } from '../config/types.ts';
import { compareSpecificity, compileRoute, HostKind, matchesPrefix, type CompiledRoute } from './route-compile.ts';
import { meetsConditions, type RouteConditions } from './route-table.ts';

/** Routes to a named service, tried in specificity order (namespace routes are left out). */
export class LinearRouteList {
  private readonly byHost = new Map<string, readonly CompiledRoute[]>();
  private readonly anyHost: readonly CompiledRoute[];

  constructor(routes: readonly RouteConfig[]) {
    const direct = routes.map(compileRoute).sort(compareSpecificity).filter((route) => !route.config.namespace);
    this.anyHost = direct.filter((route) => route.hostKind !== HostKind.Exact);
    for (const route of direct) {
      if (route.hostKind !== HostKind.Exact || this.byHost.has(route.host)) continue;
      this.byHost.set(route.host, [...direct.filter((other) => other.hostKind === HostKind.Exact && other.host === route.host), ...this.anyHost]);
    }
  }

  /** The first route that matches; `host` normalised, `path` origin-form with its query. */
  match(host: string, path: string, conditions: RouteConditions): RouteConfig | undefined {
    const candidates = this.byHost.get(host) ?? this.anyHost;
    let pathname: string | undefined;
    for (const route of candidates) {
      if (route.hostKind === HostKind.Exact ? host !== route.host : route.hostKind === HostKind.Wildcard && !host.endsWith(route.host)) continue;
      if (!meetsConditions(route, conditions)) continue;
      if (route.regex) {
        pathname ??= path.includes('?') ? path.slice(0, path.indexOf('?')) : path;
        if (!route.regex.test(pathname)) continue;
      } else if (route.prefix !== undefined && !matchesPrefix(path, route.prefix)) continue;
      return route.config;
    }
    return undefined;
  }
}
