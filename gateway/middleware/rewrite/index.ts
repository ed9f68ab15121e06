import type { Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { hasDotSegment } from '../../router/path-normalise.ts';

/** The answer to a request the rewrite would turn into a path with a dot segment. */
const DOT_SEGMENT_MESSAGE = "the route's rewrite made a path with a . or .. segment of this request, which this gateway refuses";

/** Settings of the rewrite middleware: a regex and its replacement, with `$1`… and `$<name>` groups. */
export interface RewriteOptions {
  readonly pattern: string | RegExp;
  readonly replacement: string;
}

/**
 * Rewrites the upstream path (the query stays as it was) by replacing the first match of
 * `pattern` with `replacement`, as `String.prototype.replace` does; a path the pattern does not
 * match is left alone. A replacement that adds its own query gets the original query appended
 * with `&`; one that does not start with `/` gets a leading `/`. It expects a normalised path, as
 * routes and the request runner give it (on an entry point too); a rewritten path with a `.` or
 * `..` segment, a dot spelt `%2E` included (the router decodes it, see `hasDotSegment`), is refused
 * with 400 `rewritten-dot-segment`: the upstream gets a normalised path. The configuration refuses
 * a replacement that would make one in every path (`replacementDotSegment`); this check is the one
 * for those that depend on the request, and for callers that build the middleware themselves.
 */
export function rewrite(options: RewriteOptions): Middleware {
  const pattern = typeof options.pattern === 'string' ? new RegExp(options.pattern) : options.pattern;
  const { replacement } = options;
  return async function rewrite(context, next) {
    const before = context.upstream.path;
    const path = rewritePath(before, pattern, replacement);
    // The path was normalised before (a route's by routing, an entry point's by the request
    // runner): a dot segment now was made by the rewrite, from the client's own text (`/api/...json`
    // through `^/api/([^/]+)\.json$` → `/data/$1/public` gives `/data/../public`), and would climb
    // out of where the rewrite meant to keep the client. The output is checked one way whoever
    // wrote its dots: a path the normaliser refused reaches an entry point's rewrite as sent.
    if (path !== before && hasDotSegment(path)) return sendErrorAnswer(context, 400, 'rewritten-dot-segment', DOT_SEGMENT_MESSAGE);
    context.upstream.path = path;
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
