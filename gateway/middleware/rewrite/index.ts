import type { Middleware } from '../../context.ts';

/** Settings of the rewrite middleware: a regex and its replacement, with `$1`… and `$<name>` groups. */
export interface RewriteOptions {
  readonly pattern: string | RegExp;
  readonly replacement: string;
}

/**
 * Rewrites the upstream path (the query stays as it was) by replacing the first match of
 * `pattern` with `replacement`, as `String.prototype.replace` does; a path the pattern does not
 * match is left alone. A replacement that adds its own query gets the original query appended
 * with `&`; one that does not start with `/` gets a leading `/`.
 */
export function rewrite(options: RewriteOptions): Middleware {
  const pattern = typeof options.pattern === 'string' ? new RegExp(options.pattern) : options.pattern;
  const { replacement } = options;
  return async function rewrite(context, next) {
    context.upstream.path = rewritePath(context.upstream.path, pattern, replacement);
    await next();
  };
}

/** `path` (with its query) after the rewrite described at `rewrite`. */
export function rewritePath(path: string, pattern: RegExp, replacement: string): string {
  const query = path.indexOf('?');
  const pathname = query === -1 ? path : path.slice(0, query);
  pattern.lastIndex = 0;
  let rewritten = pathname.replace(pattern, replacement);
  if (rewritten === pathname) return path;
  if (rewritten.charCodeAt(0) !== 47) rewritten = `/${rewritten}`;
  if (query === -1) return rewritten;
  return `${rewritten}${rewritten.includes('?') ? '&' : '?'}${path.slice(query + 1)}`;
}
