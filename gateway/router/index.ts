// The router: compiled routes, most specific first, with go-micro style namespace routes as the fallback.
export { compareSpecificity, matchesPrefix, routesInMatchOrder, stripLeading } from './route-compile.ts';
export { createRouter, normalizeHost, Router } from './router.ts';
export type { RouteMatch, RouteRequest, RouterOptions } from './router.ts';
export { normalisePath } from './path-normalise.ts';
export type { EscapedSlashAction, PathErrorCode, PathError, PathNormalisation } from './path-normalise.ts';
export { prepareRequestTarget, splitAbsoluteTarget, toOriginForm } from './request-target.ts';
export type { RequestTargetErrorCode } from './request-target.ts';
