import type { RouteConfig } from '../config/types.ts';

/** How a route's host condition matches; a higher value is more specific. */
export const HostKind = { Exact: 2, Wildcard: 1, Any: 0 } as const;

/** One of `HostKind`. */
export type HostKind = (typeof HostKind)[keyof typeof HostKind];

/** A route prepared for matching: everything a request is compared with is precomputed. */
export interface CompiledRoute {
  readonly config: RouteConfig;
  readonly hostKind: HostKind;
  /** The exact host, or the wildcard's suffix with its dot (`.example.com`); empty for any host. */
  readonly host: string;
  /** Path prefix to match by segments; undefined when the route matches every path (none, `/` or a regex). */
  readonly prefix: string | undefined;
  readonly regex: RegExp | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** Place in the router's specificity order (0 is tried first), set once the router has sorted its routes. */
  order: number;
}

/** Prepares one route for matching. */
export function compileRoute(config: RouteConfig): CompiledRoute {
  const host = config.host;
  const wildcard = host?.startsWith('*.') ?? false;
  return {
    config,
    hostKind: host === undefined ? HostKind.Any : wildcard ? HostKind.Wildcard : HostKind.Exact,
    host: host === undefined ? '' : wildcard ? host.slice(1) : host,
    prefix: config.path === undefined || config.path === '/' ? undefined : config.path,
    regex: config.pathRegex === undefined ? undefined : new RegExp(config.pathRegex),
    methods: config.methods && new Set(config.methods),
    headers: Object.entries(config.headers ?? {}),
    order: 0,
  };
}

/**
 * Orders routes most specific first; ties keep file order. Compared in turn:
 * 1. host: exact, then wildcard (longer suffix first), then none;
 * 2. path: a regex, then prefixes longest first, then none (`/` counts as none): a regex is
 *    written to carve out a case, so it beats any prefix, as in nginx and Kong;
 * 3. more header conditions first;
 * 4. a method condition before none.
 */
export function compareSpecificity(a: CompiledRoute, b: CompiledRoute): number {
  return (
    b.hostKind - a.hostKind ||
    b.host.length - a.host.length ||
    pathRank(b) - pathRank(a) ||
    b.headers.length - a.headers.length ||
    Number(b.methods !== undefined) - Number(a.methods !== undefined) ||
    a.config.index - b.config.index
  );
}

function pathRank(route: CompiledRoute): number {
  if (route.regex) return Number.MAX_SAFE_INTEGER;
  return route.prefix?.length ?? 0;
}

/** True when `path` (path and query) starts with `prefix` at a segment boundary: `/api` matches `/api`, `/api/x`, `/api?q`, not `/apix`. */
export function matchesPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length) return true;
  const next = path.charCodeAt(prefix.length);
  return next === 47 /* / */ || next === 63 /* ? */;
}

/** `path` without its first `length` characters, as an absolute path: `/api/user?x` minus `/api/user` is `/?x`. */
export function stripLeading(path: string, length: number): string {
  if (length === 0) return path;
  const rest = path.slice(length);
  if (rest === '') return '/';
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
}

/** Routes in the order the router tries them: routes to a named service most specific first, then namespace routes likewise. */
export function routesInMatchOrder(routes: readonly RouteConfig[]): RouteConfig[] {
  const compiled = routes.map(compileRoute).sort(compareSpecificity);
  return [...compiled.filter((route) => !route.config.namespace), ...compiled.filter((route) => route.config.namespace)].map((route) => route.config);
}
