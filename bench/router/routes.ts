import type { RouteRequest } from '../../gateway/router/index.ts';

/** Counts of each kind of route in the benchmark's configuration; 10,000 in all. */
export const ROUTE_MIX = { exactHosts: 100, prefixesPerHost: 95, wildcardHosts: 10, prefixesPerWildcard: 20, anyHostPrefixes: 200, regexes: 100 } as const;

/** One route as the configuration file spells it. */
type RouteEntry = Record<string, unknown>;

/**
 * A configuration with hosts × path prefixes (exact and wildcard hosts, and host-less prefixes)
 * and regex routes, as a gateway in front of many teams' services might carry.
 */
export function benchRoutes(): RouteEntry[] {
  const routes: RouteEntry[] = [];
  for (let host = 0; host < ROUTE_MIX.exactHosts; host += 1) {
    for (let prefix = 0; prefix < ROUTE_MIX.prefixesPerHost; prefix += 1) {
      routes.push({ host: `svc${host}.example.com`, path: prefixPath(prefix), service: `s${host}-${prefix}`, ...(prefix % 4 === 0 ? { stripPrefix: true } : {}), ...(prefix % 9 === 0 ? { methods: ['GET', 'HEAD'] } : {}) });
    }
  }
  for (let zone = 0; zone < ROUTE_MIX.wildcardHosts; zone += 1) {
    for (let prefix = 0; prefix < ROUTE_MIX.prefixesPerWildcard; prefix += 1) routes.push({ host: `*.zone${zone}.example.net`, path: prefixPath(prefix), service: `z${zone}-${prefix}` });
  }
  for (let prefix = 0; prefix < ROUTE_MIX.anyHostPrefixes; prefix += 1) routes.push({ path: `/shared/${prefixPath(prefix).slice(1)}`, service: `shared-${prefix}`, ...(prefix % 7 === 0 ? { headers: { 'x-canary': '1' } } : {}) });
  for (let regex = 0; regex < ROUTE_MIX.regexes; regex += 1) {
    routes.push(regex % 2 === 0 ? { pathRegex: `^/files/t${regex}/.*\\.json$`, service: `files-${regex}` } : { host: `svc${regex}.example.com`, pathRegex: `^/team${regex % 19}/svc${regex}/items/[0-9]+$`, service: `items-${regex}` });
  }
  return routes;
}

function prefixPath(prefix: number): string {
  return `/team${prefix % 19}/svc${prefix}${prefix % 3 === 0 ? '/v2' : ''}`;
}

/** The configuration file text for `benchRoutes()`. */
export function benchConfigText(): string {
  return `routes:\n${benchRoutes().map((route) => `  - ${JSON.stringify(route)}`).join('\n')}\n`;
}

/**
 * Requests over every kind of route: mostly exact-host prefixes with deeper paths and queries, then
 * wildcard hosts, host-less prefixes, regexes, and misses (unknown host or path, which answer 404
 * and are a linear scan's worst case). Deterministic.
 */
export function benchRequests(count: number): RouteRequest[] {
  return Array.from({ length: count }, (_, index) => {
    const kind = index % 10;
    const host = (index * 7) % ROUTE_MIX.exactHosts;
    const prefix = (index * 13) % ROUTE_MIX.prefixesPerHost;
    const base = { method: 'GET', headers: {} };
    if (kind < 6) return { ...base, host: `svc${host}.example.com`, path: `${prefixPath(prefix)}/items/${index}?page=${index % 5}` };
    if (kind === 6) return { ...base, host: `web${index}.zone${index % ROUTE_MIX.wildcardHosts}.example.net:8443`, path: `${prefixPath(index % ROUTE_MIX.prefixesPerWildcard)}/x` };
    if (kind === 7) return { ...base, host: 'edge.example.org', path: `/shared${prefixPath(index % ROUTE_MIX.anyHostPrefixes)}/y`, headers: index % 2 === 0 ? { 'x-canary': '1' } : {} };
    if (kind === 8) return index % 4 === 0 ? { ...base, host: 'cdn.example.org', path: `/files/t${(index * 2) % ROUTE_MIX.regexes}/a/b.json` } : { ...base, host: `svc${(index % 50) * 2 + 1}.example.com`, path: `/team${((index % 50) * 2 + 1) % 19}/svc${(index % 50) * 2 + 1}/items/${index}` };
    return index % 20 === 9 ? { ...base, host: 'unknown.example.com', path: `/nothing/here/${index}` } : { ...base, host: `svc${host}.example.com`, path: `/nope/${index}` };
  });
}
