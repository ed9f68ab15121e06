import type { RedirectSchemeSettings } from '../../config/types.ts';
import type { GatewayContext, Middleware } from '../../context.ts';
import { sendErrorAnswer } from '../../proxy/error-response.ts';
import { STATUS_BY_CLASS } from '../../proxy/upstream-error.ts';
import { originalTarget, requestHost, sendRedirect } from './redirect.ts';

const DEFAULT_PORTS: Readonly<Record<RedirectSchemeSettings['scheme'], number>> = { https: 443, http: 80 };

/**
 * Answers requests that did not arrive on `scheme` with a redirect to the same host, path and
 * query on it (Traefik's redirectScheme), with the status `sendRedirect` picks. The port is `port`,
 * left out when it is the scheme's default or unset. A request already on `scheme` passes through;
 * one without a Host (HTTP/1.0, HTTP/2 without `:authority`) or whose Host is no host name is
 * answered 400 `request-rejected`, with a message that says so: there is nothing to redirect to.
 */
export function redirectScheme(settings: RedirectSchemeSettings): Middleware {
  const wantsSecure = settings.scheme === 'https';
  const port = settings.port === undefined || settings.port === DEFAULT_PORTS[settings.scheme] ? '' : `:${settings.port}`;
  return async function redirectScheme(context, next) {
    if (context.secure === wantsSecure) return next();
    const host = requestHost(context);
    if (!host) return sendErrorAnswer(context, STATUS_BY_CLASS['request-rejected'], 'request-rejected', noHostMessage(context));
    sendRedirect(context, `${settings.scheme}://${host.name}${port}${originalTarget(context.request.url ?? '/')}`, settings.permanent);
  };
}

/** Why a request cannot be redirected: it names no host, or one no Location can be built from. */
function noHostMessage(context: GatewayContext): string {
  const { headers } = context.request;
  return headers.host === undefined && headers[':authority'] === undefined
    ? 'the request has no Host header, so there is no host to redirect it to'
    : 'the request\'s Host header is no host name a redirect can be built from';
}
