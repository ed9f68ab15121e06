import type { Middleware } from '../../context.ts';
import { matchesPrefix, stripLeading } from '../../router/route-compile.ts';

/**
 * Removes `prefix` from the upstream path when the path starts with it at a segment boundary
 * (`/api` strips `/api/x` to `/x` and `/api?q` to `/?q`, but leaves `/apix` alone). Routes with
 * `stripPrefix: true` need no such layer: the router already returns the stripped path; this one
 * serves chains built in code, e.g. after a regex route.
 */
export function stripPrefix(prefix: string): Middleware {
  const normalized = prefix.length > 1 ? prefix.replace(/\/+$/, '') : '';
  return async function stripPrefix(context, next) {
    const path = context.upstream.path;
    if (normalized !== '' && matchesPrefix(path, normalized)) context.upstream.path = stripLeading(path, normalized.length);
    await next();
  };
}
