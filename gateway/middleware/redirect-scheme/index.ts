import type { RedirectSchemeSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { closingUnreadBody, sendGatewayError } from '../../proxy/error-response.ts';

/** A Host header the Location may be built from: a name or IP literal with an optional port, nothing else. */
const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?$/;

const DEFAULT_PORTS: Readonly<Record<RedirectSchemeSettings['scheme'], number>> = { https: 443, http: 80 };

/**
 * Answers requests that did not arrive on `scheme` with a redirect to the same host, path and
 * query on it (Traefik's redirectScheme): 301/302 for GET and HEAD, 307/308 otherwise so the
 * method and body are kept; `permanent` picks 301/308 over 302/307. The port is `port`, left out
 * when it is the scheme's default or unset. A request already on `scheme` passes through. One
 * redirected while its body is still arriving over HTTP/1.1 gets the redirect with the connection
 * closing after it, as every answer the gateway gives by itself (`closingUnreadBody`).
 */
export function redirectScheme(settings: RedirectSchemeSettings): Middleware {
  const wantsSecure = settings.scheme === 'https';
  const port = settings.port === undefined || settings.port === DEFAULT_PORTS[settings.scheme] ? '' : `:${settings.port}`;
  return async function redirectScheme(context, next) {
    if (context.secure === wantsSecure) return next();
    const host = HOST_PATTERN.exec(hostOf(context));
    if (!host) return sendGatewayError(context, 'request-rejected');
    const keepsMethod = context.request.method !== 'GET' && context.request.method !== 'HEAD';
    const status = settings.permanent ? (keepsMethod ? 308 : 301) : keepsMethod ? 307 : 302;
    const location = `${settings.scheme}://${host[1]!}${port}${originalTarget(context.request.url ?? '/')}`;
    context.outcome.status = status;
    context.response.writeHead(status, { location, 'content-length': 0, 'x-request-id': context.requestId, ...closingUnreadBody(context) });
    context.response.end();
  };
}

function hostOf(context: GatewayContext): string {
  const { headers } = context.request;
  const host = headers.host ?? headers[':authority'];
  return typeof host === 'string' ? host : '';
}

/** The path and query as the client sent them (the route's prefix stripping and rewrites must not leak into the Location). */
function originalTarget(url: string): string {
  if (url.startsWith('/')) return url;
  try {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return '/';
  }
}
