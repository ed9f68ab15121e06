// What the redirecting middleware (`redirectScheme`, `redirectRegex`) share: the request's own URL and the redirect itself.
import type { GatewayContext } from '../../context.ts';
import { closingUnreadBody, sendOwnAnswer } from '../../proxy/error-response.ts';

/** A Host header the Location may be built from: a name or IP literal with an optional port, nothing else. */
const HOST_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?$/;

/** The request's Host (`:authority` over HTTP/2) split into its name and its `:port` (or ''); undefined when it is no host name. */
export function requestHost(context: GatewayContext): { readonly name: string; readonly port: string } | undefined {
  const { headers } = context.request;
  const host = headers.host ?? headers[':authority'];
  if (typeof host !== 'string') return undefined;
  const match = HOST_PATTERN.exec(host);
  return match ? { name: match[1]!, port: host.slice(match[1]!.length) } : undefined;
}

/** The path and query as the client sent them (the route's prefix stripping and rewrites must not leak into the Location). */
export function originalTarget(url: string): string {
  if (url.startsWith('/')) return url;
  try {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return '/';
  }
}

/**
 * Answers with a redirect to `location`: 301/302 for GET and HEAD, 307/308 otherwise so the method
 * and body are kept; `permanent` picks 301/308 over 302/307. One redirected while its body is still
 * arriving over HTTP/1.1 has that body handled as by every answer the gateway gives by itself
 * (`closingUnreadBody`: a small one read and dropped, any other closing the connection). The response header hooks of the layers
 * before it (a `headers` middleware's `response`, `hsts`) apply to it (`sendOwnAnswer`).
 */
export function sendRedirect(context: GatewayContext, location: string, permanent: boolean): void {
  const keepsMethod = context.request.method !== 'GET' && context.request.method !== 'HEAD';
  const status = permanent ? (keepsMethod ? 308 : 301) : keepsMethod ? 307 : 302;
  sendOwnAnswer(context, status, { location, 'content-length': 0, 'x-request-id': context.requestId, ...closingUnreadBody(context) });
}
