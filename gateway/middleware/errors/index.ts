import type { ErrorsSettings } from '../../config/types.ts';
import type { ErrorPage, ErrorPageLookup, Middleware } from '../../context.ts';

/**
 * Custom error pages (nginx's `error_page` with `proxy_intercept_errors`, HAProxy's `errorfile`,
 * Traefik's `errors` with pages from files): an answer of the inner layers whose status one of
 * `settings.pages` stands for (an upstream's 500, the gateway's own 502, 503 or 504, an inner
 * middleware's 429) keeps its status and its other headers (Retry-After…) and takes the page as its
 * body; the body it had is read and dropped, never buffered. The most specific page wins (`502`
 * before `5xx`). The pages were read when the configuration loaded, so using one cannot fail.
 * Answers of the layers around it, gRPC calls and upgrades are left as they are (`errorPageFor`); the
 * runner's 500 for a failure thrown inside it is not of those, and gets the page.
 */
export function errors(settings: ErrorsSettings): Middleware {
  const pages = settings.pages.map(({ from, to, body }) => ({ from, to, page: { body: body?.bytes ?? Buffer.alloc(0), contentType: settings.contentType } satisfies ErrorPage }));
  const lookup: ErrorPageLookup = (status) => pages.find(({ from, to }) => status >= from && status <= to)?.page;
  return async function errors(context, next) {
    const outer = context.errorPage;
    // Inside another `errors` (an entry point's around a route's), a status this one has no page for
    // keeps the outer one's: a route's "404" page does not take away its entry point's "5xx".
    context.errorPage = outer === undefined ? lookup : (status) => lookup(status) ?? outer(status);
    await next();
    // Not on a throw: the runner's 500 `internal` for a failure inside this layer is an answer of the
    // layers it covers, and takes its page as the gateway's other answers do.
    context.errorPage = outer;
  };
}
