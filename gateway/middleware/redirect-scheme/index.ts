import type { RedirectSchemeSettings } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { sendGatewayError } from '../../proxy/error-response.ts';
import { originalTarget, requestHost, sendRedirect } from './redirect.ts';

const DEFAULT_PORTS: Readonly<Record<RedirectSchemeSettings['scheme'], number>> = { https: 443, http: 80 };

/**
 * Answers requests that did not arrive on `scheme` with a redirect to the same host, path and
 * query on it (Traefik's redirectScheme), with the status `sendRedirect` picks. The port is `port`,
 * left out when it is the scheme's default or unset. A request already on `scheme` passes through;
 * one whose Host is no host name is answered 400.
 */
export function redirectScheme(settings: RedirectSchemeSettings): Middleware {
  const wantsSecure = settings.scheme === 'https';
  const port = settings.port === undefined || settings.port === DEFAULT_PORTS[settings.scheme] ? '' : `:${settings.port}`;
  return async function redirectScheme(context, next) {
    if (context.secure === wantsSecure) return next();
    const host = requestHost(context);
    if (!host) return sendGatewayError(context, 'request-rejected');
    sendRedirect(context, `${settings.scheme}://${host.name}${port}${originalTarget(context.request.url ?? '/')}`, settings.permanent);
  };
}
