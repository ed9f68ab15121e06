// The router: compiled routes, most specific first, with go-micro style namespace routes as the fallback.
export { compareSpecificity, matchesPrefix, routesInMatchOrder, stripLeading } from './route-compile.ts';
export { createRouter, normalizeHost, Router } from './router.ts';
export type { RouteMatch, RouteRequest, RouterOptions } from './router.ts';
